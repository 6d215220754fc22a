"""Merging the folds of a run: metrics.csv, per_class.csv, thresholds.json, summary.md (a table shaped
like the paper's Tables 2 and 3: macro F1 / micro F1 / accuracy, train and test, mean over folds),
curves.png (loss and F1 per epoch) and per_class.png."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from protgan.core.atomic import atomic_path, write_json, write_text
from protgan.classify.metrics import SCALAR_METRICS
from protgan.classify.mlcm import merge_label_reports
from protgan.classify.optim import describe_optimizer
from protgan.classify.thresholds import KINDS
from protgan.data import class_name
from protgan.core.errors import ProtganError
from protgan.core.tables import write_csv

SPLITS = ("train", "val")
THRESHOLD_KINDS = KINDS  # tuned, 0.5, positive-proportion (older runs: only the kinds they have)
LABELS = {
    "macro_f1": "Macro F1 (mean of per-class F1)",
    "paper_macro_f1": "Macro F1, paper eq. 8 (harmonic mean of macro P and R)",
    "micro_f1": "Micro F1",
    "label_accuracy": "Accuracy (label-wise / Hamming)",
    "exact_match": "Exact-match accuracy",
    "roc_auc_macro": "ROC AUC (macro)",
}


def load_fold_results(run: Path) -> list[dict]:
    run = Path(run)
    cfg_path = run / "config.json"
    if not cfg_path.exists():
        raise ProtganError(f"--collect {run}: no config.json (not a classify run)")
    k = json.loads(cfg_path.read_text())["folds"]
    missing = [f for f in range(k) if not (run / f"fold_{f}" / "result.json").exists()]
    if missing:
        raise ProtganError(f"--collect {run}: fold {missing[0]} has no result.json yet ({len(missing)} of {k} folds missing)")
    return [json.loads((run / f"fold_{f}" / "result.json").read_text()) for f in range(k)]


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.array(values, np.float64)
    return float(np.nanmean(a)), float(np.nanstd(a))


def collect_run(run: str | Path) -> dict:
    """Write the merged report files of `run`; returns {split: {thresholds: {metric: (mean, std)}}}."""
    run = Path(run)
    results = load_fold_results(run)
    cfg = json.loads((run / "config.json").read_text())
    classes = results[0]["classes"]
    kinds = run_kinds(results)
    summary: dict = {s: {t: {} for t in kinds} for s in SPLITS}
    rows: list[dict] = []
    for s in SPLITS:
        for t in kinds:
            for r in results:
                m = r[s][t]
                rows.append({"fold": r["fold"], "split": s, "thresholds": t, **{k: m[k] for k in SCALAR_METRICS},
                             "auc_classes_skipped": m["auc_classes_skipped"], "n_images": m["n_images"]})
            for k in SCALAR_METRICS:
                summary[s][t][k] = _mean_std([r[s][t][k] for r in results])
            for label, idx in (("mean", 0), ("std", 1)):
                rows.append({"fold": label, "split": s, "thresholds": t,
                             **{k: summary[s][t][k][idx] for k in SCALAR_METRICS}})
    write_csv(run / "metrics.csv", rows, ["fold", "split", "thresholds", *SCALAR_METRICS, "auc_classes_skipped",
                                          "n_images"], float_format=".6f")
    pc_rows = [{"fold": r["fold"], "split": s, "thresholds": t, "class": c, "name": class_name(c),
                **{k: r[s][t]["per_class"][k][j] for k in ("precision", "recall", "f1", "support", "roc_auc")}}
               for r in results for s in SPLITS for t in kinds for j, c in enumerate(classes)]
    write_csv(run / "per_class.csv", pc_rows, ["fold", "split", "thresholds", "class", "name", "precision", "recall",
                                               "f1", "support", "roc_auc"], float_format=".6f")

    th = np.array([r["thresholds"] for r in results])
    write_json(run / "thresholds.json", {
        "classes": classes, "names": [class_name(c) for c in classes],
        "per_fold": {str(r["fold"]): r["thresholds"] for r in results},
        "mean": th.mean(0).round(4).tolist(),
    })
    md = summary_markdown(cfg, results, summary)
    if all("val_labels" in r for r in results):  # MLCM + accuracy by labels per image, merged over folds
        md += merge_label_reports(run, [r["val_labels"] for r in results], [class_name(c) for c in classes])
    write_text(run / "summary.md", md)
    plot_curves(run, len(results))
    plot_per_class(run, results)
    return summary


def run_kinds(results: list[dict]) -> tuple[str, ...]:
    """The threshold kinds every fold of a run reports (older runs: tuned and 0.5)."""
    return tuple(t for t in THRESHOLD_KINDS if all(t in r["val"] for r in results))


def _fmt(ms: tuple[float, float]) -> str:
    return f"{ms[0]:.3f} ± {ms[1]:.3f}"


def summary_markdown(cfg: dict, results: list[dict], summary: dict) -> str:
    classes = results[0]["classes"]
    k = len(results)
    kinds = run_kinds(results)
    name = f"{cfg['model']} ({cfg['augment']} augmentation)"
    held = results[0].get("selected_on") == "held"
    chosen = results[0].get("selected", f"best {cfg['select']}")
    where = (f"held-out {cfg.get('threshold_split', 0):g} of each training fold (never the validation fold)" if held
             else "validation fold (--threshold-split 0)")
    evaluated = (f"Evaluated weights per fold: {chosen}" + ("" if cfg.get("average", "none") != "none" else
                 f", chosen on the {where}") + f"; TTA {cfg.get('tta', 'none')}. ")
    th_from = ("Thresholds chosen on the held-out part (tuned: per-class F1 optimum; positive-proportion: "
               "predicted positive rate = training prevalence)." if held else
               "Thresholds chosen on the training part's own predictions.")
    lines = [
        f"# protgan classify: {cfg['model']}, {len(classes)} classes, {k}-fold cross-validation",
        "",
        f"Data `{cfg['data']}`, channels {cfg['channels']} at {cfg['size']} px, head {cfg['head']}, "
        f"loss {cfg['loss']}, {cfg['epochs']} epochs, {describe_optimizer(cfg)}, batch size "
        f"{cfg['batch_size']} ({cfg['batch_schedule']} schedule), augmentation {cfg['augment']}"
        + (f" with synthetic images from `{cfg['synthetic']}`" if cfg.get("synthetic") else "")
        + (" (**--allow-leakage**: their generators may have seen validation images, so the scores are "
           "optimistic)" if cfg.get("allow_leakage") else "")
        + f", {'ImageNet-pretrained' if cfg['pretrained'] else 'trained from scratch'}. "
        + evaluated + "Values: mean ± std over folds; "
        "Test = the validation fold (as in the paper's tables). " + th_from,
        "",
        "## Table 2/3 layout (tuned thresholds)",
        "",
        "| Metrics / Models | Macro F1 Train | Macro F1 Test | Micro F1 Train | Micro F1 Test | Accuracy Train | Accuracy Test |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in kinds:
        if t != "tuned":
            lines += ["", f"## Same, at {'threshold 0.5' if t == '0.5' else t + ' thresholds'}", "",
                      "| Metrics / Models | Macro F1 Train | Macro F1 Test | Micro F1 Train | Micro F1 Test | Accuracy Train | Accuracy Test |",
                      "|---|---|---|---|---|---|---|"]
        cells = [_fmt(summary[s][t][m]) for m in ("macro_f1", "micro_f1", "label_accuracy") for s in SPLITS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Every metric", "", "| Metric | " + " | ".join(f"{'Train' if s == 'train' else 'Test'} ({t})"
                                                          for t in kinds for s in SPLITS) + " |",
              "|---|" + "---|" * (len(kinds) * len(SPLITS))]
    for m in SCALAR_METRICS:
        lines.append(f"| {LABELS[m]} | " + " | ".join(_fmt(summary[s][t][m]) for t in kinds for s in SPLITS) + " |")
    skipped = max(r["val"]["tuned"]["auc_classes_skipped"] for r in results)
    lines += ["", "Macro F1 is the mean of per-class F1; the paper's eq. 8 (harmonic mean of the averaged precision "
              "and recall) is reported beside it. Accuracy is label-wise (Hamming): the paper's eq. 12 is garbled "
              "(TP + FN in the numerator), and its Keras models reported binary accuracy, which is this. "
              + (f"ROC AUC skips classes with a single label value in a part (up to {skipped} per fold)."
                 if skipped else "ROC AUC is defined for every class.")]
    lines += ["", "## Per class (validation, tuned thresholds, mean over folds)", "",
              "| Class | Name | Precision | Recall | F1 | Support | Threshold |", "|---|---|---|---|---|---|---|"]
    for j, c in enumerate(classes):
        vals = {q: np.mean([r["val"]["tuned"]["per_class"][q][j] for r in results]) for q in ("precision", "recall", "f1")}
        sup = sum(r["val"]["tuned"]["per_class"]["support"][j] for r in results)
        thr = np.mean([r["thresholds"][j] for r in results])
        lines.append(f"| {c} | {class_name(c)} | {vals['precision']:.3f} | {vals['recall']:.3f} | {vals['f1']:.3f} "
                     f"| {sup} | {thr:.2f} |")
    lines += ["", "Files: metrics.csv (every fold, split and threshold kind), per_class.csv, thresholds.json, "
              "curves.png, per_class.png, fold_K/best_{loss,macro_f1,micro_f1}.pt, fold_K/history.json.", ""]
    return "\n".join(lines)


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_curves(run: Path, k: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for f in range(k):
        hist = json.loads((run / f"fold_{f}" / "history.json").read_text())
        ep = [h["epoch"] for h in hist]
        c = colors[f % len(colors)]
        ax_loss.plot(ep, [h["train_loss"] for h in hist], "-", color=c, marker="o", ms=3, label=f"fold {f} train")
        ax_loss.plot(ep, [h["val_loss"] for h in hist], "--", color=c, marker="s", ms=3, label=f"fold {f} val")
        ax_f1.plot(ep, [h["val_macro_f1"] for h in hist], "-", color=c, marker="o", ms=3, label=f"fold {f} val macro")
        ax_f1.plot(ep, [h["val_micro_f1"] for h in hist], ":", color=c, marker="^", ms=3, label=f"fold {f} val micro")
        ax_f1.plot(ep, [h["train_macro_f1"] for h in hist], "--", color=c, alpha=0.5, label=f"fold {f} train macro")
    ax_loss.set(title="loss per epoch (solid: train, dashed: validation)", xlabel="epoch", ylabel="loss")
    ax_f1.set(title="F1 per epoch at threshold 0.5", xlabel="epoch", ylabel="F1", ylim=(0, 1))
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_f1):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    _save_figure(fig, run / "curves.png")


def plot_per_class(run: Path, results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = results[0]["classes"]
    n = len(classes)
    names = [f"{c} {class_name(c)}" for c in classes]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.38 * n))
    y = np.arange(n)
    h = 0.27
    for off, (split, t, label) in zip((-h, 0, h), (("val", "tuned", "validation, tuned thresholds"),
                                                   ("val", "0.5", "validation, threshold 0.5"),
                                                   ("train", "tuned", "train, tuned thresholds"))):
        f1 = np.array([r[split][t]["per_class"]["f1"] for r in results])
        ax.barh(y + off, f1.mean(0), h, xerr=f1.std(0) if len(results) > 1 else None, label=label, capsize=2)
    support = np.sum([r["val"]["tuned"]["per_class"]["support"] for r in results], axis=0)
    for j in range(n):
        ax.text(1.01, y[j], f"n={support[j]}", va="center", fontsize=7, transform=ax.get_yaxis_transform())
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="F1 (mean ± std over folds)", title="per-class F1 (n = validation images with the label)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save_figure(fig, run / "per_class.png")
