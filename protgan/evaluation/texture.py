"""Pixel statistics of one stain that a feature-space distance can miss: how line-like (fibrous) a channel is.

Actin stress fibres and intermediate filaments are thin oriented lines; nuclei, dots and diffuse cytoplasm are
not. The structure tensor's coherence (Bigun & Granlund 1987; Jaehne, Digital Image Processing) measures it: per
pixel, the gradient outer products averaged over a small Gaussian window, J = [[Jxx, Jxy], [Jxy, Jyy]], and
(l1 - l2) / (l1 + l2) of its eigenvalues, 1 where all gradients in the window share one direction (a line or an
edge), 0 where they point every way (a dot, noise). An image's score is the gradient-energy-weighted mean,
sum(l1 - l2) / sum(l1 + l2), so dark background and flat regions do not count. Issue 17 uses it to put a number
on "the generated actin images have no fibres", beside the grid.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

WINDOW_SIGMA = 1.5  # px of the averaging window: a few px, so neighbouring fibres of other angles do not mix


def orientation_coherence(channel: np.ndarray, sigma: float = WINDOW_SIGMA) -> float:
    """Energy-weighted structure-tensor coherence of one 2-D channel (any range), in [0, 1]; nan on a flat image."""
    img = np.asarray(channel, np.float32)
    if img.ndim != 2:
        raise ValueError(f"orientation_coherence: expected a 2-D channel, got shape {img.shape}")
    gx = cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3)
    smooth = lambda a: cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    jxx, jyy, jxy = smooth(gx * gx), smooth(gy * gy), smooth(gx * gy)
    trace = jxx + jyy  # l1 + l2
    spread = np.sqrt((jxx - jyy) ** 2 + 4.0 * jxy ** 2)  # l1 - l2
    total = float(trace.sum())
    return float(spread.sum() / total) if total > 1e-12 else float("nan")


def mean_coherence(channels: Iterable[np.ndarray], sigma: float = WINDOW_SIGMA) -> tuple[float, float, int]:
    """(mean, std, n) of orientation_coherence over images, flat ones skipped."""
    scores = np.array([orientation_coherence(c, sigma) for c in channels], np.float64)
    scores = scores[np.isfinite(scores)]
    if not len(scores):
        return float("nan"), float("nan"), 0
    return float(scores.mean()), float(scores.std(ddof=1)) if len(scores) > 1 else 0.0, len(scores)
