"""`protgan fid --real DATA --fake SYN`: FID, KID and the real-vs-real floor per class."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from protgan.cli.app import app, console


def _fmt(v: float, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if math.isnan(v) else f"{v * scale:.{digits}f}"


@app.command("fid")
def fid_command(
    real: Path = typer.Option(..., "--real", help="Real dataset folder (train.csv + train/{Id}_{channel}.png)."),
    fake: Path = typer.Option(..., "--fake", help="Synthetic dataset folder (what `protgan synth` writes)."),
    classes: Optional[str] = typer.Option(None, "--class", "--classes", help="Class index/name, or a comma list; default: every class in the synthetic set."),
    features: str = typer.Option("inception", "--features", help="Feature space: inception (pytorch-fid's InceptionV3 pool3), efficientnet_lite0 (ImageNet weights shipped in a pip package, offline), or ckpt:PATH (a protgan classifier's embedding)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help=f"Inception weights file (pytorch-fid's pt_inception-2015-12-05-6726825d.pth); default: the $TORCH_HOME hub cache."),
    size: Optional[int] = typer.Option(None, "--size", help="Side the images are read at (area resize); default: the synthetic images' size."),
    channels: Optional[str] = typer.Option(None, "--channels", help="green, rgb, rgby or a comma list; default: the synthetic set's channels. 1 channel is replicated to RGB; yellow is folded into red+green."),
    select: str = typer.Option("any", "--select", help="Real images of a class: any (every image with the class) or only (single-label images, like train-gan's default)."),
    kid_subsets: int = typer.Option(100, "--kid-subsets", help="KID: number of random subsets (the std is over them)."),
    kid_subset_size: int = typer.Option(1000, "--kid-subset-size", help="KID: images per subset (capped by the smaller set)."),
    batch: int = typer.Option(50, "--batch", help="Images per feature-extraction batch."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Image-reading worker processes (default: automatic)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the real halves split and the KID subsets."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for fid.csv, fid.json and config.json."),
) -> None:
    """Frechet distance, KID +- std and the real-vs-real floor (two halves of the real class), per class."""
    from protgan.evaluation.fid import FidConfig, run_fid

    cfg = FidConfig(real=str(real), fake=str(fake), classes=classes, features=features,
                    weights=str(weights) if weights else None, size=size, channels=channels, select=select,
                    kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, batch=batch, workers=workers,
                    seed=seed, device=device, out=str(out) if out else None)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("features", total=None)
        result = run_fid(cfg, progress=lambda label, done, total: bar.update(task, completed=done, total=total))

    table = Table(title=f"{result.features} features, {','.join(result.channels)} at {result.size} px")
    for col, just in [("class", "right"), ("name", "left"), ("real", "right"), ("fake", "right"),
                      ("FID", "right"), ("KID x1e3", "right"), ("FID ½ (n=½)", "right"),
                      ("floor FID", "right"), ("floor KID x1e3", "right")]:
        table.add_column(col, justify=just)
    for r in result.rows:
        table.add_row(str(r.class_index), r.class_name, str(r.n_real), str(r.n_fake), _fmt(r.fid),
                      f"{_fmt(r.kid, 1e3)} ± {_fmt(r.kid_std, 1e3)}", _fmt(r.fid_half), _fmt(r.fid_real_real),
                      f"{_fmt(r.kid_real_real, 1e3)} ± {_fmt(r.kid_real_real_std, 1e3)}")
    console.print(table)
    console.print("floor: the same measures between two random halves of the real class; "
                  "FID ½ compares half the real images with as many synthetic ones (FID's bias depends on n).")
    if out:
        console.print(f"wrote {out / 'fid.csv'} and {out / 'fid.json'}")
