"""Multilabel classification metrics (the one module that owns them), on 0/1 label matrices N x C.

Reported, as in the paper's tables, for the training and the validation part:
  macro_f1        the usual macro F1: mean over classes of each class's F1 (sklearn average="macro")
  paper_macro_f1  the paper's eq. 8: harmonic mean of the macro-averaged precision and recall
  micro_f1        eq. 9-11: F1 of the TP / FP / FN counts pooled over classes
  label_accuracy  label-wise (Hamming) accuracy (TP + TN) / (TP + TN + FP + FN), pooled over classes.
                  The paper's eq. 12 prints TP + FN in the numerator, which is the share of positive
                  labels, not an accuracy; its Keras models report binary accuracy, which is this.
  exact_match     subset accuracy: the share of images whose whole label set is right
  roc_auc_macro   mean over classes of ROC AUC from probabilities; classes where the part holds only one
                  label value (AUC undefined) are skipped and counted in auc_classes_skipped
A class with no predicted (or no true) positive gets precision (or recall) 0, as sklearn's zero_division=0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from protgan.classify.thresholds import apply_thresholds

SCALAR_METRICS = ("macro_f1", "paper_macro_f1", "micro_f1", "label_accuracy", "exact_match", "roc_auc_macro")


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


@dataclass
class PerClass:
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray  # true positives + false negatives: images with the label


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class TP, FP, FN, TN."""
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    tp = (t & p).sum(0)
    fp = (~t & p).sum(0)
    fn = (t & ~p).sum(0)
    tn = (~t & ~p).sum(0)
    return tp, fp, fn, tn


def per_class(y_true: np.ndarray, y_pred: np.ndarray) -> PerClass:
    tp, fp, fn, _ = confusion_counts(y_true, y_pred)
    precision = _div(tp, tp + fp)
    recall = _div(tp, tp + fn)
    f1 = _div(2 * tp, 2 * tp + fp + fn)
    return PerClass(precision, recall, f1, tp + fn)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(per_class(y_true, y_pred).f1.mean())


def paper_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    pc = per_class(y_true, y_pred)
    p, r = pc.precision.mean(), pc.recall.mean()
    return float(2 * p * r / (p + r)) if p + r > 0 else 0.0


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    tp, fp, fn, _ = confusion_counts(y_true, y_pred)
    d = 2 * tp.sum() + fp.sum() + fn.sum()
    return float(2 * tp.sum() / d) if d else 0.0


def label_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float((np.asarray(y_true).astype(bool) == np.asarray(y_pred).astype(bool)).mean())


def exact_match(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float((np.asarray(y_true).astype(bool) == np.asarray(y_pred).astype(bool)).all(1).mean())


def roc_auc_per_class(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-class ROC AUC (Mann-Whitney with tie correction, as sklearn); NaN where undefined."""
    from scipy.stats import rankdata

    t = np.asarray(y_true).astype(bool)
    out = np.full(t.shape[1], np.nan)
    for c in range(t.shape[1]):
        pos = int(t[:, c].sum())
        neg = len(t) - pos
        if pos == 0 or neg == 0:
            continue
        ranks = rankdata(probs[:, c])
        out[c] = (ranks[t[:, c]].sum() - pos * (pos + 1) / 2) / (pos * neg)
    return out


def evaluate(y_true: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | float = 0.5) -> dict:
    """Every scalar metric + per-class precision / recall / F1 / support / AUC at `thresholds`."""

    y_true = np.asarray(y_true)
    y_pred = apply_thresholds(probs, thresholds)
    pc = per_class(y_true, y_pred)
    auc = roc_auc_per_class(y_true, probs)
    defined = ~np.isnan(auc)
    return {
        "macro_f1": float(pc.f1.mean()),
        "paper_macro_f1": paper_macro_f1(y_true, y_pred),
        "micro_f1": micro_f1(y_true, y_pred),
        "label_accuracy": label_accuracy(y_true, y_pred),
        "exact_match": exact_match(y_true, y_pred),
        "roc_auc_macro": float(auc[defined].mean()) if defined.any() else float("nan"),
        "auc_classes_skipped": int((~defined).sum()),
        "n_images": int(len(y_true)),
        "per_class": {
            "precision": pc.precision.tolist(), "recall": pc.recall.tolist(), "f1": pc.f1.tolist(),
            "support": pc.support.astype(int).tolist(), "roc_auc": [None if np.isnan(a) else float(a) for a in auc],
        },
    }
