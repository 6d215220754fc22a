"""FCN heat maps overlaid on the image: one PNG per image, a panel per predicted class.

Liimatainen et al. (2021): "a major benefit from using FCN is that it not only predicts which class is
present, but also where it locates ... we can roughly estimate which cells the protein locates to."
Panel 1 is the image as stored (red/green/blue composite, yellow shown as red+green) with its true
labels when known; then, for every class predicted above its threshold (the top class, marked "below
threshold", when none is), the protein channel in grey with the class's sigmoid map upsampled
(bilinear) on top in the inferno colour map, scaled to the map's own maximum and more opaque where
it is higher, titled with the class name, its confidence (the map's maximum) and threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from protgan.core.atomic import atomic_path
from protgan.data import composite_rgb


def upsample_maps(maps: np.ndarray, size: int) -> np.ndarray:
    """K x m x m maps in [0, 1] -> K x size x size, bilinear (align_corners=False: pixel centres line up)."""
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1).numpy()


def panel_classes(probs: np.ndarray, thresholds: np.ndarray) -> tuple[list[int], bool]:
    """Indices (into the model's classes) to draw, highest confidence first; True when none passed."""
    above = np.flatnonzero(probs >= thresholds)
    if above.size:
        return [int(i) for i in above[np.argsort(-probs[above])]], False
    return [int(np.argmax(probs))], True


def write_heatmap_png(
    path: str | Path,
    stack: np.ndarray,
    channels: tuple[str, ...],
    maps: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    class_names: Sequence[str],
    title: str = "",
    true_names: Sequence[str] | None = None,
) -> list[int]:
    """Draw one image's panels; returns the class indices drawn. `stack` is C x H x W uint8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = stack.shape[-1]
    rgb = composite_rgb(stack, channels)
    grey = stack[channels.index("green")] if "green" in channels else rgb.mean(axis=2).astype(np.uint8)
    drawn, none_passed = panel_classes(probs, thresholds)
    up = upsample_maps(maps[drawn], size)
    n = 1 + len(drawn)
    fig, axes = plt.subplots(1, n, figsize=(2.9 * n, 3.4), squeeze=False)
    ax0 = axes[0, 0]
    ax0.imshow(rgb)
    head = title or "image"
    if true_names is not None:
        head += "\ntrue: " + (", ".join(true_names) or "-")
    ax0.set_title(head, fontsize=8)
    for ax, k, heat in zip(axes[0, 1:], drawn, up):
        ax.imshow(grey, cmap="gray", vmin=0, vmax=255)
        # each map is shown relative to its own maximum (the confidence, in the title): an FCN's
        # probabilities are small where most target pixels are 0, and where matters more than how much
        rel = heat / max(float(heat.max()), 1e-6)
        ax.imshow(rel, cmap="inferno", alpha=np.clip(0.8 * rel, 0, 0.8), vmin=0, vmax=1)
        note = " (below threshold)" if none_passed else ""
        ax.set_title(f"{class_names[k]}{note}\nconf {probs[k]:.2f} / thr {thresholds[k]:.2f}", fontsize=8)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return drawn


def write_heatmaps(
    out_dir: str | Path,
    ids: Sequence[str],
    stacks: Sequence[np.ndarray],
    channels: tuple[str, ...],
    maps: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray,
    class_names: Sequence[str],
    true_names: Sequence[Sequence[str]] | None = None,
) -> list[Path]:
    """One `{id}_heatmaps.png` per image under `out_dir`; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, id_ in enumerate(ids):
        p = out / f"{id_}_heatmaps.png"
        write_heatmap_png(
            p, stacks[i], channels, maps[i], probs[i], thresholds, class_names, title=str(id_),
            true_names=None if true_names is None else true_names[i],
        )
        paths.append(p)
    return paths
