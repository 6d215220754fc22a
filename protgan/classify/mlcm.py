"""The multi-label confusion matrix (MLCM) of Heydarian, Doyle & Samavi (IEEE Access 2022), the one
Al-joudi & Arif (2023) report, and accuracy by the number of labels per image (Liimatainen et al.
2021, Table 1).

MLCM: a (C+1) x (C+1) count matrix, rows = true labels, columns = predicted labels, plus a last row
"NTL" (no true label: images with no true label, their predictions go there) and a last column "NPL"
(no predicted label: true labels nothing was predicted for). Per image, with T the true and P the
predicted label sets, the rules of the authors' reference implementation (the `mlcm` package):
- T = P = {}: one count in [NTL, NPL]; T = {} and P non-empty: one count in [NTL, p] for each p in P.
- |T| = 1, T = {t}: one count in [t, p] for every p in P (so [t, t] when t is predicted), or [t, NPL]
  when P is empty.
- |T| >= 2 and P empty: [t, NPL] for every t in T.
- |T| >= 2 and P non-empty: [t, t] for every correctly predicted t; then, going through the false
  positives in class order, the first one is counted against every missed true label ([t, p] for t in
  T minus P), and once every missed label has been paired, each further false positive is counted
  against every true label; missed labels left unpaired (no false positive at all) go to [t, NPL].
`normalized` divides each row by its sum (percent), as the paper's figure shows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from protgan.core.atomic import atomic_path, write_text

NTL = "NTL (no true label)"
NPL = "NPL (no predicted label)"


def mlcm(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(C+1) x (C+1) int64 MLCM from N x C binary truth and predictions."""
    t_all = np.asarray(y_true).astype(bool)
    p_all = np.asarray(y_pred).astype(bool)
    if t_all.shape != p_all.shape or t_all.ndim != 2:
        raise ValueError(f"MLCM: truth {t_all.shape} and predictions {p_all.shape} must both be N x C")
    c = t_all.shape[1]
    cm = np.zeros((c + 1, c + 1), dtype=np.int64)
    none = c  # index of the NTL row and of the NPL column
    for t_row, p_row in zip(t_all, p_all):
        true = np.flatnonzero(t_row)
        pred = np.flatnonzero(p_row)
        if true.size == 0:
            if pred.size == 0:
                cm[none, none] += 1
            else:
                cm[none, pred] += 1
            continue
        if pred.size == 0:
            cm[true, none] += 1
            continue
        if true.size == 1:
            cm[true[0], pred] += 1
            continue
        hit = true[p_row[true]]
        cm[hit, hit] += 1
        missed = true[~p_row[true]]
        false_pos = pred[~t_row[pred]]
        if false_pos.size:
            if missed.size:
                cm[missed, false_pos[0]] += 1
                rest = false_pos[1:]
            else:
                rest = false_pos
            for p in rest:
                cm[true, p] += 1
        else:
            cm[missed, none] += 1
    return cm


def normalized(cm: np.ndarray) -> np.ndarray:
    """Row percentages (a row with no counts stays zero)."""
    rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(cm * 100.0, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)


@dataclass(frozen=True)
class CardinalityRow:
    n_labels: str  # "1", "2", "3", "4", "5+", or "0"
    images: int
    share: float  # fraction of all images
    exact_match: float  # fraction with predicted set == true set (the paper's "correct %")
    mean_dice: float  # mean per-image Dice 2|T&P|/(|T|+|P|)


def accuracy_by_label_count(y_true: np.ndarray, y_pred: np.ndarray, max_count: int = 4) -> list[CardinalityRow]:
    """Exact-match accuracy and mean Dice for images with 1, 2, 3, 4 (and 5+, 0 when present) labels."""
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    k = t.sum(axis=1)
    exact = (t == p).all(axis=1)
    denom = t.sum(axis=1) + p.sum(axis=1)
    dice = np.where(denom > 0, 2 * (t & p).sum(axis=1) / np.maximum(denom, 1), 1.0)
    groups: list[tuple[str, np.ndarray]] = [(str(i), k == i) for i in range(1, max_count + 1)]
    if (k > max_count).any():
        groups.append((f"{max_count + 1}+", k > max_count))
    if (k == 0).any():
        groups.insert(0, ("0", k == 0))
    n = max(len(k), 1)
    rows = []
    for name, sel in groups:
        m = int(sel.sum())
        rows.append(CardinalityRow(
            name, m, m / n,
            float(exact[sel].mean()) if m else float("nan"),
            float(dice[sel].mean()) if m else float("nan"),
        ))
    return rows


def _axis_labels(class_names: Sequence[str]) -> tuple[list[str], list[str]]:
    return [*class_names, NTL], [*class_names, NPL]


def mlcm_csv(cm: np.ndarray, class_names: Sequence[str], percent: bool = False) -> str:
    rows, cols = _axis_labels(class_names)
    fmt = (lambda v: f"{v:.2f}") if percent else (lambda v: str(int(v)))
    lines = ["true \\ predicted," + ",".join(_csv_cell(c) for c in cols)]
    for name, row in zip(rows, cm):
        lines.append(_csv_cell(name) + "," + ",".join(fmt(v) for v in row))
    return "\n".join(lines) + "\n"


def _csv_cell(s: str) -> str:
    return f'"{s}"' if ("," in s or '"' in s) else s


def cardinality_csv(rows: list[CardinalityRow]) -> str:
    out = ["labels_per_image,images,share,exact_match,mean_dice"]
    for r in rows:
        out.append(f"{r.n_labels},{r.images},{r.share:.4f},{r.exact_match:.4f},{r.mean_dice:.4f}")
    return "\n".join(out) + "\n"


def cardinality_markdown(rows: list[CardinalityRow]) -> str:
    out = ["| Labels per image | Images | Share (%) | Exact match (%) | Mean Dice |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r.n_labels} | {r.images} | {100 * r.share:.1f} | {100 * r.exact_match:.1f} | {r.mean_dice:.3f} |")
    return "\n".join(out) + "\n"


def plot_mlcm(path: Path, cm: np.ndarray, class_names: Sequence[str], title: str = "MLCM") -> None:
    """Row-normalised MLCM heat map with percentages in the cells; counts of each row on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pct = normalized(cm)
    rows, cols = _axis_labels(class_names)
    n = len(rows)
    side = max(4.0, 0.42 * n + 2.5)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(n), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), [f"{r} ({int(s)})" for r, s in zip(rows, cm.sum(axis=1))], fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (row total)")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", fontsize=6 if n > 12 else 8,
                            color="white" if pct[i, j] > 55 else "black")
    ax.set_title(f"{title}: row %, diagonal = correctly found")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="% of row")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _write_files(out: Path, prefix: str, cm: np.ndarray, rows: list[CardinalityRow], class_names: Sequence[str],
                 title: str) -> dict[str, str]:
    paths = {
        "mlcm_csv": out / f"{prefix}mlcm.csv",
        "mlcm_percent_csv": out / f"{prefix}mlcm_percent.csv",
        "mlcm_png": out / f"{prefix}mlcm.png",
        "by_label_count_csv": out / f"{prefix}by_label_count.csv",
    }
    write_text(paths["mlcm_csv"], mlcm_csv(cm, class_names))
    write_text(paths["mlcm_percent_csv"], mlcm_csv(normalized(cm), class_names, percent=True))
    plot_mlcm(paths["mlcm_png"], cm, class_names, title)
    write_text(paths["by_label_count_csv"], cardinality_csv(rows))
    return {k: p.name for k, p in paths.items()}


def write_label_reports(
    out_dir: str | Path,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str],
    prefix: str = "",
    title: str = "MLCM",
) -> dict:
    """{prefix}mlcm.csv (counts), mlcm_percent.csv, mlcm.png and by_label_count.csv under `out_dir`.

    Returns what a fold's result.json keeps so the folds can be merged later: the MLCM counts, the
    per-cardinality counts, and the file names."""
    cm = mlcm(y_true, y_pred)
    rows = accuracy_by_label_count(y_true, y_pred)
    files = _write_files(Path(out_dir), prefix, cm, rows, class_names, title)
    return {"mlcm": cm.tolist(), "by_label_count": [asdict(r) for r in rows], "files": files}


def merge_label_reports(run: str | Path, reports: Sequence[dict], class_names: Sequence[str],
                        prefix: str = "val_") -> str:
    """Sum the folds' MLCMs and per-cardinality counts (every image is validated in exactly one fold),
    write the run-level files, and return a markdown section for summary.md."""
    cm = np.sum([np.array(r["mlcm"], np.int64) for r in reports], axis=0)
    groups: dict[str, list[float]] = {}
    for r in reports:
        for row in r["by_label_count"]:
            g = groups.setdefault(row["n_labels"], [0, 0.0, 0.0])
            n = row["images"]
            g[0] += n
            if n:
                g[1] += row["exact_match"] * n
                g[2] += row["mean_dice"] * n
    order = sorted(groups, key=lambda k: (k.endswith("+"), int(k.rstrip("+"))))
    total = sum(groups[k][0] for k in order) or 1
    rows = [CardinalityRow(k, int(groups[k][0]), groups[k][0] / total,
                           groups[k][1] / groups[k][0] if groups[k][0] else float("nan"),
                           groups[k][2] / groups[k][0] if groups[k][0] else float("nan")) for k in order]
    files = _write_files(Path(run), prefix, cm, rows, class_names, "validation MLCM, all folds")
    diag = np.diag(cm)[:-1]
    row_sums = cm[:-1].sum(axis=1)
    found = np.divide(diag, row_sums, out=np.full(len(diag), np.nan), where=row_sums > 0)
    return (
        "\n## Validation by labels per image (Liimatainen et al. 2021, Table 1), all folds\n\n"
        + cardinality_markdown(rows)
        + f"\n## Multi-label confusion matrix (Heydarian et al. 2022), all folds\n\n"
        f"`{files['mlcm_csv']}` (counts), `{files['mlcm_percent_csv']}` (row %), `{files['mlcm_png']}`. "
        f"Mean of the diagonal (row %, unweighted over classes with images): {100 * np.nanmean(found):.1f}; "
        f"{int(cm[:-1, -1].sum())} true labels with no prediction at all (NPL column).\n"
    )
