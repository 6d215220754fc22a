"""`protgan evaluate --real DATA --fake SYN --out DIR`: FID/KID, precision/recall, near-copies and CAS per
class. Its options are EvaluateConfig's fields (protgan.experiments.config)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from protgan.cli.app import app, console
from protgan.cli.options import Opts, with_config
from protgan.core.progress import LogOptions, Reporter
from protgan.experiments.config import EvaluateConfig


@app.command("evaluate")
@with_config(EvaluateConfig, LogOptions)
def evaluate_command(*, opts: Opts) -> None:
    """Is this synthetic set any good? Fidelity and diversity (precision/recall), memorisation (near-copies)
    and usefulness (CAS: train on synthetic, test on real) per class, each beside its real-vs-real floor or
    reference, plus FID/KID."""
    from protgan.classify import embedding as _embedding  # noqa: F401  (registers --features ckpt:PATH)
    from protgan.experiments.evaluate import run_evaluate, tables, verdicts

    cfg = opts.build(EvaluateConfig)
    out = Path(cfg.out)
    with Reporter("evaluate", console, opts.build(LogOptions), unit="img") as progress:
        result = run_evaluate(cfg, log=progress.log, progress=progress.update)
    console.print(f"{result.features} features, {','.join(result.channels)} at {result.size} px")
    for title, header, rows in tables(result.rows, result.metrics):
        t = Table(title=title)
        for k, col in enumerate(header):
            t.add_column(col, justify="left" if k == 1 else "right")
        for r in rows:
            t.add_row(*r)
        console.print(t)
    console.print("floor: the measure between two random halves of the real class; ½: half the real images vs as "
                  "many synthetic ones (compare with the floor); near-copies: closer to a training image than the "
                  f"{cfg.copy_percentile:g}th percentile of real-to-real distances (real ref.: fresh real images).")
    if result.cas:
        console.print(f"CAS ({result.cas['model']}, fold {result.cas['fold']}, {result.cas['n_val']} real validation "
                      f"images): macro F1 {result.cas['macro_f1_synthetic']:.3f} trained on synthetic vs "
                      f"{result.cas['macro_f1_real']:.3f} on as many real images")
    for v in verdicts(result.rows):
        console.print(v, highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"wrote {out / 'evaluate.csv'}, {out / 'evaluate.json'}"
                  + (f", {result.files['copies']}" if "copies" in result.files else ""))
