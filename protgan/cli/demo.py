"""`protgan demo`: the whole pipeline on the embedded default data, on a CPU, with a report.
Its options are DemoConfig's fields (protgan.experiments.config); --quick and --tiny choose the plan."""

from __future__ import annotations

import typer

from protgan.cli.app import app, console
from protgan.cli.options import Opts, with_config
from protgan.core.errors import ProtganError
from protgan.core.progress import LogOptions, Reporter
from protgan.experiments.config import DemoConfig


@app.command("demo")
@with_config(DemoConfig, LogOptions)
def demo(
    quick: bool = typer.Option(False, "--quick", help="A smaller run (32 px, fewer images, steps and epochs): under 2 "
                               "minutes on a 2-core CPU instead of about 10."),
    tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Smallest end-to-end run, for the tests."),
    *, opts: Opts,
) -> None:
    """demo-data -> enhance (CLAHE) -> train-gan per top-5 class (or, --gan conditional, one conditional GAN for
    the five) -> synth -> fid -> compare (classic vs GAN augmentation) -> OUT/report.md and OUT/report.html
    with every table and figure."""
    from protgan.experiments.demo import run_demo

    if quick and tiny:
        raise ProtganError("--quick and --tiny: choose one")
    cfg = opts.build(DemoConfig, plan="tiny" if tiny else "quick" if quick else "default")
    with Reporter("demo", console, opts.build(LogOptions)) as progress:
        result = run_demo(cfg, log=progress.log, progress=progress.update)
    total = sum(v for k, v in result.seconds.items())
    console.print(f"done in {total:.0f} s (all stages, this run and earlier ones): {result.report_md} and "
                  f"{result.report_html}", highlight=False)
