"""`protgan cache DATA --size S`: decode once into a packed uint8 array that every loader uses."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from protgan.cli.app import app, console
from protgan.data import build_cache, open_dataset, parse_channels
from protgan.core.errors import ProtganError


@app.command()
def cache(
    data: Path = typer.Argument(..., help="Dataset folder in the HPA layout."),
    size: int = typer.Option(512, "--size", help="Side of the square images stored (resized with area interpolation)."),
    channels: str = typer.Option("rgby", "--channels", help="green, rgb, rgby or a comma list; loaders needing a subset use it too."),
    out: Optional[Path] = typer.Option(None, "--out", help="Cache folder (default DATA/cache, where loaders look)."),
    workers: int = typer.Option(0, "--workers", help="Decoding threads (0: up to 8, one per core)."),
) -> None:
    """Write DATA/cache/{channels}-{size}.npy (N x C x S x S uint8, memory-mapped on read) and its index."""
    if workers < 0:
        raise ProtganError(f"--workers {workers}: must be >= 0")
    ds = open_dataset(data)
    chans = parse_channels(channels)
    with Progress(TextColumn("caching"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("cache", total=len(ds))
        result = build_cache(ds, size, chans, cache_dir=out, workers=workers or None,
                             progress=lambda done, total: bar.update(task, completed=done))
    gib = result.path.stat().st_size / 2**30
    console.print(f"wrote {result.path} ({len(result.ids)} x {len(chans)} x {size} x {size}, {gib:.2f} GiB)")
