"""`protgan fid --real DATA --fake SYN`: FID, KID and the real-vs-real floor per class.
Its options are FidConfig's fields (protgan.evaluation.config)."""

from __future__ import annotations

import math
from pathlib import Path

from rich.table import Table

from protgan.cli.app import app, console
from protgan.cli.options import Opts, with_config
from protgan.core.progress import LogOptions, Reporter
from protgan.evaluation.config import FidConfig


def _fmt(v: float, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if math.isnan(v) else f"{v * scale:.{digits}f}"


@app.command("fid")
@with_config(FidConfig, LogOptions)
def fid_command(*, opts: Opts) -> None:
    """Frechet distance, KID +- std and the real-vs-real floor (two halves of the real class), per class."""
    from protgan.classify import embedding as _embedding  # noqa: F401  (registers --features ckpt:PATH)
    from protgan.evaluation.fid import run_fid

    cfg = opts.build(FidConfig)
    out = Path(cfg.out) if cfg.out else None
    with Reporter("fid", console, opts.build(LogOptions), unit="img") as progress:
        result = run_fid(cfg, progress=progress.update)

    table = Table(title=f"{result.features} features, {','.join(result.channels)} at {result.size} px")
    for col, just in [("class", "right"), ("name", "left"), ("real", "right"), ("fake", "right"),
                      ("FID", "right"), ("KID x1e3", "right"), ("FID ½ (n=½)", "right"),
                      ("floor FID", "right"), ("floor KID x1e3", "right")]:
        table.add_column(col, justify=just)
    for r in result.rows:
        table.add_row(str(r.class_index), r.class_name, str(r.n_real), str(r.n_fake), _fmt(r.fid),
                      f"{_fmt(r.kid, 1e3)} ± {_fmt(r.kid_std, 1e3)}", _fmt(r.fid_half), _fmt(r.fid_real_real),
                      f"{_fmt(r.kid_real_real, 1e3)} ± {_fmt(r.kid_real_real_std, 1e3)}")
    console.print(table)
    console.print("floor: the same measures between two random halves of the real class; "
                  "FID ½ compares half the real images with as many synthetic ones (FID's bias depends on n).")
    if out:
        console.print(f"wrote {out / 'fid.csv'} and {out / 'fid.json'}")
