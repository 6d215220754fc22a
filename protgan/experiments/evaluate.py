"""`protgan evaluate`: is a synthetic set any good? Per class, with the floor or reference beside each:

    fid, kid   how far the synthetic images are from the real ones (floor: two real halves)
    pr         improved precision (fidelity) and recall (diversity), k = 3 (floor: two real halves)
    copies     share of synthetic images nearer a training image than real images are to each other
               (reference: the share of fresh real images), and a figure of the most-copied ones
    cas        a classifier trained on the synthetic images only, tested on the real validation fold,
               against the same classifier trained on as many real images (protgan.experiments.cas)

The feature measures come from protgan.evaluation's registry, all in one feature space (`--features`;
`auto` = inception when its weights are there, else the offline efficientnet_lite0). The training
images of `copies` are those of the train-gan runs named in the synthetic set's manifest (their data,
class, --classes and --select); without a manifest, the real images of the class. Outputs in OUT:

    evaluate.csv, evaluate.json   one row per class, every number; config.json
    copies.png                    the most-copied synthetic images beside their nearest training images
    cas/                          the two classify runs per arm (resumable) and cas.json
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from protgan.core.atomic import write_json
from protgan.core.device import resolve_device
from protgan.core.errors import ProtganError
from protgan.core.tables import write_csv
from protgan.data import ImageSet, class_name
from protgan.data.cache import read_stack
from protgan.evaluation.features import check_feature_spec, dataset_features, make_extractor
from protgan.evaluation.fid import check_common, counting_progress, open_class_sets
from protgan.evaluation.memorisation import plot_copies
from protgan.evaluation.metrics import COLUMNS, MetricInputs, compute_metrics, parse_metrics
from protgan.experiments.cas import CasConfig, run_cas
from protgan.experiments.config import ALL_METRICS, EvaluateConfig  # noqa: F401  (re-exported)
from protgan.gan.checkpoint import read_run_config, training_set

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass
class EvaluateResult:
    rows: list[dict[str, Any]]  # one per class: class_index, class_name, n_real, n_fake, n_train, metric columns
    metrics: list[str]
    features: str
    channels: tuple[str, ...]
    size: int
    cas: dict[str, Any] | None = None  # macro F1 of both arms, fold, n_val
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


def resolve_features(spec: str, weights: str | None) -> str:
    """`auto`: inception when its weights file is there, else the offline efficientnet_lite0."""
    if spec.strip().lower() != "auto":
        return spec
    try:
        check_feature_spec("inception", weights)
        return "inception"
    except ProtganError:
        if weights is not None:
            raise
        return "efficientnet_lite0"


def validate(cfg: EvaluateConfig) -> list[str]:
    names = parse_metrics(cfg.metrics)
    check_common(cfg.kid_subsets, cfg.kid_subset_size, cfg.batch)
    if cfg.pr_k < 1:
        raise ProtganError(f"--pr-k {cfg.pr_k}: must be at least 1")
    if not 0 < cfg.copy_percentile < 100:
        raise ProtganError(f"--copy-percentile {cfg.copy_percentile}: expected a value in (0, 100)")
    if cfg.copies_shown < 0:
        raise ProtganError(f"--copies-shown {cfg.copies_shown}: must be >= 0")
    if cfg.cas_epochs < 1 or cfg.cas_batch_size < 1:
        raise ProtganError("--cas-epochs and --cas-batch-size: must be at least 1")
    if not 0 <= cfg.cas_fold < cfg.cas_folds:
        raise ProtganError(f"--cas-fold {cfg.cas_fold} out of range 0..{cfg.cas_folds - 1}")
    return names


def training_images(manifest: dict[str, Any], class_index: int) -> tuple[ImageSet, list[str]] | None:
    """The images the class's generator was trained on, from the synthetic set's manifest (None: unknown)."""
    for entry in manifest.get("classes", []):
        if int(entry.get("class_index", -1)) == class_index and entry.get("run"):
            try:
                return training_set(read_run_config(entry["run"]))
            except ProtganError:
                return None
    return None


def run_evaluate(cfg: EvaluateConfig, log: Log = print, progress: Progress | None = None) -> EvaluateResult:
    """Every asked measure per class, written to OUT; `progress(label, done, total)`."""
    names = validate(cfg)
    feature_names = [n for n in names if n in COLUMNS]
    features = resolve_features(cfg.features, cfg.weights)
    need = cfg.pr_k + 1 if "pr" in names else 2
    sets = open_class_sets(cfg.real, cfg.fake, cfg.classes, cfg.channels, cfg.select, cfg.size, min_images=need)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    copy_panels = []
    extractor = make_extractor(features, resolve_device(cfg.device), cfg.weights) if feature_names else None
    # the generator's training images per class: None = unknown (then the real images of the class)
    train_sets = {c: training_images(sets.manifest, c) for c, _, _ in sets.classes} if "copies" in names else {}
    for c, real_ids, _ in sets.classes:
        found = train_sets.get(c)
        if found is not None and found[0].root.resolve() == sets.real.root.resolve() and found[1] == real_ids:
            train_sets[c] = None  # the same images as the real set: its features serve
        elif found is None and "copies" in names:
            notes.append(f"class {c}: the generator's training images are not known (no manifest run with "
                         f"readable data); near-copies are measured against the real images of the class")
    total = sum(len(r) + len(f) + (len(train_sets[c][1]) if train_sets.get(c) else 0) for c, r, f in sets.classes)
    tick = counting_progress(total, progress)
    for c, real_ids, fake_ids in sets.classes:
        row: dict[str, Any] = {"class_index": c, "class_name": class_name(c), "n_real": len(real_ids),
                               "n_fake": len(fake_ids)}
        if extractor is not None:
            feats = lambda ds, ids: dataset_features(ds, ids, sets.channels, sets.size, extractor,  # noqa: E731
                                                     cfg.batch, cfg.workers, tick)
            rf, ff = feats(sets.real, real_ids), feats(sets.fake, fake_ids)
            train_ds, train_ids, tf = sets.real, real_ids, None
            if train_sets.get(c) is not None:
                train_ds, train_ids = train_sets[c]
                tf = feats(train_ds, train_ids)
            inputs = MetricInputs(rf, ff, tf, seed=cfg.seed, kid_subsets=cfg.kid_subsets,
                                  kid_subset_size=cfg.kid_subset_size, k=cfg.pr_k, copy_percentile=cfg.copy_percentile)
            row["n_train"] = len(train_ids)
            row.update(compute_metrics(feature_names, inputs))
            if "copies" in names and cfg.copies_shown:
                st = inputs.cache["copies"]
                top = st.most_copied(cfg.copies_shown)
                copy_panels.append((f"class {c} ({class_name(c)})\n{100 * st.share:.0f}% near-copies",
                                    [read_stack(sets.fake, fake_ids[k], sets.channels, sets.size) for k in top],
                                    [read_stack(train_ds, train_ids[st.nearest[k]], sets.channels, sets.size)
                                     for k in top],
                                    [float(st.distance[k]) for k in top], st.threshold))
        rows.append(row)
    result = EvaluateResult(rows, names, extractor.name if extractor else "-", sets.channels, sets.size, notes=notes)
    if copy_panels:
        png = plot_copies(out / "copies.png", [p[:4] for p in copy_panels], sets.channels, [p[4] for p in copy_panels])
        result.files["copies"] = str(png)
    if "cas" in names:
        cas = run_cas(CasConfig(real=cfg.real, fake=cfg.fake, out=str(out / "cas"), classes=[r["class_index"] for r in rows],
                                subset=sets.subset, channels=sets.channels, size=sets.size, select=cfg.select, model=cfg.cas_model,
                                epochs=cfg.cas_epochs, batch_size=cfg.cas_batch_size, folds=cfg.cas_folds,
                                fold=cfg.cas_fold, seed=cfg.seed, workers=cfg.workers, device=cfg.device),
                      log=log, progress=progress)
        for j, row in enumerate(rows):
            row.update(cas_f1_synthetic=cas.f1["synthetic"][j], cas_f1_real=cas.f1["real"][j],
                       cas_n_train=cas.n_train[row["class_index"]])
        result.cas = {"macro_f1_synthetic": cas.macro_f1["synthetic"], "macro_f1_real": cas.macro_f1["real"],
                      "fold": cas.fold, "n_val": cas.n_val, "model": cfg.cas_model, "epochs": cfg.cas_epochs,
                      "leakage": cas.leakage}
        if cas.leakage:
            result.notes.append(f"CAS is LEAKY: the generators saw real validation images of fold {cas.fold} "
                                f"({cas.leakage}); use per-fold generators (train-gan --fold {cas.fold})")
    write_outputs(out, cfg, result)
    return result


# ------------------------------------------------------------------------------------------ outputs
CAS_COLUMNS = ("cas_f1_synthetic", "cas_f1_real", "cas_n_train")


def csv_columns(names: Sequence[str]) -> list[str]:
    cols = ["class_index", "class_name", "n_real", "n_fake"]
    if any(n in COLUMNS for n in names):
        cols.append("n_train")
    for n in names:
        cols += list(COLUMNS.get(n, CAS_COLUMNS if n == "cas" else ()))
    return cols


def write_outputs(out: Path, cfg: EvaluateConfig, result: EvaluateResult) -> None:
    cols = csv_columns(result.metrics)
    write_csv(out / "evaluate.csv", result.rows, cols)
    result.files.update(csv=str(out / "evaluate.csv"), json=str(out / "evaluate.json"))
    write_json(out / "evaluate.json", {"features": result.features, "channels": list(result.channels),
                                       "size": result.size, "metrics": result.metrics, "cas": result.cas,
                                       "notes": result.notes, "classes": result.rows,
                                       "verdicts": verdicts(result.rows)})
    write_json(out / "config.json", asdict(cfg))


def _f(v: Any, digits: int = 2, scale: float = 1.0) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(x) else f"{x * scale:.{digits}f}"


def tables(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) per measure, each narrow enough for a terminal (the CLI prints them one by one)."""
    out = []
    for n in names:
        header, body = table(rows, [n])
        out.append((METRIC_TITLES[n], header, body))
    return out


METRIC_TITLES = {"fid": "FID (floor: two real halves)", "kid": "KID (floor: two real halves)",
                 "pr": "precision / recall: fidelity / diversity (floor: two real halves)",
                 "copies": "near-copies of training images (ref.: fresh real images)",
                 "cas": "CAS: trained on synthetic, tested on real (ref.: as many real images)"}


def table(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of strings: each measure with its floor / reference beside it (CLI, report, README)."""
    header = ["class", "name", "real", "fake"]
    for n in names:
        header += {"fid": ["FID", "FID ½", "floor"], "kid": ["KID x1e3", "floor"],
                   "pr": ["P / R", "P / R ½", "floor P / R"], "copies": ["near-copies", "real ref."],
                   "cas": ["CAS F1 syn.", "F1 real (same n)"]}[n]
    out = []
    for r in rows:
        cells = [str(r["class_index"]), r["class_name"], str(r["n_real"]), str(r["n_fake"])]
        for n in names:
            if n == "fid":
                cells += [_f(r.get("fid")), _f(r.get("fid_half")), _f(r.get("fid_real_real"))]
            elif n == "kid":
                cells += [f"{_f(r.get('kid'), 2, 1e3)} ± {_f(r.get('kid_std'), 2, 1e3)}",
                          _f(r.get("kid_real_real"), 2, 1e3)]
            elif n == "pr":
                cells += [f"{_f(r.get('precision'))} / {_f(r.get('recall'))}",
                          f"{_f(r.get('precision_half'))} / {_f(r.get('recall_half'))}",
                          f"{_f(r.get('precision_real_real'))} / {_f(r.get('recall_real_real'))}"]
            elif n == "copies":
                cells += [f"{_f(r.get('near_copies'), 0, 100)}%", f"{_f(r.get('near_copies_real'), 0, 100)}%"]
            elif n == "cas":
                cells += [f"{_f(r.get('cas_f1_synthetic'))} (n={r.get('cas_n_train', '-')})", _f(r.get("cas_f1_real"))]
        out.append(cells)
    return header, out


def _ok(v: Any) -> bool:
    try:
        return not math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def class_verdict(r: dict[str, Any]) -> str:
    """One sentence that reads the three answers of a class (the thresholds say what "bad" means)."""
    c = r["class_index"]
    problems = []
    if _ok(r.get("near_copies")):
        ref = r["near_copies_real"] if _ok(r.get("near_copies_real")) else 0.05
        if r["near_copies"] > max(2 * ref, 0.10):
            problems.append(f"are near-copies: {100 * r['near_copies']:.0f}% (fresh real images: {100 * ref:.0f}%)")
    if _ok(r.get("recall_half")) and _ok(r.get("recall_real_real")) and r["recall_half"] < 0.5 * r["recall_real_real"]:
        problems.append(f"cover little of the class: recall {r['recall_half']:.2f} vs {r['recall_real_real']:.2f} "
                        f"real-vs-real at equal n")
    if _ok(r.get("precision_half")) and _ok(r.get("precision_real_real")) and \
            r["precision_half"] < 0.5 * r["precision_real_real"]:
        problems.append(f"look unlike the real images: precision {r['precision_half']:.2f} vs "
                        f"{r['precision_real_real']:.2f} real-vs-real")
    if _ok(r.get("cas_f1_synthetic")) and _ok(r.get("cas_f1_real")) and \
            r["cas_f1_synthetic"] < 0.5 * r["cas_f1_real"]:
        problems.append(f"teach a classifier little: F1 {r['cas_f1_synthetic']:.2f} trained on them vs "
                        f"{r['cas_f1_real']:.2f} on as many real images")
    if problems:
        return f"synthetic images of class {c} ({r['class_name']}) " + "; they ".join(problems) + "."
    measured = [k for k, key in (("fidelity", "precision"), ("diversity", "recall"), ("memorisation", "near_copies"),
                                 ("usefulness", "cas_f1_synthetic")) if _ok(r.get(key))]
    if not measured:
        return f"class {c} ({r['class_name']}): no precision/recall, near-copy or CAS measure was asked."
    return (f"synthetic images of class {c} ({r['class_name']}): no warning on {', '.join(measured)} "
            f"(within half of the real-vs-real values, near-copies under twice the real reference).")


def verdicts(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [class_verdict(r) for r in rows]
