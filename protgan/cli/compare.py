"""`protgan compare`: classic vs GAN augmentation, the paper's Tables 2 and 3 with paired statistics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from protgan.cli.app import app, console
from protgan.cli.options import Opts, with_config
from protgan.core.errors import ProtganError
from protgan.core.progress import LogOptions, Reporter
from protgan.experiments.config import CompareConfig


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
        diffs.add_row(d["model"], f"{d['arm']} - {d['baseline']}{leak_mark(d.get('leakage', ''), ' (', ')')}", labels[d["metric"]], str(d["n"]),
                      _fmt(d["mean_diff"], 4, True), f"[{_fmt(d['ci_low'], 4, True)}, {_fmt(d['ci_high'], 4, True)}]",
                      _fmt_p(d["p_t"]), _fmt_p(d["p_wilcoxon"]),
                      f"[{_fmt(d['ci_low_corrected'], 4, True)}, {_fmt(d['ci_high_corrected'], 4, True)}]", verdict(d))
    console.print(diffs)
    console.print(f"wrote {result.out}/comparison.md, comparison.csv, differences.csv, cells.csv, comparison.png")


@app.command("compare")
@with_config((CompareConfig, {"optional": ["data"]}), LogOptions)
def compare(
    collect: bool = typer.Option(False, "--collect", help="Train nothing: merge the cells in OUT (copied from other "
                                 "machines) into the comparison; lists the missing cells."),
    *, opts: Opts,
) -> None:
    """Train every model with classic and with GAN augmentation on identical folds and seeds (resumable,
    cell by cell), then write the paper-shaped table and the paired GAN - classic differences."""
    from protgan.experiments.compare import collect as collect_cells, run_compare

    if collect:
        result = collect_cells(Path(opts["out"]), log=lambda m: console.print(m, highlight=False))
        print_comparison(result)
        return
    if opts["data"] is None:
        raise ProtganError("--data: required (or --collect to merge the cells in --out)")
    cfg = opts.build(CompareConfig)
    with Reporter("compare", console, opts.build(LogOptions), unit="img") as progress:
        result = run_compare(cfg, log=progress.log, progress=progress.update)
    if result is not None:
        print_comparison(result)
