"""`protgan enhance DATA --out DIR`: HE / AHE / CLAHE scored by MSE / PSNR / SSIM; writes the enhanced dataset.
Its options are EnhanceConfig's fields (protgan.enhance.config)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from protgan.cli.app import app, console
from protgan.cli.options import Opts, with_config
from protgan.core.progress import LogOptions, Reporter
from protgan.enhance.config import EnhanceConfig


def _pm(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@app.command("enhance")
@with_config(EnhanceConfig, LogOptions)
def enhance(*, opts: Opts) -> None:
    """Score HE, AHE and CLAHE per image and channel (MSE, PSNR, SSIM against the original; RMS contrast
    and entropy), print the paper-style table, and write the enhanced dataset with the chosen method."""
    config = opts.build(EnhanceConfig)
    config.validate()  # option errors before the engine (OpenCV, torch) is imported
    from protgan.enhance.pipeline import run_enhance
    from protgan.enhance.report import CRITERIA

    with Reporter("enhance", console, opts.build(LogOptions), unit="img", transient=False) as progress:
        result = run_enhance(config, progress=progress.update)

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
