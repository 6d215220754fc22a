"""Multilabel stratified K-fold (iterative stratification), written once to `folds.csv`.

Every later stage (classify, compare) reads the same file, so a model, an augmentation arm and a
seed are always compared on identical splits. Folds are made from the full 28-class label table;
a class subset simply uses the rows it keeps. Synthetic images are never assigned a fold: they join
the training part of a fold at load time (see `protgan.classify`), so validation never sees them.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from protgan.core.atomic import write_text
from protgan.data.classes import NUM_CLASSES
from protgan.core.errors import ProtganError

FOLDS_FILE = "folds.csv"
FOLDS_SEED = 0  # the one split: every stage (classify, compare, train-gan --fold) makes it with this seed


@dataclass
class MultilabelFolds:
    """Fold number per Id."""

    fold_of: dict[str, int]
    k: int

    def split(self, fold: int, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """(train ids, validation ids) of `ids` for validation fold `fold`."""
        if not 0 <= fold < self.k:
            raise ProtganError(f"--fold {fold} out of range 0..{self.k - 1}")
        missing = [i for i in ids if i not in self.fold_of]
        if missing:
            raise ProtganError(f"Id {missing[0]!r} has no fold in {FOLDS_FILE} ({len(missing)} such Ids)")
        train = [i for i in ids if self.fold_of[i] != fold]
        val = [i for i in ids if self.fold_of[i] == fold]
        return train, val


def make_folds(ids: Sequence[str], targets: Sequence[Sequence[int]], k: int = 5, seed: int = 0) -> MultilabelFolds:
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    if k < 2:
        raise ProtganError(f"--folds {k}: need at least 2 folds")
    if len(ids) < k:
        raise ProtganError(f"--folds {k}: only {len(ids)} images")
    y = np.zeros((len(ids), NUM_CLASSES), np.int8)
    for i, t in enumerate(targets):
        y[i, list(t)] = 1
    fold = np.empty(len(ids), np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, val) in enumerate(splitter.split(np.zeros(len(ids)), y)):
        fold[val] = f
    return MultilabelFolds({i: int(f) for i, f in zip(ids, fold)}, k)


def write_folds(path: str | os.PathLike, folds: MultilabelFolds) -> None:
    lines = ["Id,fold"] + [f"{i},{f}" for i, f in folds.fold_of.items()]
    write_text(path, "\n".join(lines) + "\n")


def read_folds(path: str | os.PathLike) -> MultilabelFolds:
    path = Path(path)
    fold_of: dict[str, int] = {}
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header != ["Id", "fold"]:
            raise ProtganError(f"{path} row 1: header is {header!r}, expected 'Id,fold'")
        for n, row in enumerate(rows, start=2):
            if len(row) != 2 or not row[1].strip().isdigit():
                raise ProtganError(f"{path} row {n}: expected 'Id,fold' with an integer fold")
            fold_of[row[0]] = int(row[1])
    if not fold_of:
        raise ProtganError(f"{path}: no rows")
    return MultilabelFolds(fold_of, max(fold_of.values()) + 1)


def load_or_make_folds(
    ids: Sequence[str], targets: Sequence[Sequence[int]], path: str | os.PathLike, k: int = 5, seed: int = 0
) -> MultilabelFolds:
    """Read `path` when it exists (checking it covers `ids` with `k` folds), else make and write it."""
    path = Path(path)
    if path.exists():
        folds = read_folds(path)
        if folds.k != k:
            raise ProtganError(f"{path}: has {folds.k} folds but --folds {k} was asked (delete it to re-split)")
        missing = [i for i in ids if i not in folds.fold_of]
        if missing:
            raise ProtganError(f"{path}: Id {missing[0]!r} has no fold ({len(missing)} such Ids; delete it to re-split)")
        return folds
    folds = make_folds(ids, targets, k, seed)
    write_folds(path, folds)
    return folds


def dataset_folds(data: str | os.PathLike, ids: Sequence[str], targets: Sequence[Sequence[int]], k: int,
                  fallback_dir: str | os.PathLike) -> tuple[MultilabelFolds, Path, str | None]:
    """The dataset's shared split: DATA/folds.csv (made from the full label table if missing), or, when
    DATA is not writable and has none, the same deterministic split in FALLBACK_DIR/folds.csv.
    Returns (folds, the file, a note when the fallback was used). classify and train-gan --fold both
    call this, so a generator's fold K is the classifier's fold K."""
    path = Path(data) / FOLDS_FILE
    note = None
    if not path.exists() and not (Path(data).is_dir() and os.access(data, os.W_OK | os.X_OK)):
        path = Path(fallback_dir) / FOLDS_FILE
        note = f"{data} is not writable: folds written to {path}"
    return load_or_make_folds(ids, targets, path, k=k, seed=FOLDS_SEED), path, note
