"""`protgan synth --runs RUNS --out SYN --per-class 1000`: per-class generators -> a synthetic dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from protgan.cli.app import app, console


@app.command("synth")
def synth_command(
    runs: Path = typer.Option(..., "--runs", help="Folder of train-gan runs (one sub-folder per class), or one run."),
    out: Path = typer.Option(..., "--out", help="New folder for the synthetic dataset (never a real dataset or RUNS)."),
    per_class: int = typer.Option(1000, "--per-class", help="Images written per class (the paper: 1000)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma list of class indices/names; default: every class with a run."),
    seed: int = typer.Option(0, "--seed", help="Noise seed; the same seed writes the same files."),
    batch: int = typer.Option(64, "--batch", help="Images per generator batch."),
    truncation: float = typer.Option(0.0, "--truncation", help="Redraw noise components with |z| above this (truncation trick); 0 = off (the paper)."),
    use_ema: bool = typer.Option(True, "--use-ema/--no-ema", help="Sample with the EMA generator weights (default) or the raw G."),
    checkpoint: str = typer.Option("last", "--checkpoint", help="last (checkpoints/last.pt) or best (checkpoints/best.pt, kept by train-gan --eval-every)."),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Skip classes without a trained generator instead of failing."),
    filter_by: Optional[str] = typer.Option(None, "--filter-by", help="Drop the least realistic samples: disc (the run's discriminator), ckpt:PATH (a protgan classifier's confidence for the class) or copies (the nearest to a training image first: drops near-copies)."),
    keep: float = typer.Option(0.8, "--keep", help="With --filter-by: fraction of ceil(n/keep) candidates kept (the n best)."),
    amp: bool = typer.Option(False, "--amp", help="Generate under autocast (bf16, or fp16 on GPUs without bf16)."),
    writers: int = typer.Option(4, "--writers", help="Threads encoding PNG files."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Write synthetic images in the dataset layout (train.csv, train/{Id}_{channel}.png) plus manifest.json."""
    from protgan.classify.embedding import classifier_scorer
    from protgan.gan.synth import SynthConfig, run_synth

    cfg = SynthConfig(runs=str(runs), out=str(out), per_class=per_class, classes=classes, seed=seed, batch=batch,
                      truncation=truncation, use_ema=use_ema, checkpoint=checkpoint, skip_missing=skip_missing,
                      filter_by=filter_by, keep=keep, amp=amp, writers=writers, device=device)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("synth", total=None)
        manifest = run_synth(cfg, progress=lambda label, done, total: bar.update(
            task, description=label, completed=done, total=total), classifier_scorer=classifier_scorer)
    table = Table(title=f"{out}: {manifest['total']} images, {','.join(manifest['channels'])} at {manifest['size']} px")
    for col in ("class", "name", "images", "step", "checkpoint", "filter"):
        table.add_column(col)
    for e in manifest["classes"]:
        f = e.get("filter")
        ftxt = "-" if not f else f"{f['kept']}/{f['candidates']} kept, score >= {f['threshold']:.3g}"
        table.add_row(str(e["class_index"]), e["class_name"], str(e["count"]), str(e["step"]),
                      Path(e["checkpoint"]).name, ftxt)
    console.print(table)
    if manifest["skipped_classes"]:
        console.print(f"[yellow]skipped (no trained generator):[/] {', '.join(map(str, manifest['skipped_classes']))}")
