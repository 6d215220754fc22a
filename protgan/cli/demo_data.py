"""`protgan demo-data OUT`: the embedded default dataset, an HPA-like synthetic cell atlas."""

from __future__ import annotations

from pathlib import Path

import typer
from protgan.cli.app import app, console
from protgan.cli.options import field_help
from protgan.core.progress import LogOptions, Reporter


@app.command("demo-data")
def demo_data(
    out: Path = typer.Argument(..., help="Output folder (new or empty; or a previous demo-data output of the same options, which is completed)."),
    n: int = typer.Option(2000, "--n", help="Number of images (fields of cells)."),
    size: int = typer.Option(512, "--size", help="Image size in pixels (32..2048); 512 is the Kaggle HPA size. Geometry scales with it: the field of view is fixed."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed and options give byte-identical files."),
    classes: str = typer.Option("top5", "--classes", help="Classes to draw: top5 (Nucleoplasm, Cytosol, Plasma membrane, Nucleoli, Mitochondria), topK, all (every drawable class) or a comma list of indices/names."),
    workers: int = typer.Option(1, "--workers", help="Processes (0 = all cores). Results do not depend on it."),
    log_format: str = typer.Option("auto", "--log-format", help=field_help(LogOptions, "log_format")),
    log_interval: float = typer.Option(30.0, "--log-interval", help=field_help(LogOptions, "log_interval")),
) -> None:
    """Write OUT/train.csv and OUT/train/{Id}_{red,green,blue,yellow}.png: synthetic HPA-like fields whose
    green channel shows each image's labelled compartments; labels follow the real HPA label table."""
    from protgan.data.classes import CLASS_NAMES
    from protgan.data.demo import demo_labels, generate_demo_dataset, resolve_demo_classes
    from protgan.data.demo.dataset import validate_options

    validate_options(n, size, seed, workers)
    cls = resolve_demo_classes(classes)
    with Reporter("demo-data", console, LogOptions(log_format, log_interval), unit="img") as progress:
        generate_demo_dataset(out, n=n, size=size, seed=seed, classes=cls, workers=workers,
                              progress=lambda done, total: progress.update("images", done, total))
    counts = {c: 0 for c in cls}
    for t in demo_labels(n, seed, cls):
        for c in t:
            counts[c] += 1
    console.print(f"[bold]{out}[/]: {n} images of {size}x{size} (red, green, blue, yellow), seed {seed}")
    console.print("images per class: " + ", ".join(f"{c} {CLASS_NAMES[c]} {counts[c]}" for c in cls), highlight=False)
