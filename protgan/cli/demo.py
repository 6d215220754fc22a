"""`protgan demo`: the whole pipeline on the embedded default data, on a CPU, with a report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from protgan.cli.app import app, console
from protgan.core.errors import ProtganError


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo-run"), "--out", help="Run folder: data/, enhanced/, gan/, synthetic/, fid/, compare/, report.md, report.html. Re-running resumes."),
    quick: bool = typer.Option(False, "--quick", help="A smaller run (32 px, fewer images, steps and epochs): under 2 minutes on a 2-core CPU instead of about 10."),
    tiny: bool = typer.Option(False, "--tiny", hidden=True, help="Smallest end-to-end run, for the tests."),
    jobs: int = typer.Option(0, "--jobs", help="Processes for the per-class GANs and the classification cells (0: one per CPU core)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every stage (data, enhancement sample, GANs, synthetic noise, folds are fixed)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    allow_leakage: bool = typer.Option(False, "--allow-leakage", help="One generator per class on every image (the paper's likely setup) instead of one per class and fold; compare runs with --allow-leakage and the report says LEAKY."),
) -> None:
    """demo-data -> enhance (CLAHE) -> train-gan per top-5 class -> synth -> fid -> compare (classic vs GAN
    augmentation) -> OUT/report.md and OUT/report.html with every table and figure."""
    from protgan.experiments.demo import DemoConfig, run_demo

    if quick and tiny:
        raise ProtganError("--quick and --tiny: choose one")
    cfg = DemoConfig(out=str(out), plan="tiny" if tiny else "quick" if quick else "default", seed=seed,
                     device=device, jobs=jobs, allow_leakage=allow_leakage)
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

        result = run_demo(cfg, log=lambda m: bar.console.print(m, highlight=False), progress=progress)
    total = sum(v for k, v in result.seconds.items())
    console.print(f"done in {total:.0f} s (all stages, this run and earlier ones): {result.report_md} and "
                  f"{result.report_html}", highlight=False)
