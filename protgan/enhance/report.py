"""Tables and figures of an enhance run: scores.csv, summary.csv, the choice of "best", comparison.png.

Means over PSNR: a perfect match has PSNR = inf, which would make any mean inf. The summary reports
the mean and std over the *finite* values and, beside them, the count of inf values (`psnr_inf`);
selection by PSNR ranks methods by that finite mean. Standard deviations are sample std (ddof=1,
0 for a single value).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from protgan.core.atomic import atomic_path

from protgan.core.errors import ProtganError
from protgan.data import to_uint8

FULL_REFERENCE = ("mse", "psnr", "ssim")
NO_REFERENCE = ("contrast", "entropy")
SCORES = FULL_REFERENCE + NO_REFERENCE
ORIGINAL = "original"
ALL_CHANNELS = "all"

# What "best" means for each --select-by criterion: (higher is better?, what it rewards)
CRITERIA: dict[str, tuple[bool, str]] = {
    "ssim": (True, "highest mean SSIM against the original (least structural change)"),
    "psnr": (True, "highest mean finite PSNR against the original (least change)"),
    "mse": (False, "lowest mean MSE against the original (least change)"),
    "contrast": (True, "highest mean RMS contrast of the enhanced image (no reference)"),
    "entropy": (True, "highest mean grey-level entropy of the enhanced image (no reference)"),
}

SCORE_COLUMNS = ("key", "id", "channel", "bits", "method") + SCORES


def score_table(records: Sequence[dict], methods: Sequence[str]) -> list[dict]:
    """One flat row per (image, channel, method), the original first (no-reference scores only)."""
    rows = []
    for rec in records:
        base = {"key": rec["key"], "id": rec["id"], "channel": rec["channel"], "bits": rec["bits"]}
        rows.append({**base, "method": ORIGINAL, **{k: None for k in FULL_REFERENCE}, **rec[ORIGINAL]})
        for m in methods:
            rows.append({**base, "method": m, **rec[m]})
    return rows


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    a = np.asarray(values, np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(records: Sequence[dict], methods: Sequence[str], channels: Sequence[str]) -> list[dict]:
    """Mean and std of every score per (method, channel) and per method over all channels.

    `records` are per-image dicts as the pipeline makes them: {key, id, channel, bits, original:
    {contrast, entropy}, he: {mse, psnr, ssim, contrast, entropy}, ...}.
    """
    out = []
    groups = list(channels) + [ALL_CHANNELS]
    for m in (ORIGINAL, *methods):
        for ch in groups:
            recs = [r for r in records if ch == ALL_CHANNELS or r["channel"] == ch]
            if not recs:
                continue
            row: dict[str, Any] = {"method": m, "channel": ch, "n": len(recs)}
            for s in SCORES:
                if m == ORIGINAL and s in FULL_REFERENCE:
                    row[f"{s}_mean"] = row[f"{s}_std"] = None
                    continue
                vals = [float(r[m][s]) for r in recs]
                if s == "psnr":
                    row["psnr_inf"] = sum(1 for v in vals if math.isinf(v))
                    vals = [v for v in vals if math.isfinite(v)]
                row[f"{s}_mean"], row[f"{s}_std"] = _stats(vals)
            row.setdefault("psnr_inf", None if m == ORIGINAL else 0)
            out.append(row)
    return out


SUMMARY_COLUMNS = ("method", "channel", "n", "mse_mean", "mse_std", "psnr_mean", "psnr_std", "psnr_inf",
                   "ssim_mean", "ssim_std", "contrast_mean", "contrast_std", "entropy_mean", "entropy_std")


def select_best(summary: Sequence[dict], methods: Sequence[str], criterion: str) -> str:
    """The method that wins `criterion` on the all-channel means (ties: the first in he, ahe, clahe order)."""
    if criterion not in CRITERIA:
        raise ProtganError(f"--select-by {criterion!r}: expected one of {', '.join(CRITERIA)}")
    higher, _ = CRITERIA[criterion]
    best, best_v = None, None
    for m in methods:
        row = next((r for r in summary if r["method"] == m and r["channel"] == ALL_CHANNELS), None)
        v = None if row is None else row[f"{criterion}_mean"]
        if v is None:
            continue
        if best_v is None or (v > best_v if higher else v < best_v):
            best, best_v = m, v
    if best is None:
        raise ProtganError(f"--select-by {criterion}: no finite scores to choose a method from")
    return best


def render_comparison(path: str | os.PathLike, panels: Sequence[dict], methods: Sequence[str]) -> None:
    """comparison.png: one block per image, the original and each method side by side, each with
    its grey-level histogram (log counts) underneath.

    `panels`: [{"title": str, "images": {"original": arr, "he": arr, ...}, "scores": {method: {...}}}].
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    cols = [ORIGINAL, *methods]
    nrow = 2 * len(panels)
    height = 4.3 * len(panels)
    fig, axes = plt.subplots(nrow, len(cols), figsize=(3.0 * len(cols), height),
                             gridspec_kw={"height_ratios": [3, 1] * len(panels)}, squeeze=False)
    for p, panel in enumerate(panels):
        for c, name in enumerate(cols):
            img = panel["images"][name]
            top = 65535 if img.dtype == np.uint16 else 255
            ax = axes[2 * p, c]
            ax.imshow(to_uint8(img), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if name == ORIGINAL:
                title = f"{panel['title']}\noriginal"  # id and channel
            else:
                s = panel["scores"][name]
                title = f"{name.upper()}\nSSIM {s['ssim']:.3f}  PSNR {s['psnr']:.1f}"
            ax.set_title(title, fontsize=8)
            hax = axes[2 * p + 1, c]
            hist, edges = np.histogram(img, bins=256, range=(0, top + 1))
            # one filled step polygon (256 bar patches draw ~50x slower); +1 so empty bins sit on the log axis
            hax.fill_between(edges[:-1], hist + 1, 1, step="post", color="0.25", linewidth=0)
            hax.set_yscale("log")
            hax.set_ylim(1, max(10, hist.max() * 2))
            hax.set_xlim(0, top + 1)
            # few ticks: tick-label layout is most of matplotlib's drawing time here
            hax.set_xticks([0, top // 2, top])
            hax.minorticks_off()
            hax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(numticks=3))
            hax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            if c:
                hax.set_yticklabels([])
            hax.tick_params(labelsize=6)
            sc = panel["scores"][name]
            hax.set_title(f"contrast {sc['contrast']:.3f}  entropy {sc['entropy']:.2f}", fontsize=7)
    fig.subplots_adjust(left=0.04, right=0.99, top=1 - 0.45 / height, bottom=0.25 / height,
                        wspace=0.08, hspace=0.5)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def read_records(path: Path) -> dict[str, dict]:
    """Per-image score records of an earlier (possibly killed) run; a torn last line is ignored."""
    import json

    done: dict[str, dict] = {}
    if not path.exists():
        return done
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a killed run was writing
            done[rec["key"]] = rec
    return done
