"""Classification accuracy score (Ravuri & Vinyals 2019): does a synthetic set teach a classifier?

A classifier trained on synthetic images only is evaluated on the real validation fold; the same
classifier trained on as many real images (per class, from the real training part of that fold) is
the reference. Both are ordinary classify runs (protgan.classify.train.run_classify) on the shared
folds (DATA/folds.csv), so they resume like any classify run and differ by their training images only:

    OUT/synthetic/data/   train.csv + train/ (links to the images): the synthetic training images and
                          the real validation fold; folds.csv puts the validation fold where the shared
                          folds put it
    OUT/synthetic/run/    the classify run (fold_K/result.json: per-class F1 on the real validation fold)
    OUT/real/data/, OUT/real/run/    the same with n_c real training images per class
    OUT/cas.json          per class: images, F1 (synthetic, real); macro F1 of both

n_c = min(synthetic images of class c, real training images of c under `select`): the two training
sets match class by class. A real-trained classifier that reaches F1 0.8 where the synthetic one
reaches 0.3 says the synthetic images carry little of what separates the classes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from protgan.classify.config import ClassifyConfig
from protgan.classify.train import run_classify
from protgan.core.atomic import write_json, write_text
from protgan.core.device import resolve_device
from protgan.core.errors import ProtganError
from protgan.core.jobs import cpu_jobs, parallel_map
from protgan.data import FOLDS_FILE, ImageSet, class_name, load_or_make_folds, open_dataset, write_label_table
from protgan.data.provenance import check_fold
from protgan.data.selection import check_select, select_class_ids

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]
ARMS = ("synthetic", "real")


@dataclass
class CasConfig:
    real: str
    fake: str
    out: str
    classes: list[int] = field(default_factory=list)
    subset: list[int] | None = None  # the classes `select only` is judged within (None: `classes`)
    channels: tuple[str, ...] = ("red", "green", "blue")
    size: int = 64
    select: str = "only"  # the real training images that stand for a class (as train-gan chooses them)
    model: str = "efficientnet_lite0"  # ImageNet weights shipped offline; small and quick
    epochs: int = 3
    batch_size: int = 32
    folds: int = 5  # the shared folds of DATA/folds.csv
    fold: int = 0  # the validation fold
    seed: int = 0
    workers: int | None = 0
    device: str = "auto"
    jobs: int = 0  # CPU: the two arms in this many processes, one thread each (0: one per core); GPU: 1


@dataclass
class CasResult:
    classes: list[int]
    n_train: dict[int, int]  # images per class in each arm's training set
    f1: dict[str, list[float]]  # arm -> per-class F1 on the real validation fold (tuned thresholds)
    macro_f1: dict[str, float]
    n_val: int
    fold: int
    leakage: str | None = None  # validation images the generators saw (protgan.data.provenance), None: none


def _shared_folds(cfg: CasConfig, ds: ImageSet, out: Path):
    path = Path(cfg.real) / FOLDS_FILE
    if not path.exists() and not os.access(cfg.real, os.W_OK):
        path = out / FOLDS_FILE  # the same deterministic split classify would write
    return load_or_make_folds(ds.ids, ds.targets, path, k=cfg.folds, seed=0)


def training_sets(cfg: CasConfig, real: ImageSet, fake: ImageSet, train_ids: Sequence[str]
                  ) -> tuple[dict[str, list[str]], dict[int, int]]:
    """The two arms' training Ids (each in its dataset's order) and n_c per class."""
    rng = np.random.default_rng(cfg.seed)
    real_pool = set(train_ids)
    pool_ids = [i for i in real.ids if i in real_pool]
    pool_targets = [real.targets[k] for k, i in enumerate(real.ids) if i in real_pool]
    chosen: dict[str, set[str]] = {"synthetic": set(), "real": set()}
    n_train: dict[int, int] = {}
    for c in cfg.classes:
        syn_c = select_class_ids(fake.ids, fake.targets, c, cfg.classes, "any")
        real_c = select_class_ids(pool_ids, pool_targets, c, cfg.subset or cfg.classes, cfg.select)
        n = min(len(syn_c), len(real_c))
        if n == 0:
            where = "synthetic images" if not syn_c else f"real training images (--select {cfg.select}, fold {cfg.fold})"
            raise ProtganError(f"cas: class {c} ({class_name(c)}) has no {where}")
        n_train[c] = n
        # a seeded subset, kept in dataset order so a full subset trains exactly like classify would
        for arm, ids in (("synthetic", syn_c), ("real", real_c)):
            pick = np.sort(rng.permutation(len(ids))[:n]) if n < len(ids) else np.arange(n)
            chosen[arm].update(ids[k] for k in pick)
    return ({"synthetic": [i for i in fake.ids if i in chosen["synthetic"]],
             "real": [i for i in real.ids if i in chosen["real"]]}, n_train)


def _link(src: Path, dst: Path) -> None:
    if dst.exists() or dst.is_symlink():
        return
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # file systems without symlinks
        shutil.copy2(src, dst)


def write_arm_dataset(folder: Path, train: list[tuple[ImageSet, str]], val: list[str], real: ImageSet,
                      channels: Sequence[str], val_fold: int, k: int) -> None:
    """DATA for one arm: its training images and the real validation fold, linked, with a folds.csv that
    keeps the validation fold's number (classify seeds by fold) and puts the training images in another."""
    ids = [i for _, i in train] + list(val)
    index = {id_: ds for ds, id_ in train} | {i: real for i in val}
    lookup: dict[str, tuple[int, ...]] = {}
    for ds in {id(ds): ds for ds in index.values()}.values():
        lookup.update(zip(ds.ids, ds.targets))
    targets = [lookup[i] for i in ids]
    table = folder / "train.csv"
    train_fold = k - 1 if val_fold != k - 1 else 0
    folds_text = "\n".join(["Id,fold"] + [f"{i},{train_fold}" for _, i in train]
                           + [f"{i},{val_fold}" for i in val]) + "\n"
    if table.is_file():
        try:
            same = open_dataset(folder).ids == ids and (folder / FOLDS_FILE).read_text() == folds_text
        except ProtganError:
            same = False
        if not same:
            raise ProtganError(f"{folder}: made for other images (another synthetic set, fold or --select); "
                               f"use another --out or delete {folder.parent}")
        return
    img_dir = folder / "train"
    img_dir.mkdir(parents=True, exist_ok=True)
    for id_ in ids:
        for ch in channels:
            src = index[id_].path(id_, ch)
            _link(src, img_dir / f"{id_}_{ch}{src.suffix}")
    write_text(folder / FOLDS_FILE, folds_text)
    write_label_table(table, ids, targets)  # last: its presence marks the folder complete


def run_cas(cfg: CasConfig, log: Log = print, progress: Progress | None = None) -> CasResult:
    """Train (or resume) both arms and read their per-class F1 on the real validation fold."""
    check_select(cfg.select)
    if not cfg.classes:
        raise ProtganError("cas: no classes to evaluate")
    if not 0 <= cfg.fold < cfg.folds:
        raise ProtganError(f"--cas-fold {cfg.fold} out of range 0..{cfg.folds - 1}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    real_all = open_dataset(cfg.real)
    fake = open_dataset(cfg.fake).restrict(cfg.classes)
    clash = set(fake.ids) & set(real_all.ids)
    if clash:
        raise ProtganError(f"--fake {cfg.fake}: Id {sorted(clash)[0]!r} is also a real image in {cfg.real}")
    folds = _shared_folds(cfg, real_all, out)
    real = real_all.restrict(cfg.classes)
    train_ids, val_ids = folds.split(cfg.fold, real.ids)
    if not val_ids:
        raise ProtganError(f"cas: fold {cfg.fold} has no real validation image of classes {cfg.classes}")
    arms, n_train = training_sets(cfg, real, fake, train_ids)
    # a generator that saw the validation fold inflates CAS: measured anyway, and said (not refused: an
    # evaluation of a leaky set is how its leakage is shown)
    leak = check_fold(cfg.fake, cfg.classes, val_ids, cfg.fold, allow_leakage=True)
    leakage = leak.summary() if leak.leaky else None
    if leakage:
        log(f"cas: LEAKY: the generators saw validation images of fold {cfg.fold} ({leakage})")
    f1: dict[str, list[float]] = {}
    macro: dict[str, float] = {}
    for arm in ARMS:
        src = fake if arm == "synthetic" else real
        write_arm_dataset(out / arm / "data", [(src, i) for i in arms[arm]], val_ids, real, cfg.channels,
                          cfg.fold, cfg.folds)
        log(f"cas {arm}: {len(arms[arm])} training images ({', '.join(f'{c}:{n}' for c, n in n_train.items())}), "
            f"{len(val_ids)} real validation images (fold {cfg.fold})")
    jobs = cpu_jobs(cfg.jobs) if resolve_device(cfg.device).type == "cpu" else 1
    # the two arms are independent classify runs (each resumable): side by side on a CPU's cores
    tick = progress or (lambda label, done, total: None)
    tick("cas: classifier arms", 0, len(ARMS))
    configs = [asdict(classify_config(cfg, out / arm)) for arm in ARMS]
    for k, _ in enumerate(parallel_map(_train_arm, configs, min(jobs, len(ARMS))), 1):
        tick("cas: classifier arms", k, len(ARMS))
    for arm in ARMS:
        res = json.loads((out / arm / "run" / f"fold_{cfg.fold}" / "result.json").read_text())
        val = res["val"]["tuned"]
        f1[arm] = [float(v) for v in val["per_class"]["f1"]]
        macro[arm] = float(val["macro_f1"])
    result = CasResult(list(cfg.classes), n_train, f1, macro, len(val_ids), cfg.fold, leakage)
    write_json(out / "cas.json", {"config": asdict(cfg), **asdict(result)})
    return result


def _train_arm(config: dict) -> None:
    """One arm's classify run (a process-pool job: picklable in, nothing out; result.json is the output)."""
    run_classify(ClassifyConfig(**config), log=lambda m: None)


def classify_config(cfg: CasConfig, arm_dir: Path) -> ClassifyConfig:
    """One arm's classify run: no augmentation (the training images are the measure), the same model,
    seed and fold in both arms."""
    return ClassifyConfig(data=str(arm_dir / "data"), out=str(arm_dir / "run"), model=cfg.model,
                          classes=",".join(map(str, cfg.classes)), channels=",".join(cfg.channels), size=cfg.size,
                          folds=cfg.folds, fold=cfg.fold, epochs=cfg.epochs, batch_size=cfg.batch_size,
                          augment="none", pretrained=True, seed=cfg.seed, workers=cfg.workers, device=cfg.device)
