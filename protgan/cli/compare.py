"""`protgan compare`: classic vs GAN augmentation, the paper's Tables 2 and 3 with paired statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from protgan.cli.app import app, console
from protgan.core.errors import ProtganError


def print_comparison(result) -> None:
    from protgan.experiments.compare import TABLE_METRICS, _fmt, _fmt_p, leak_mark, verdict

    if result.leakage:
        console.print(result.leakage.replace("**", ""), style="bold red", highlight=False, soft_wrap=True)
    table = Table(title=f"{result.out}: mean ± std over folds x seeds (Test = validation fold)"
                        + (" - LEAKY" if result.leakage else ""))
    for col in ("model", "arm", *[f"{label} {s}" for _, label in TABLE_METRICS for s in ("Train", "Test")]):
        table.add_column(col, justify="left" if col in ("model", "arm") else "right")
    for t in result.table:
        table.add_row(t["model"], t["arm"] + leak_mark(t.get("leakage", ""), " (", ")"), *[f"{t[f'{s}_{m}_mean']:.3f} ± {t[f'{s}_{m}_std']:.3f}"
                                              for m, _ in TABLE_METRICS for s in ("train", "test")])
    console.print(table)
    diffs = Table(title="paired differences (test fold)")
    for col in ("model", "difference", "metric", "n", "mean", "95% CI (t)", "p (t)", "p (Wilcoxon)",
                "CI (CV-corrected)", "verdict"):
        diffs.add_column(col)
    labels = dict(TABLE_METRICS)
    for d in result.differences:
        diffs.add_row(d["model"], f"{d['arm']} - {d['baseline']}", labels[d["metric"]], str(d["n"]),
                      _fmt(d["mean_diff"], 4, True), f"[{_fmt(d['ci_low'], 4, True)}, {_fmt(d['ci_high'], 4, True)}]",
                      _fmt_p(d["p_t"]), _fmt_p(d["p_wilcoxon"]),
                      f"[{_fmt(d['ci_low_corrected'], 4, True)}, {_fmt(d['ci_high_corrected'], 4, True)}]", verdict(d))
    console.print(diffs)
    console.print(f"wrote {result.out}/comparison.md, comparison.csv, differences.csv, cells.csv, comparison.png")


@app.command("compare")
def compare(
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder in the HPA layout (the real images; folds.csv is shared)."),
    out: Path = typer.Option(..., "--out", help="Comparison folder: cells/MODEL/ARM/seed_S/ runs, comparison.md/.csv/.png, config.json."),
    models: str = typer.Option("vgg16", "--models", help="Comma list of models, e.g. vgg16,nasnet_mobile,resnet50,inception_v4 (the paper's Table 2/3 models)."),
    classes: str = typer.Option("top5", "--classes", help="Class subset: top5 (the paper's), all, topK or a comma list."),
    synthetic: Optional[Path] = typer.Option(None, "--synthetic", help="Synthetic dataset for the gan arm (protgan synth output); joins the training part only."),
    gan_runs: Optional[Path] = typer.Option(None, "--gan-runs", help="Instead of --synthetic: a folder of train-gan runs (one per class); synth is run into OUT/synthetic."),
    per_class: int = typer.Option(1000, "--per-class", help="With --gan-runs: synthetic images per class (the paper: 1000)."),
    folds: int = typer.Option(5, "--folds", help="K of the K-fold cross-validation (the paper: 5)."),
    size: Optional[int] = typer.Option(None, "--size", help="Image side in pixels (default: the model's recipe, 512)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs per cell (default: the model's recipe, 50 for vgg16)."),
    seeds: str = typer.Option("0", "--seeds", help="Comma list of training seeds; each arm runs every fold with each seed (more cells, tighter intervals)."),
    all_arms: bool = typer.Option(False, "--all-arms", help="Also train the none and classic+gan arms."),
    fold: Optional[int] = typer.Option(None, "--fold", help="Run only this fold's cells (0-based), e.g. one fold per machine."),
    cell: Optional[List[str]] = typer.Option(None, "--cell", help="Run only this cell, MODEL:ARM:FOLD:SEED (repeatable), e.g. vgg16:gan:0:0."),
    collect: bool = typer.Option(False, "--collect", help="Train nothing: merge the cells in OUT (copied from other machines) into the comparison; lists the missing cells."),
    thresholds: str = typer.Option("tuned", "--thresholds", help="Metrics at per-class thresholds tuned on the training part (tuned) or at 0.5."),
    confidence: float = typer.Option(0.95, "--confidence", help="Level of the confidence intervals."),
    channels: Optional[str] = typer.Option(None, "--channels", help="green, rgb (the paper's; default) or rgby."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size per cell (default: the model's recipe, 32)."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Start from ImageNet weights (offline: efficientnet_lite0, or a filled timm cache)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes per cell (default: automatic)."),
    seed: int = typer.Option(0, "--seed", help="With --gan-runs: the noise seed of the synthetic images (training seeds: --seeds)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    allow_leakage: bool = typer.Option(False, "--allow-leakage", help="Accept synthetic images whose generator saw a fold's validation images (generators trained on every image: the paper's likely setup); every table and comparison.md/csv say LEAKY."),
) -> None:
    """Train every model with classic and with GAN augmentation on identical folds and seeds (resumable,
    cell by cell), then write the paper-shaped table and the paired GAN - classic differences."""
    from protgan.experiments.compare import CompareConfig, collect as collect_cells, run_compare

    if collect:
        result = collect_cells(out, log=lambda m: console.print(m, highlight=False))
        print_comparison(result)
        return
    if data is None:
        raise ProtganError("--data: required (or --collect to merge the cells in --out)")
    cfg = CompareConfig(
        data=str(data), out=str(out), models=models, classes=classes,
        synthetic=str(synthetic) if synthetic else None, gan_runs=str(gan_runs) if gan_runs else None,
        per_class=per_class, folds=folds, size=size, epochs=epochs, seeds=seeds, all_arms=all_arms,
        channels=channels, batch_size=batch_size, pretrained=pretrained, thresholds=thresholds,
        confidence=confidence, seed=seed, fold=fold, cells=list(cell or []), workers=workers, device=device,
        allow_leakage=allow_leakage,
    )
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                for t in tasks.values():
                    bar.remove_task(t)
                tasks.clear()
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        result = run_compare(cfg, log=lambda msg: bar.console.print(msg, highlight=False), progress=progress)
    if result is not None:
        print_comparison(result)
