"""Per-class decision thresholds, chosen on predictions the model did not train on, then applied
unchanged to validation and at prediction time. Three kinds, all reported side by side:

  tuned                per class, the grid threshold (0.01 .. 0.99, step 0.01) maximising that class's F1
                       on the held-out part of the training fold (`--threshold-split`, protgan.classify.train).
                       Ties between grid points with the same best F1 go to the one nearest 0.5; a class
                       with no positive in the held-out part keeps 0.5.
  0.5                  the same flat 0.5 for every class.
  positive-proportion  pudae's (3rd place, HPA 2018): per class, the threshold at which the share of
                       held-out images predicted positive equals the class's prevalence in the training
                       part (uses the held-out scores, not their labels).

A label is predicted when its probability is >= the class threshold.
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


KINDS = ("tuned", "0.5", "positive-proportion")  # also protgan.classify.config.THRESHOLD_KIND_CHOICES


def positive_proportion_thresholds(probs: np.ndarray, prevalence: np.ndarray) -> np.ndarray:
    """Per class, a threshold t with #(probs >= t) = round(prevalence x N): midway between the k-th and
    (k+1)-th highest score (k = 0: just above the highest; k = N: the lowest). Ties at the cut can only
    move the count by the tied images."""
    probs = np.asarray(probs, np.float64)
    n = len(probs)
    out = np.full(probs.shape[1], 0.5)
    if n == 0:
        return out
    for c in range(probs.shape[1]):
        s = np.sort(probs[:, c])[::-1]
        k = int(round(float(prevalence[c]) * n))
        if k <= 0:
            out[c] = float(np.nextafter(s[0], np.inf))
        elif k >= n:
            out[c] = float(s[-1])
        else:
            out[c] = float((s[k - 1] + s[k]) / 2) if s[k - 1] > s[k] else float(s[k - 1])
    return out


def thresholds_by_kind(y_held: np.ndarray, p_held: np.ndarray, train_prevalence: np.ndarray) -> dict[str, np.ndarray]:
    """Every kind of threshold from the held-out part's labels and scores (+ the training prevalence)."""
    c = np.asarray(p_held).shape[1]
    return {"tuned": tune_thresholds(y_held, p_held), "0.5": np.full(c, 0.5),
            "positive-proportion": positive_proportion_thresholds(p_held, train_prevalence)}
