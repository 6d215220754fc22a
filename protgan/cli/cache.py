"""`protgan cache DATA --size S`: decode once into a packed uint8 array that every loader uses."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from protgan.cli.app import app, console
from protgan.cli.options import field_help
from protgan.core.errors import ProtganError
from protgan.core.progress import LogOptions, Reporter


@app.command()
def cache(
    data: Path = typer.Argument(..., help="Dataset folder in the HPA layout."),
    size: int = typer.Option(512, "--size", help="Side of the square images stored (resized with area interpolation)."),
    channels: str = typer.Option("rgby", "--channels", help="green, rgb, rgby or a comma list; loaders needing a subset use it too."),
    out: Optional[Path] = typer.Option(None, "--out", help="Cache folder (default DATA/cache, where loaders look)."),
    workers: int = typer.Option(0, "--workers", help="Decoding threads (0: up to 8, one per core)."),
    log_format: str = typer.Option("auto", "--log-format", help=field_help(LogOptions, "log_format")),
    log_interval: float = typer.Option(30.0, "--log-interval", help=field_help(LogOptions, "log_interval")),
) -> None:
    """Write DATA/cache/{channels}-{size}.npy (N x C x S x S uint8, memory-mapped on read) and its index."""
    from protgan.data import build_cache, open_dataset, parse_channels

    if workers < 0:
        raise ProtganError(f"--workers {workers}: must be >= 0")
    ds = open_dataset(data)
    chans = parse_channels(channels)
    with Reporter("cache", console, LogOptions(log_format, log_interval), unit="img", transient=False) as progress:
        result = build_cache(ds, size, chans, cache_dir=out, workers=workers or None,
                             progress=lambda done, total: progress.update("images", done, total))
    gib = result.path.stat().st_size / 2**30
    console.print(f"wrote {result.path} ({len(result.ids)} x {len(chans)} x {size} x {size}, {gib:.2f} GiB)")
