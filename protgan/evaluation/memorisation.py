"""Memorisation: is a synthetic image a near-copy of a training image?

For every synthetic image, its nearest real *training* image in feature space. The yardstick is how
close real images are to each other: the `percentile` (5th by default) of the training images'
leave-one-out nearest-neighbour distances is the threshold tau, and a synthetic image closer than tau
to a training image is a "near-copy". By construction about 5% of fresh real images of the class
would fall under tau too: that is the reference printed beside the share (measured, not assumed:
tau of one half of the training images, applied to the other half).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from protgan.core.atomic import atomic_path
from protgan.core.errors import ProtganError
from protgan.data import composite_rgb
from protgan.evaluation.distances import nearest_neighbours

COPY_PERCENTILE = 5.0


@dataclass
class CopyStats:
    """Nearest training image of every synthetic image and the near-copy verdicts."""

    distance: np.ndarray  # per synthetic image: distance to its nearest training image
    nearest: np.ndarray  # per synthetic image: index of that training image
    threshold: float  # tau: the percentile of training-to-training nearest-neighbour distances
    share: float  # synthetic images with distance < tau
    share_real: float  # the same share for fresh real images (one training half against the other)
    percentile: float = COPY_PERCENTILE

    @property
    def flagged(self) -> np.ndarray:
        return self.distance < self.threshold

    def most_copied(self, n: int) -> np.ndarray:
        """Indices of the n synthetic images closest to a training image, closest first."""
        return np.argsort(self.distance, kind="stable")[:n]


def copy_threshold(train: np.ndarray, percentile: float = COPY_PERCENTILE) -> float:
    """tau: the `percentile` of the leave-one-out nearest-neighbour distances within `train`."""
    if not 0 < percentile < 100:
        raise ProtganError(f"--copy-percentile {percentile}: expected a value in (0, 100)")
    if len(train) < 2:
        raise ProtganError(f"near-copies need at least 2 training images, got {len(train)}")
    d, _ = nearest_neighbours(train, train, exclude_self=True)
    return float(np.percentile(d, percentile))


def fresh_real_share(train: np.ndarray, percentile: float = COPY_PERCENTILE, seed: int = 0) -> float:
    """Share of real images flagged when they are not copies: tau of one random half of `train`, applied
    to the other half's distances to it (nan below 4 images)."""
    n = len(train)
    if n < 4:
        return float("nan")
    order = np.random.default_rng(seed).permutation(n)
    a, b = train[order[:n // 2]], train[order[n // 2:]]
    tau = copy_threshold(a, percentile)
    d, _ = nearest_neighbours(b, a)
    return float((d < tau).mean())


def copy_stats(fake: np.ndarray, train: np.ndarray, percentile: float = COPY_PERCENTILE, seed: int = 0) -> CopyStats:
    """Nearest training image of every synthetic image, tau, the near-copy share and its real reference."""
    tau = copy_threshold(train, percentile)
    d, idx = nearest_neighbours(fake, train)
    return CopyStats(d, idx, tau, float((d < tau).mean()), fresh_real_share(train, percentile, seed), percentile)


def plot_copies(path: Path, rows: Sequence[tuple[str, list[np.ndarray], list[np.ndarray], list[float]]],
                channels: Sequence[str], threshold_of: Sequence[float]) -> Path:
    """The most-copied synthetic images (top of each pair of rows) above their nearest training images.

    rows: per class (title, synthetic C x H x W uint8 stacks, their nearest training stacks, distances);
    threshold_of: tau per class, shown as each distance over tau (below 1 = near-copy).
    """
    import matplotlib  # lazy: plotting only when a figure is asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max((len(r[1]) for r in rows), default=1)
    if not rows or cols == 0:
        raise ProtganError("copies figure: no synthetic images to show")
    fig, axes = plt.subplots(2 * len(rows), cols, figsize=(1.5 * cols + 1.6, 3.3 * len(rows) + 0.4), squeeze=False)
    for r, (title, fakes, reals, dists) in enumerate(rows):
        tau = threshold_of[r]
        for j in range(cols):
            top, bottom = axes[2 * r, j], axes[2 * r + 1, j]
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
            if j >= len(fakes):
                top.axis("off")
                bottom.axis("off")
                continue
            top.imshow(composite_rgb(fakes[j], channels))
            bottom.imshow(composite_rgb(reals[j], channels))
            ratio = dists[j] / tau if tau > 0 else float("inf")
            top.set_title(f"d/tau {ratio:.2f}", fontsize=8, color="red" if ratio < 1 else "black")
            if j == 0:
                top.set_ylabel(f"{title}\nsynthetic", fontsize=8)
                bottom.set_ylabel("nearest real", fontsize=8)
    fig.suptitle("most-copied synthetic images (top) and their nearest training images (bottom); "
                 "d/tau < 1 (red): near-copy", fontsize=9)
    fig.subplots_adjust(left=0.12, right=0.99, top=0.93, bottom=0.02, hspace=0.3, wspace=0.08)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
