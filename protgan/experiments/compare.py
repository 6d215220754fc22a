"""`run_compare`: the paper's experiment (Tables 2 and 3): the same models trained with classic and with
GAN augmentation on identical folds and seeds, and the paired statistics of the difference.

Every (model, arm, fold, seed) is one *cell*, trained by the classify engine into

    DIR/cells/MODEL/ARM/seed_S/            a classify run (config.json, fold_K/, report files)
    DIR/cells/MODEL/ARM/seed_S/fold_K/result.json    the cell's metrics: the cell is done when it exists

so a finished cell is never trained again, `fold` / `cells` run a subset (cells can run on different
machines and be copied into one DIR), and `collect` merges them:

    DIR/comparison.md    the paper's table shape per arm (mean ± std over folds and seeds) and the
                         paired differences GAN - classic with a 95% t interval and p-values
    DIR/comparison.csv   the table, every metric, train and test
    DIR/differences.csv  the paired statistics (every contrast and metric)
    DIR/cells.csv        every cell's metrics (the numbers the statistics are computed from)
    DIR/comparison.png   per-cell test macro F1 per arm, and the differences with their intervals
    DIR/config.json      the options (CompareConfig)

The statistics: the arms of one model share folds and seeds (and so the validation images and the
initial weights), so the cells pair up by (fold, seed). Over the n pairs, d = GAN - classic: mean,
a t-based confidence interval (mean ± t_{n-1} s/sqrt(n)), the paired t-test (scipy's ttest_rel), the
Wilcoxon signed-rank test (when at least one difference is non-zero), and, because cross-validation
folds share training images (their differences are not independent, so the plain t interval is too
narrow), the Nadeau & Bengio (2003) corrected interval, whose variance is s^2 (1/n + n_test/n_train).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from protgan.core.atomic import atomic_path, write_json, write_text
from protgan.core.errors import ProtganError
from protgan.core.runfolder import check_same_options, claim_run_folder, read_saved_options
from protgan.core.tables import write_csv
from protgan.classify.metrics import SCALAR_METRICS
from protgan.classify.models import get_spec
from protgan.classify.config import ClassifyConfig
from protgan.classify.train import run_classify
from protgan.core.options import per_invocation
from protgan.experiments.config import THRESHOLD_CHOICES, CompareConfig
from protgan.data import FOLDS_FILE, dataset_folds, load_or_make_folds, open_dataset, resolve_subset
from protgan.data.provenance import LEAKAGE_FLAG, check_fold, fold_dir, per_fold_folders
from protgan.gan import find_runs
from protgan.gan.config import SynthConfig
from protgan.gan.synth import MANIFEST, run_synth

# (arm, baseline): the differences reported; the first is the paper's claim
# gan - none: the GAN images alone, without the classic transforms the paper's gan arm also lacks
CONTRASTS = (("gan", "classic"), ("classic+gan", "classic"), ("gan", "none"), ("classic", "none"))
# the paper's table columns: (metric key in result.json, label)
TABLE_METRICS = (("macro_f1", "Macro F1"), ("micro_f1", "Micro F1"), ("label_accuracy", "Accuracy"))
CELLS_DIR = "cells"
# options that may differ between the invocations of one comparison (machines, subsets)
_PER_INVOCATION = per_invocation(CompareConfig)  # fold, cells, workers, device, keep_checkpoints
# what compare writes in OUT: an input elsewhere inside OUT is not written over
COMPARE_WRITES = ("cells", "synthetic", "config.json", "comparison.md", "comparison.csv", "comparison.png", "folds.csv")
# The paper's Tables 2 (classic) and 3 (GAN): test-fold means, for reference beside ours.
PAPER_TEST = {
    "vgg16": {"classic": (0.812, 0.871, 0.884), "gan": (0.834, 0.894, 0.906)},
    "nasnet_mobile": {"classic": (0.778, 0.826, 0.820), "gan": (0.791, 0.847, 0.843)},
    "resnet50": {"classic": (0.794, 0.845, 0.853), "gan": (0.813, 0.862, 0.876)},
    "inception_v4": {"classic": (0.785, 0.837, 0.834), "gan": (0.797, 0.855, 0.861)},
}

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, order=True)
class Cell:
    model: str
    arm: str
    fold: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.model}:{self.arm}:{self.fold}:{self.seed}"

    def run_dir(self, out: Path) -> Path:
        return Path(out) / CELLS_DIR / self.model / self.arm / f"seed_{self.seed}"

    def result_path(self, out: Path) -> Path:
        return self.run_dir(out) / f"fold_{self.fold}" / "result.json"

    def done(self, out: Path) -> bool:
        return self.result_path(out).is_file()


def validate(cfg: CompareConfig) -> None:
    cfg.model_list()
    cfg.seed_list()
    if cfg.folds < 2:
        raise ProtganError(f"--folds {cfg.folds}: need at least 2 folds (the cells pair up by fold)")
    if cfg.fold is not None and not 0 <= cfg.fold < cfg.folds:
        raise ProtganError(f"--fold {cfg.fold} out of range 0..{cfg.folds - 1}")
    if cfg.synthetic and cfg.gan_runs:
        raise ProtganError("--synthetic and --gan-runs: give one (a synthetic dataset, or the runs to make it from)")
    if cfg.thresholds not in THRESHOLD_CHOICES:
        raise ProtganError(f"--thresholds {cfg.thresholds!r}: expected {', '.join(THRESHOLD_CHOICES)}")
    if not 0.5 <= cfg.confidence < 1:
        raise ProtganError(f"--confidence {cfg.confidence}: expected a level in [0.5, 1), e.g. 0.95")
    if cfg.per_class < 1:
        raise ProtganError(f"--per-class {cfg.per_class}: must be at least 1")
    for name in ("size", "epochs", "batch_size"):
        v = getattr(cfg, name)
        if v is not None and v < 1:
            raise ProtganError(f"--{name.replace('_', '-')} {v}: must be >= 1")


def all_cells(cfg: CompareConfig) -> list[Cell]:
    return [Cell(m, a, f, s) for m in cfg.model_list() for a in cfg.arms() for s in cfg.seed_list()
            for f in range(cfg.folds)]


def parse_cell(text: str, cfg: CompareConfig) -> Cell:
    """`MODEL:ARM:FOLD:SEED`, checked against the comparison's models, arms, folds and seeds."""

    parts = text.strip().split(":")
    if len(parts) != 4:
        raise ProtganError(f"--cell {text!r}: expected MODEL:ARM:FOLD:SEED, e.g. vgg16:gan:0:1")
    model, arm, fold, seed = parts
    model = get_spec(model).name
    if model not in cfg.model_list():
        raise ProtganError(f"--cell {text!r}: model {model} is not in --models {cfg.models}")
    if arm not in cfg.arms():
        raise ProtganError(f"--cell {text!r}: arm {arm!r} is not one of {', '.join(cfg.arms())}")
    try:
        fold_i, seed_i = int(fold), int(seed)
    except ValueError:
        raise ProtganError(f"--cell {text!r}: FOLD and SEED must be integers") from None
    if not 0 <= fold_i < cfg.folds:
        raise ProtganError(f"--cell {text!r}: fold {fold_i} out of range 0..{cfg.folds - 1}")
    if seed_i not in cfg.seed_list():
        raise ProtganError(f"--cell {text!r}: seed {seed_i} is not in --seeds {cfg.seeds}")
    return Cell(model, arm, fold_i, seed_i)


def selected_cells(cfg: CompareConfig) -> list[Cell]:
    """The cells this invocation is asked to run (all, one fold, or the --cell list)."""
    if cfg.cells:
        chosen = sorted({parse_cell(c, cfg) for c in cfg.cells})
    else:
        chosen = all_cells(cfg)
    if cfg.fold is not None:
        chosen = [c for c in chosen if c.fold == cfg.fold]
    return chosen


def classify_config(cfg: CompareConfig, cell: Cell, synthetic: str | None):
    """The classify engine's options for one cell: everything but the arm (and its synthetic set)
    is the same in every arm, so arms differ by augmentation only."""

    return ClassifyConfig(
        data=cfg.data, out=str(cell.run_dir(Path(cfg.out))), model=cell.model, classes=cfg.classes,
        channels=cfg.channels, size=cfg.size, folds=cfg.folds, fold=cell.fold, epochs=cfg.epochs,
        batch_size=cfg.batch_size, augment=cell.arm, synthetic=synthetic if "gan" in cell.arm else None,
        pretrained=cfg.pretrained, seed=cell.seed, workers=cfg.workers, device=cfg.device,
        keep_checkpoints=cfg.keep_checkpoints,
        allow_leakage=cfg.allow_leakage,
    )


def _check_same_comparison(out: Path, cfg: CompareConfig) -> None:
    saved = read_saved_options(out / "config.json")
    if saved is not None:
        check_same_options(out / "config.json", saved, asdict(cfg), may_differ=_PER_INVOCATION,
                           path_keys=("data", "synthetic", "gan_runs"), hint=f"use another --out (or delete {out})")


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def shared_folds(cfg: CompareConfig, log: Log = print) -> None:
    """Make DATA/folds.csv once, before any cell (cells running in parallel would race to write it)."""

    data = Path(cfg.data)
    if not _writable_dir(data) and not (data / FOLDS_FILE).exists():
        return  # each cell then writes the same deterministic split into its own run folder
    ds = open_dataset(data)
    folds, _, _ = dataset_folds(data, ds.ids, ds.targets, cfg.folds, data, log=log)  # duplicate-aware, as classify
    log(f"folds: {data / FOLDS_FILE} ({folds.k} folds, shared by every cell)")


def prepare_synthetic(cfg: CompareConfig, log: Log = print,
                      progress: Progress | None = None) -> str | None:
    """The synthetic set of the GAN arms: --synthetic, or synth run from --gan-runs into DIR/synthetic."""
    if not any("gan" in a for a in cfg.arms()):
        return None
    if cfg.synthetic:
        if not Path(cfg.synthetic).is_dir():
            raise ProtganError(f"--synthetic {cfg.synthetic}: directory does not exist")
        return cfg.synthetic
    if not cfg.gan_runs:
        raise ProtganError("the gan arm needs synthetic images: pass --synthetic SYN or --gan-runs RUNS")

    ds = open_dataset(cfg.data)
    classes = resolve_subset(cfg.classes, ds.targets)
    _check_gan_runs(cfg, classes)
    syn = Path(cfg.out) / "synthetic"
    want = {"runs": str(cfg.gan_runs), "per_class": cfg.per_class, "seed": cfg.seed}
    manifest = syn / MANIFEST
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        same_labels = (m.get("labels") or "single") == cfg.synth_labels  # per-class runs' manifests: None
        same_classes = {e["class_index"] for e in m["classes"]} == set(classes)
        if all(m.get(k) == v for k, v in want.items()) and same_labels and same_classes:
            log(f"synthetic: {syn} already made ({m['total']} images)")
            return str(syn)
    log(f"synthetic: {cfg.per_class} images per class from {cfg.gan_runs} -> {syn}")
    run_synth(SynthConfig(runs=str(cfg.gan_runs), out=str(syn), per_class=cfg.per_class, labels=cfg.synth_labels,
                          classes=",".join(map(str, classes)), seed=cfg.seed, device=cfg.device), progress=progress)
    return str(syn)


def _check_gan_runs(cfg: CompareConfig, classes: Sequence[int]) -> None:
    """--gan-runs is one run per class (RUNS/class_C: one synthetic set for every fold) or per-fold runs
    (RUNS/fold_K/class_C for every fold K: fold K's set comes from RUNS/fold_K); every class must be there."""
    per_fold = per_fold_folders(cfg.gan_runs)
    if per_fold:
        absent = [k for k in range(cfg.folds) if k not in per_fold]
        if absent:
            raise ProtganError(f"--gan-runs {cfg.gan_runs}: per-fold runs, but no {fold_dir('', absent[0])}/ for fold "
                               f"{absent[0]} of --folds {cfg.folds} (train-gan --classes {cfg.classes} --folds {cfg.folds})")
        where = {k: per_fold[k] for k in range(cfg.folds)}
    else:
        where = {None: Path(cfg.gan_runs)}
    for k, folder in where.items():
        runs = find_runs(folder)
        missing = [c for c in classes if c not in runs]
        if missing:
            raise ProtganError(f"--gan-runs {folder}: no train-gan run for class(es) {', '.join(map(str, missing))} "
                               f"of --classes {cfg.classes} (train one per class{'' if k is None else ' for fold ' + str(k)})")


def check_leakage(cfg: CompareConfig, synthetic: str | None, log: Log = print) -> dict[int, object]:
    """Every fold's synthetic images against that fold's validation images, before any cell trains
    (protgan.data.provenance.check_fold: refused unless --allow-leakage). fold -> FoldCheck."""
    if synthetic is None:
        return {}
    ds = open_dataset(cfg.data)
    classes = resolve_subset(cfg.classes, ds.targets)
    real = ds.restrict(classes)
    folds, _, _ = dataset_folds(cfg.data, ds.ids, ds.targets, cfg.folds, cfg.out)
    checks = {}
    for k in range(cfg.folds):
        val = [i for i in real.ids if folds.fold_of[i] == k]
        checks[k] = check_fold(synthetic, classes, val, k, cfg.allow_leakage)
        if checks[k].leaky:
            log(f"fold {k}: LEAKY (--allow-leakage): generators saw validation images of this fold "
                f"({checks[k].summary()})")
    return checks


def run_compare(cfg: CompareConfig, log: Log = print, progress: Progress | None = None) -> "CompareResult | None":
    """Train the asked cells that are not done yet; when every cell is done, write the comparison.
    Returns it, or None while cells are missing."""

    validate(cfg)
    out = Path(cfg.out)
    # no lock on OUT: invocations with other --fold/--cells may share it (one per GPU); each cell's fold
    # folder is locked by classify
    claim_run_folder(out, {"--data": cfg.data, "--synthetic": cfg.synthetic, "--gan-runs": cfg.gan_runs},
                     writes=COMPARE_WRITES, what="compare")
    out.mkdir(parents=True, exist_ok=True)
    _check_same_comparison(out, cfg)
    synthetic = prepare_synthetic(cfg, log, progress)
    # cells record the synthetic set actually used (DIR/synthetic when made from --gan-runs)
    stored = replace(cfg, fold=None, cells=[])
    write_json(out / "config.json", asdict(stored))
    shared_folds(cfg, log)
    check_leakage(cfg, synthetic, log)
    todo = [c for c in selected_cells(cfg) if not c.done(out)]
    skipped = len(selected_cells(cfg)) - len(todo)
    log(f"cells: {len(todo)} to train, {skipped} already done"
        + (f" (of {len(all_cells(cfg))} in the comparison)" if cfg.fold is not None or cfg.cells else ""))
    for i, cell in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] cell {cell.key}")
        run_classify(classify_config(cfg, cell, synthetic), log=log, progress=progress)
    missing = missing_cells(cfg)
    if missing:
        log(f"{len(missing)} cells not done yet (e.g. {missing[0].key}): run them (--fold K or --cell "
            f"MODEL:ARM:FOLD:SEED, on any machine, into this DIR), then `protgan compare --out {out} --collect`")
        return None
    return collect(out, log)


def missing_cells(cfg: CompareConfig) -> list[Cell]:
    return [c for c in all_cells(cfg) if not c.done(Path(cfg.out))]


# ------------------------------------------------------------------------------------ statistics
@dataclass
class PairedStats:
    """d = a - b over n matched pairs."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    std_diff: float  # sample std (ddof 1)
    ci_low: float  # t interval at `confidence`
    ci_high: float
    t: float
    p_t: float  # paired t-test, two-sided
    p_wilcoxon: float  # Wilcoxon signed-rank, two-sided (nan when every difference is 0 or n < 2)
    ci_low_corrected: float  # Nadeau & Bengio's corrected resampled t interval
    ci_high_corrected: float
    p_corrected: float
    confidence: float = 0.95


def paired_stats(a: Sequence[float], b: Sequence[float], confidence: float = 0.95,
                 test_train_ratio: float | None = None) -> PairedStats:
    """Paired statistics of a - b. `test_train_ratio` (n_test / n_train of one fold) enables the
    Nadeau-Bengio correction for cross-validation; without it the corrected fields are nan."""
    from scipy import stats

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired_stats: a and b must be 1-D and of the same length")
    n = len(a)
    nan = float("nan")
    d = a - b
    mean = float(d.mean()) if n else nan
    if n < 2:
        return PairedStats(n, float(a.mean()) if n else nan, float(b.mean()) if n else nan, mean, nan,
                           nan, nan, nan, nan, nan, nan, nan, nan, confidence)
    sd = float(d.std(ddof=1))
    tcrit = float(stats.t.ppf((1 + confidence) / 2, n - 1))
    se = sd / math.sqrt(n)
    if sd > 0:
        res = stats.ttest_rel(a, b)
        t, p_t = float(res.statistic), float(res.pvalue)
    else:  # every pair differs by the same amount: the t statistic is undefined
        t, p_t = nan, nan
    p_w = nan
    if np.any(d != 0):
        p_w = float(stats.wilcoxon(a, b).pvalue)
    lo_c = hi_c = p_c = nan
    if test_train_ratio is not None and sd > 0:
        se_c = sd * math.sqrt(1 / n + test_train_ratio)
        lo_c, hi_c = mean - tcrit * se_c, mean + tcrit * se_c
        p_c = float(2 * stats.t.sf(abs(mean / se_c), n - 1))
    elif test_train_ratio is not None:
        lo_c = hi_c = mean
    return PairedStats(n, float(a.mean()), float(b.mean()), mean, sd, mean - tcrit * se, mean + tcrit * se,
                       t, p_t, p_w, lo_c, hi_c, p_c, confidence)


# ------------------------------------------------------------------------------------- collecting
@dataclass
class CompareResult:
    out: Path
    config: dict
    cells: list[dict]  # one row per cell: model, arm, fold, seed, {split}_{metric}, n_*
    table: list[dict]  # one row per (model, arm): n and mean/std of every metric, train and test
    differences: list[dict]  # one row per (model, contrast, metric): PairedStats fields
    files: dict[str, str] = field(default_factory=dict)
    leakage: str = ""  # leakage_line: empty when every GAN-arm cell is clean

    def difference(self, model: str, arm: str = "gan", baseline: str = "classic",
                   metric: str = "macro_f1") -> dict | None:
        for d in self.differences:
            if (d["model"], d["arm"], d["baseline"], d["metric"]) == (model, arm, baseline, metric):
                return d
        return None


def _read_cell(out: Path, cell: Cell, thresholds: str) -> dict:
    result = json.loads(cell.result_path(out).read_text())
    ids_path = cell.result_path(out).parent / "ids.json"
    row = {"model": cell.model, "arm": cell.arm, "fold": cell.fold, "seed": cell.seed,
           "n_train_real": result["n_train_real"], "n_train_synthetic": result["n_train_synthetic"],
           "n_val": result["n_val"], "selected_epoch": result.get("selected_epoch")}
    row.update(_cell_leakage(cell, result))
    for split, name in (("train", "train"), ("val", "test")):
        for m in SCALAR_METRICS:
            row[f"{name}_{m}"] = float(result[split][thresholds][m])
    if ids_path.is_file():
        ids = json.loads(ids_path.read_text())
        val = set(ids["val"])
        leaked = val & set(ids.get("synthetic", []))
        if leaked:  # the engine guarantees this; a copied-in cell from elsewhere is checked too
            raise ProtganError(f"{ids_path}: synthetic image {sorted(leaked)[0]!r} is in the validation part")
        row["_val_ids"] = val
    return row


def _cell_leakage(cell: Cell, result: dict) -> dict:
    """cells.csv's leakage columns: `leakage` is clean (no generator saw a validation image of the cell's
    fold), LEAKY (some did: --allow-leakage), unknown (the generators' images are not recorded, or the cell
    predates the record) or empty (no synthetic images); n_val_seen: how many of the fold's validation
    images the generators saw."""
    if "gan" not in cell.arm:
        return {"leakage": "", "n_val_seen": 0}
    rec = result.get("leakage")
    if rec is None or rec.get("unrecorded"):
        return {"leakage": "unknown", "n_val_seen": int(rec["n_val_seen"]) if rec else 0}
    return {"leakage": "LEAKY" if rec["n_val_seen"] else "clean", "n_val_seen": int(rec["n_val_seen"])}


def leakage_line(rows: Sequence[dict], allowed: bool) -> str:
    """One sentence for the top of every table: empty when every gan cell is clean."""
    gan = [r for r in rows if r.get("leakage")]
    leaky = [r for r in gan if r["leakage"] == "LEAKY"]
    unknown = [r for r in gan if r["leakage"] == "unknown"]
    if not leaky and not unknown:
        return "" if not allowed else (f"{LEAKAGE_FLAG} was given, but no generator saw a validation image of its "
                                       f"fold: the GAN arms are clean.")
    parts = []
    if leaky:
        seen = [r["n_val_seen"] for r in leaky]
        parts.append(f"in {len(leaky)} of {len(gan)} GAN-arm cells the generators saw {min(seen)}-{max(seen)} of "
                     f"the cell's validation images")
    if unknown:
        parts.append(f"in {len(unknown)} of {len(gan)} GAN-arm cells the generators' training images are not "
                     f"recorded")
    return (f"**LEAKY ({LEAKAGE_FLAG})**: {'; '.join(parts)}. Their test scores are optimistic (a generator can "
            f"hand validation images to the classifier in disguise): this is the paper's likely setup, not a "
            f"clean estimate of what GAN augmentation buys.")


def collect(out: str | os.PathLike, log: Log = print) -> CompareResult:
    """Merge the cells of DIR into comparison.md/.csv/.png, differences.csv and cells.csv.
    Every cell must be done: the error lists the missing ones."""
    out = Path(out)
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise ProtganError(f"--collect {out}: no config.json (not a compare folder; run compare first)")
    cfg = CompareConfig(**{k: v for k, v in json.loads(cfg_path.read_text()).items()
                           if k in CompareConfig.__dataclass_fields__})
    cfg.out = str(out)
    missing = missing_cells(cfg)
    if missing:
        shown = ", ".join(c.key for c in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise ProtganError(f"--collect {out}: {len(missing)} of {len(all_cells(cfg))} cells not done: {shown}{more} "
                           f"(run them with --cell MODEL:ARM:FOLD:SEED)")
    rows = [_read_cell(out, c, cfg.thresholds) for c in all_cells(cfg)]
    # identical folds: every arm of a (model, fold, seed) validated on the same images
    by_pair: dict[tuple, set] = {}
    for r in rows:
        if "_val_ids" in r:
            key = (r["model"], r["fold"], r["seed"])
            if key in by_pair and by_pair[key] != r["_val_ids"]:
                raise ProtganError(f"{out}: cell {r['model']}:{r['arm']}:{r['fold']}:{r['seed']} was validated on "
                                   f"other images than its other arms (different folds.csv?)")
            by_pair.setdefault(key, r["_val_ids"])
    for r in rows:
        r.pop("_val_ids", None)
    table = _table(cfg, rows)
    diffs = _differences(cfg, rows)
    result = CompareResult(out, asdict(cfg), rows, table, diffs, leakage=leakage_line(rows, cfg.allow_leakage))
    _write_outputs(result, cfg)
    log(f"wrote {out}/comparison.md, comparison.csv, differences.csv, cells.csv, comparison.png")
    return result


def _metric_keys() -> tuple[str, ...]:
    return SCALAR_METRICS


def _table(cfg: CompareConfig, rows: list[dict]) -> list[dict]:
    table = []
    for m in cfg.model_list():
        for a in cfg.arms():
            sel = [r for r in rows if r["model"] == m and r["arm"] == a]
            leak = sorted({r.get("leakage") for r in sel} - {"", None}, key=("LEAKY", "unknown", "clean").index)
            # the seeds of a fold share its synthetic set and validation images: count each fold once
            seen_per_fold = {r["fold"]: r.get("n_val_seen", 0) for r in sel}
            entry = {"model": m, "arm": a, "n_cells": len(sel),
                     "n_train_synthetic": int(np.mean([r["n_train_synthetic"] for r in sel])),
                     "leakage": leak[0] if leak else "", "n_val_seen": int(sum(seen_per_fold.values()))}
            for split in ("train", "test"):
                for k in _metric_keys():
                    v = np.array([r[f"{split}_{k}"] for r in sel], np.float64)
                    entry[f"{split}_{k}_mean"] = float(np.nanmean(v))
                    entry[f"{split}_{k}_std"] = float(np.nanstd(v, ddof=1)) if len(v) > 1 else 0.0
            table.append(entry)
    return table


def _differences(cfg: CompareConfig, rows: list[dict]) -> list[dict]:
    arms = cfg.arms()
    out = []
    for m in cfg.model_list():
        for arm, base in CONTRASTS:
            if arm not in arms or base not in arms:
                continue
            index = {(r["arm"], r["fold"], r["seed"]): r for r in rows if r["model"] == m}
            pairs = sorted((f, s) for (a, f, s) in index if a == arm and (base, f, s) in index)
            ratio = float(np.mean([index[(base, f, s)]["n_val"] / index[(base, f, s)]["n_train_real"]
                                   for f, s in pairs]))
            for metric, _ in TABLE_METRICS:
                a_vals = [index[(arm, f, s)][f"test_{metric}"] for f, s in pairs]
                b_vals = [index[(base, f, s)][f"test_{metric}"] for f, s in pairs]
                st = paired_stats(a_vals, b_vals, cfg.confidence, test_train_ratio=ratio)
                leak = {index[(a, f, s)].get("leakage", "") for a in (arm, base) for f, s in pairs} - {""}
                out.append({"model": m, "arm": arm, "baseline": base, "metric": metric,
                            "test_train_ratio": ratio, **asdict(st),
                            "leakage": next((k for k in ("LEAKY", "unknown", "clean") if k in leak), "")})
    return out


# ---------------------------------------------------------------------------------------- outputs
def _fmt_ms(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def _fmt(v: float, digits: int = 3, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def verdict(d: dict) -> str:
    """One honest sentence about one difference."""
    corrected = not math.isnan(d["ci_low_corrected"])
    lo, hi = (d["ci_low_corrected"], d["ci_high_corrected"]) if corrected else (d["ci_low"], d["ci_high"])
    if math.isnan(lo):
        return "too few pairs for an interval"
    what = f"the {int(round(d['confidence'] * 100))}% {'CV-corrected ' if corrected else ''}interval"
    if lo > 0:
        return f"{d['arm']} better: {what} excludes 0"
    if hi < 0:
        return f"{d['arm']} worse: {what} excludes 0"
    return f"no clear difference: {what} contains 0"


def leak_mark(leakage: str, before: str = ", ", after: str = "") -> str:
    """The mark a table row of leaky (or unverifiable) GAN cells carries."""
    return {"LEAKY": f"{before}LEAKY{after}", "unknown": f"{before}leakage unknown{after}"}.get(leakage, "")


def comparison_markdown(result: CompareResult, cfg: CompareConfig) -> str:
    models, seeds = cfg.model_list(), cfg.seed_list()
    n_cells = cfg.folds * len(seeds)
    pct = int(round(cfg.confidence * 100))
    lines = [
        "# protgan compare: classic vs GAN augmentation (the paper's Tables 2 and 3)",
        "",
        f"Data `{cfg.data}`, classes {cfg.classes}, {cfg.folds}-fold cross-validation (the shared folds.csv) x "
        f"seeds {','.join(map(str, seeds))} = {n_cells} cells per model and arm; every arm of a model is trained "
        f"on the same folds with the same seeds (same initial weights), so the arms differ by augmentation only. "
        f"Size {cfg.size or 'the recipe default'}, epochs {cfg.epochs or 'the recipe default'}, "
        f"{'ImageNet-pretrained' if cfg.pretrained else 'from scratch'}. Metrics at "
        f"{ {'tuned': 'per-class thresholds tuned on the held-out part of each training fold', '0.5': 'threshold 0.5'}.get(cfg.thresholds, cfg.thresholds + ' thresholds (held-out part)')}; "
        "Test = the validation fold (as in the paper). Values: mean ± std over the cells. "
        "Macro F1 is the mean of per-class F1; Accuracy is label-wise (Hamming) accuracy.",
        "",
    ]
    if result.leakage:
        lines += [result.leakage, ""]
    lines += [
        "| Model | Augmentation | Macro F1 Train | Macro F1 Test | Micro F1 Train | Micro F1 Test | Accuracy Train | Accuracy Test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in result.table:
        cells = [_fmt_ms(t[f"{s}_{m}_mean"], t[f"{s}_{m}_std"]) for m, _ in TABLE_METRICS for s in ("train", "test")]
        extra = f" (+{t['n_train_synthetic']} synthetic{leak_mark(t['leakage'])})" if "gan" in t["arm"] else ""
        lines.append(f"| {t['model']} | {t['arm']}{extra} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"## Paired differences over (fold, seed) cells, test fold",
        "",
        f"| Model | Difference | Metric | n | Baseline | Arm | Mean difference | {pct}% CI (t) | p (paired t) "
        f"| p (Wilcoxon) | {pct}% CI (CV-corrected) | p (CV-corrected) | Verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    labels = dict(TABLE_METRICS)
    for d in result.differences:
        lines.append(
            f"| {d['model']} | {d['arm']} - {d['baseline']}{leak_mark(d['leakage'], ' (', ')')} | {labels[d['metric']]} | {d['n']} | {_fmt(d['mean_b'])} "
            f"| {_fmt(d['mean_a'])} | {_fmt(d['mean_diff'], 4, True)} | [{_fmt(d['ci_low'], 4, True)}, "
            f"{_fmt(d['ci_high'], 4, True)}] | {_fmt_p(d['p_t'])} | {_fmt_p(d['p_wilcoxon'])} | "
            f"[{_fmt(d['ci_low_corrected'], 4, True)}, {_fmt(d['ci_high_corrected'], 4, True)}] | "
            f"{_fmt_p(d['p_corrected'])} | {verdict(d)} |")
    lines += [
        "",
        f"The t interval is mean ± t(n-1) s / sqrt(n) over the n paired differences; p (paired t) is scipy's "
        f"`ttest_rel`, p (Wilcoxon) the signed-rank test (with n <= 5 pairs it cannot go below 0.06). Folds of one "
        f"cross-validation share training images, so their differences are correlated and the plain t interval "
        f"is too narrow; the CV-corrected interval (Nadeau & Bengio 2003) inflates the variance to "
        f"s^2 (1/n + n_test/n_train) and is the one to trust.",
    ]
    paper = [m for m in models if m in PAPER_TEST]
    if paper:
        lines += ["", "## The paper's test-fold numbers (Tables 2 and 3), for reference", "",
                  "| Model | Augmentation | Macro F1 | Micro F1 | Accuracy |", "|---|---|---|---|---|"]
        for m in paper:
            for a in ("classic", "gan"):
                lines.append(f"| {m} | {a} | " + " | ".join(f"{v:.3f}" for v in PAPER_TEST[m][a]) + " |")
        lines.append("")
        lines.append("The paper reports means over 5 folds without a spread or a test; its GAN arm adds 1000 "
                     "DCGAN images per class at 512 px.")
    lines += ["", "Files: comparison.csv (every metric), differences.csv, cells.csv (every cell), comparison.png, "
              "cells/MODEL/ARM/seed_S/ (classify runs: checkpoints, curves, per-class reports).", ""]
    return "\n".join(lines)


def _write_outputs(result: CompareResult, cfg: CompareConfig) -> None:
    out = result.out
    metrics = _metric_keys()
    cell_cols = ["model", "arm", "fold", "seed", "n_train_real", "n_train_synthetic", "n_val", "selected_epoch",
                 "leakage", "n_val_seen"] + [f"{s}_{m}" for s in ("train", "test") for m in metrics]
    table_cols = ["model", "arm", "n_cells", "n_train_synthetic", "leakage", "n_val_seen"] + [
        f"{s}_{m}_{q}" for s in ("train", "test") for m in metrics for q in ("mean", "std")]
    diff_cols = ["model", "arm", "baseline", "metric", "leakage", "n", "mean_b", "mean_a", "mean_diff", "std_diff",
                 "ci_low", "ci_high", "t", "p_t", "p_wilcoxon", "ci_low_corrected", "ci_high_corrected", "p_corrected",
                 "test_train_ratio", "confidence"]
    write_csv(out / "cells.csv", result.cells, cell_cols)
    write_csv(out / "comparison.csv", result.table, table_cols)
    write_csv(out / "differences.csv", result.differences, diff_cols)
    write_text(out / "comparison.md", comparison_markdown(result, cfg))
    plot_comparison(result, cfg, out / "comparison.png")
    result.files = {k: str(out / f) for k, f in (("markdown", "comparison.md"), ("csv", "comparison.csv"),
                                                  ("differences", "differences.csv"), ("cells", "cells.csv"),
                                                  ("figure", "comparison.png"))}


def plot_comparison(result: CompareResult, cfg: CompareConfig, path: Path) -> None:
    """Left: test macro F1 of every cell per model and arm (mean ± std). Right: the paired differences
    with their t and CV-corrected intervals, per model and metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, arms = cfg.model_list(), cfg.arms()
    colors = {"none": "#7f7f7f", "classic": "#1f77b4", "gan": "#d62728", "classic+gan": "#9467bd"}
    # the taller panel sets the height: one row per (model, arm) on the left, per difference on the right
    rows = max(len(models) * len(arms), 0.8 * max(len(result.differences), 3 * len(models)), 4)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 1.8 + 0.45 * rows), gridspec_kw={"width_ratios": [1, 1.2]})
    rng = np.random.default_rng(0)
    pairs = [(m, a) for m in models for a in arms]
    for y, (m, a) in enumerate(pairs):
        vals = np.array([r["test_macro_f1"] for r in result.cells if r["model"] == m and r["arm"] == a])
        ax1.scatter(vals, y + rng.uniform(-0.15, 0.15, len(vals)), s=16, color=colors[a], alpha=0.7,
                    label=a if m == models[0] else None)
        ax1.errorbar(vals.mean(), y, xerr=vals.std(ddof=1) if len(vals) > 1 else 0, fmt="D", color="black",
                     ms=5, capsize=3, lw=1)
        if a == arms[-1] and m != models[-1]:
            ax1.axhline(y + 0.5, color="grey", lw=0.5)
    ax1.set_yticks(range(len(pairs)), [f"{m}\n{a}" for m, a in pairs], fontsize=8)
    ax1.invert_yaxis()
    n_seeds = len(cfg.seed_list())
    ax1.set(xlabel="test macro F1 (dots: cells; diamond: mean ± std)",
            title=f"{cfg.folds} folds x {n_seeds} seed{'s' if n_seeds > 1 else ''} per model and arm")
    ax1.grid(axis="x", alpha=0.3)
    ax1.legend(fontsize=8, loc="best")

    labels = dict(TABLE_METRICS)
    rows = [d for d in result.differences]
    ys = np.arange(len(rows))
    for y, d in zip(ys, rows):
        c = colors.get(d["arm"], "black")
        if not math.isnan(d["ci_low_corrected"]):
            ax2.plot([d["ci_low_corrected"], d["ci_high_corrected"]], [y, y], color=c, lw=6, alpha=0.25,
                     solid_capstyle="butt")
        if not math.isnan(d["ci_low"]):
            ax2.plot([d["ci_low"], d["ci_high"]], [y, y], color=c, lw=2)
        ax2.plot(d["mean_diff"], y, "o", color=c)
    ax2.axvline(0, color="black", lw=1)
    ax2.set_yticks(ys, [f"{d['model']}: {d['arm']} - {d['baseline']}\n{labels[d['metric']]} (n={d['n']})"
                        for d in rows], fontsize=8)
    ax2.invert_yaxis()
    pct = int(round(cfg.confidence * 100))
    ax2.set(xlabel=f"test difference (dot: mean; line: {pct}% t interval; band: CV-corrected)",
            title="paired differences over (fold, seed)")
    ax2.grid(axis="x", alpha=0.3)
    if result.leakage:
        fig.suptitle(f"LEAKY ({LEAKAGE_FLAG}): generators saw validation images; GAN arms optimistic", color="red")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
