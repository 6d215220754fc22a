"""`protgan enhance DATA --out DIR`: HE / AHE / CLAHE scored by MSE / PSNR / SSIM; writes the enhanced dataset."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from protgan.cli.app import app, console
from protgan.enhance import EnhanceConfig, run_enhance
from protgan.enhance.report import CRITERIA


def _pm(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@app.command("enhance")
def enhance(
    data: Path = typer.Argument(..., help="Dataset in the HPA layout (train.csv + train/{Id}_{channel}.png), or a plain folder of images (scored file by file)."),
    out: Path = typer.Option(..., "--out", help="Output folder (never inside DATA): enhanced dataset, scores.csv, summary.csv, comparison.png, config.json. Rerun with the same options to resume."),
    methods: str = typer.Option("he,ahe,clahe", "--methods", help="Comma list of methods to score: he (global), ahe (adaptive, no limit), clahe (contrast limited)."),
    channels: str = typer.Option("rgby", "--channels", help="Channels to enhance: green, rgb, rgby or a comma list; other channels are copied unchanged."),
    clip_limit: float = typer.Option(2.0, "--clip-limit", help="CLAHE clip limit, in OpenCV's unit: a multiple of the mean bin height of a tile's histogram (> 0)."),
    tile_grid: int = typer.Option(8, "--tile-grid", help="AHE/CLAHE tiles per side (8: 64x64-pixel tiles on a 512x512 image)."),
    apply: str = typer.Option("clahe", "--apply", help="Method written to the enhanced dataset: clahe (the paper's choice, default), best (by --select-by), he, ahe, or none (scores only)."),
    select_by: str = typer.Option("ssim", "--select-by", help="What --apply best maximises: ssim, psnr, mse (vs the original: the least-changed image wins) or contrast, entropy (no reference)."),
    sample: int = typer.Option(0, "--sample", help="Score only this many images (seeded choice; 0 = all); the chosen method is still applied to all."),
    workers: int = typer.Option(0, "--workers", help="Worker processes (0 = one per CPU core)."),
    compare: int = typer.Option(3, "--compare", help="Images shown in comparison.png (0: no figure)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --sample choice."),
) -> None:
    """Score HE, AHE and CLAHE per image and channel (MSE, PSNR, SSIM against the original; RMS contrast
    and entropy), print the paper-style table, and write the enhanced dataset with the chosen method."""
    config = EnhanceConfig(data=str(data), out=str(out), methods=methods, channels=channels, clip_limit=clip_limit,
                           tile_grid=tile_grid, apply=apply.lower(), select_by=select_by.lower(), sample=sample,
                           workers=workers, seed=seed, comparison=compare)
    columns = (TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        result = run_enhance(config, progress=progress)

    table = Table(title=f"Contrast enhancement vs original ({result.scored} images; mean ± std)")
    for col, just in (("method", "left"), ("channel", "left"), ("n", "right"), ("MSE", "right"), ("PSNR (dB)", "right"),
                      ("SSIM", "right"), ("RMS contrast", "right"), ("entropy (bits)", "right")):
        table.add_column(col, justify=just, no_wrap=True)
    last = None
    for r in result.summary:
        if last is not None and r["method"] != last:
            table.add_section()
        last = r["method"]
        style = "bold" if r["channel"] == "all" else None
        psnr = _pm(r["psnr_mean"], r["psnr_std"], 2)
        if r["psnr_inf"]:  # perfect matches are left out of the mean and counted
            psnr = f"{psnr} ({r['psnr_inf']} inf)" if r["psnr_mean"] is not None else f"inf ({r['psnr_inf']})"
        table.add_row(r["method"], r["channel"], str(r["n"]), _pm(r["mse_mean"], r["mse_std"], 1), psnr,
                      _pm(r["ssim_mean"], r["ssim_std"], 4), _pm(r["contrast_mean"], r["contrast_std"], 4),
                      _pm(r["entropy_mean"], r["entropy_std"], 3), style=style)
    # the paper-style table is ~115 columns wide: keep it whole in logs and narrow pipes
    Console(width=max(console.width, 120), highlight=False).print(table)
    if result.resumed:
        console.print(f"resumed: {result.resumed} images' scores taken from the earlier run")
    if result.chosen is None:
        console.print("--apply none: no enhanced images written")
    else:
        why = f"best by {result.chosen_by}: {CRITERIA[result.chosen_by][1]}" if config.apply == "best" else "chosen by --apply"
        console.print(f"applied [bold]{result.chosen.upper()}[/] ({why}): {result.written} written, "
                      f"{result.skipped} already present, {result.copied} copied unchanged -> {result.files['images']}")
    if len(result.bit_depths) > 1:
        console.print("note: 8- and 16-bit images mixed; MSE is in each image's own units, so its mean mixes scales")
    console.print(f"wrote {result.out}/ scores.csv, summary.csv" + (", comparison.png" if "comparison" in result.files else "")
                  + ", config.json")
