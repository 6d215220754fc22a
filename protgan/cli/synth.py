"""`protgan synth --runs RUNS --out SYN --per-class 1000`: per-class generators -> a synthetic dataset.
Its options are SynthConfig's fields (protgan.gan.config)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from protgan.cli.app import app, console
from protgan.cli.options import Opts, with_config
from protgan.core.progress import LogOptions, Reporter
from protgan.gan.config import SynthConfig


@app.command("synth")
@with_config(SynthConfig, LogOptions)
def synth_command(*, opts: Opts) -> None:
    """Write synthetic images in the dataset layout (train.csv, train/{Id}_{channel}.png) plus manifest.json."""
    from protgan.classify.embedding import classifier_scorer
    from protgan.gan.synth import run_synth

    cfg = opts.build(SynthConfig)
    out = Path(cfg.out)
    with Reporter("synth", console, opts.build(LogOptions), unit="img") as progress:
        manifest = run_synth(cfg, progress=progress.update, classifier_scorer=classifier_scorer)
    console.print(f"{out}: {manifest['total']} images, {','.join(manifest['channels'])} at {manifest['size']} px",
                  highlight=False, soft_wrap=True)
    table = Table()
    for col in ("class", "name", "images", "step", "checkpoint", "filter", "generator saw"):
        table.add_column(col)
    for e in manifest["classes"]:
        f = e.get("filter")
        ftxt = "-" if not f else f"{f['kept']}/{f['candidates']} kept, score >= {f['threshold']:.3g}"
        table.add_row(str(e["class_index"]), e["class_name"], str(e["count"]), str(e["step"]),
                      Path(e["checkpoint"]).name, ftxt, _generator_text(e))
    console.print(table)
    if manifest.get("labels"):
        console.print(f"conditional runs: label sets --labels {manifest['labels']} (in {out / 'train.csv'})",
                      highlight=False, soft_wrap=True)
    if manifest["skipped_classes"]:
        console.print(f"[yellow]skipped (no trained generator):[/] {', '.join(map(str, manifest['skipped_classes']))}")


def _generator_text(entry: dict) -> str:
    """Which real images made this class's generator: a fold's training part, every image, or unknown."""
    gen = entry.get("generator")
    if not gen:
        return "not recorded"
    where = "every image" if gen.get("fold") is None else f"fold {gen['fold']} training part"
    return f"{where} ({gen['n_train_ids']})"
