"""Per-class decision thresholds: tuned on the training part of a fold (grid 0.01 .. 0.99, step 0.01,
maximising that class's F1), then applied unchanged to validation and at prediction time.

A label is predicted when its probability is >= the class threshold. Ties between grid points with the
same best F1 go to the one nearest 0.5; a class with no positive in the training part keeps 0.5.
"""

from __future__ import annotations

import numpy as np

GRID = np.round(np.arange(1, 100) / 100.0, 2)


def apply_thresholds(probs: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
    return (np.asarray(probs) >= np.asarray(thresholds, dtype=np.float64)).astype(np.int8)


def f1_per_threshold(y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """F1 of one class (1-D arrays) at each grid threshold, from sorted scores (O(N log N))."""
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(probs, np.float64)
    pos = np.sort(p[t])
    neg = np.sort(p[~t])
    tp = len(pos) - np.searchsorted(pos, grid, side="left")  # positives scored >= threshold
    fp = len(neg) - np.searchsorted(neg, grid, side="left")
    fn = len(pos) - tp
    d = 2 * tp + fp + fn
    return np.divide(2 * tp, d, out=np.zeros(len(grid)), where=d > 0)


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """The per-class threshold maximising F1 on (y_true, probs), N x C each."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs)
    out = np.full(y_true.shape[1], 0.5)
    for c in range(y_true.shape[1]):
        if not y_true[:, c].any():
            continue
        f1 = f1_per_threshold(y_true[:, c], probs[:, c], grid)
        best = np.flatnonzero(f1 >= f1.max() - 1e-12)
        out[c] = grid[best[np.argmin(np.abs(grid[best] - 0.5))]]
    return out
