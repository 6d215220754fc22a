"""`protgan classify`: fine-tune a multilabel classifier with the paper's recipe, K-fold, and report.
Its options are ClassifyConfig's fields (protgan.classify.config); --collect is its own."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from protgan.classify.config import ClassifyConfig
from protgan.cli.app import app, console
from protgan.cli.options import Opts, with_config
from protgan.core.errors import ProtganError
from protgan.core.progress import LogOptions, Reporter


def _print_summary(summary: dict, run: Path) -> None:
    from protgan.classify.report import LABELS

    table = Table(title=f"{run}: mean ± std over folds (Test = validation fold)")
    table.add_column("metric")
    kinds = list(summary["val"])  # tuned, 0.5, positive-proportion (older runs: fewer)
    for t in kinds:
        for s in ("train", "val"):
            table.add_column(f"{'Train' if s == 'train' else 'Test'} ({t})", justify="right")
    for m, label in LABELS.items():
        table.add_row(label, *[f"{summary[s][t][m][0]:.3f} ± {summary[s][t][m][1]:.3f}"
                               for t in kinds for s in ("train", "val")])
    console.print(table)
    console.print(f"wrote {run}/summary.md, metrics.csv, per_class.csv, thresholds.json, curves.png, per_class.png")


@app.command("classify")
@with_config((ClassifyConfig, {"optional": ["data", "out"]}), LogOptions)
def classify(
    collect: Optional[Path] = typer.Option(None, "--collect", help="Only merge the finished folds of this run folder "
                                           "into the report files."),
    *, opts: Opts,
) -> None:
    """Fine-tune a multilabel classifier (K-fold) and write metrics, thresholds, checkpoints and plots."""
    if collect is not None:
        from protgan.classify.report import collect_run

        _print_summary(collect_run(collect), collect)
        return
    if opts["data"] is None:
        raise ProtganError("--data: required (or --collect RUN)")
    if opts["out"] is None:
        raise ProtganError("--out: required (the run folder)")
    cfg = opts.build(ClassifyConfig)
    from protgan.classify.train import run_classify

    with Reporter("classify", console, opts.build(LogOptions), unit="img") as progress:
        summary = run_classify(cfg, log=progress.log, progress=progress.update)
    if summary is not None:
        _print_summary(summary, Path(cfg.out))
