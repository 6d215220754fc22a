"""Multilabel stratified K-fold (iterative stratification), written once to `folds.csv`.

Duplicate-aware: given near-duplicate groups (protgan.data.duplicates), each group goes to one fold:
the iterative stratification runs over groups, each with the union of its members' labels, and the
fold of a group is expanded to its members. `folds.csv` records the group (`Id,fold,group`; the group
is named by its first member, a singleton by itself). Without duplicates this is exactly the plain
image-level split. The same rule makes the inner held-out part of a training fold (`holdout_split`).

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
from typing import Callable, Mapping, Sequence

import numpy as np

from protgan.core.atomic import write_text
from protgan.data.classes import NUM_CLASSES
from protgan.core.errors import ProtganError
from protgan.data.dataset import open_dataset
from protgan.data.duplicates import duplicate_groups

FOLDS_FILE = "folds.csv"
FOLDS_SEED = 0  # the one split: every stage (classify, compare, train-gan --fold) makes it with this seed


@dataclass
class MultilabelFolds:
    """Fold number per Id."""

    fold_of: dict[str, int]
    k: int
    group_of: dict[str, str] | None = None  # Id -> duplicate group name (None: every image its own group)

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


def _group_matrix(ids: Sequence[str], targets: Sequence[Sequence[int]],
                  group_of: Mapping[str, str] | None) -> tuple[list[list[int]], np.ndarray]:
    """(member indices per group in order of first appearance, group x class label-union matrix)."""
    members: dict[str, list[int]] = {}
    for k, id_ in enumerate(ids):
        members.setdefault(group_of.get(id_, id_) if group_of else id_, []).append(k)
    groups = list(members.values())
    y = np.zeros((len(groups), NUM_CLASSES), np.int8)
    for g, ms in enumerate(groups):
        for k in ms:
            y[g, list(targets[k])] = 1
    return groups, y


def make_folds(ids: Sequence[str], targets: Sequence[Sequence[int]], k: int = 5, seed: int = 0,
               group_of: Mapping[str, str] | None = None) -> MultilabelFolds:
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    if k < 2:
        raise ProtganError(f"--folds {k}: need at least 2 folds")
    groups, y = _group_matrix(ids, targets, group_of)
    if len(groups) < k:
        raise ProtganError(f"--folds {k}: only {len(groups)} distinct images (after grouping duplicates)")
    fold = np.empty(len(ids), np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, val) in enumerate(splitter.split(np.zeros(len(groups)), y)):
        for g in val:
            fold[groups[g]] = f
    groups_named = {ids[k_]: ids[ms[0]] for ms in groups for k_ in ms}
    return MultilabelFolds({i: int(f) for i, f in zip(ids, fold)}, k, groups_named)


def holdout_split(ids: Sequence[str], targets: Sequence[Sequence[int]], fraction: float, seed: int = 0,
                  group_of: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(fit ids, held-out ids): a multilabel-stratified `fraction` of `ids` held out, duplicate groups kept
    whole (iterative stratification over groups, as `make_folds`). At least one group on each side."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    groups, y = _group_matrix(ids, targets, group_of)
    if len(groups) < 2:
        raise ProtganError(f"--threshold-split {fraction}: a training part of {len(ids)} images cannot be split")
    n_held = min(max(1, int(round(fraction * len(groups)))), len(groups) - 1)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=n_held, random_state=seed)
    _, held = next(splitter.split(np.zeros(len(groups)), y))
    if len(held) == 0 or len(held) == len(groups):  # iterstrat rounds on tiny sets: keep both sides non-empty
        held = np.array([len(groups) - 1])
    held_idx = {k for g in held for k in groups[g]}
    return ([i for k, i in enumerate(ids) if k not in held_idx], [i for k, i in enumerate(ids) if k in held_idx])


def write_folds(path: str | os.PathLike, folds: MultilabelFolds) -> None:
    g = folds.group_of or {}
    lines = ["Id,fold,group"] + [f"{i},{f},{g.get(i, i)}" for i, f in folds.fold_of.items()]
    write_text(path, "\n".join(lines) + "\n")


def read_folds(path: str | os.PathLike) -> MultilabelFolds:
    """`Id,fold,group` (or the older `Id,fold`: every image its own group)."""
    path = Path(path)
    fold_of: dict[str, int] = {}
    group_of: dict[str, str] = {}
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header not in (["Id", "fold"], ["Id", "fold", "group"]):
            raise ProtganError(f"{path} row 1: header is {header!r}, expected 'Id,fold,group' (or 'Id,fold')")
        width = len(header)
        for n, row in enumerate(rows, start=2):
            if len(row) != width or not row[1].strip().isdigit():
                raise ProtganError(f"{path} row {n}: expected '{','.join(header)}' with an integer fold")
            fold_of[row[0]] = int(row[1])
            group_of[row[0]] = row[2] if width == 3 else row[0]
    if not fold_of:
        raise ProtganError(f"{path}: no rows")
    return MultilabelFolds(fold_of, max(fold_of.values()) + 1, group_of)


def load_or_make_folds(
    ids: Sequence[str], targets: Sequence[Sequence[int]], path: str | os.PathLike, k: int = 5, seed: int = 0,
    groups: Callable[[], Mapping[str, str]] | None = None,
) -> MultilabelFolds:
    """Read `path` when it exists (checking it covers `ids` with `k` folds), else make and write it.
    `groups()` gives the duplicate groups; called only when the folds are made (it decodes every image)."""
    path = Path(path)
    if path.exists():
        folds = read_folds(path)
        if folds.k != k:
            raise ProtganError(f"{path}: has {folds.k} folds but --folds {k} was asked (delete it to re-split)")
        missing = [i for i in ids if i not in folds.fold_of]
        if missing:
            raise ProtganError(f"{path}: Id {missing[0]!r} has no fold ({len(missing)} such Ids; delete it to re-split)")
        return folds
    folds = make_folds(ids, targets, k, seed, groups() if groups is not None else None)
    write_folds(path, folds)
    return folds


def dataset_folds(data: str | os.PathLike, ids: Sequence[str], targets: Sequence[Sequence[int]], k: int,
                  fallback_dir: str | os.PathLike,
                  log: Callable[[str], None] | None = None) -> tuple[MultilabelFolds, Path, str | None]:
    """The dataset's shared split: DATA/folds.csv (made from the full label table if missing), or, when
    DATA is not writable and has none, the same deterministic split in FALLBACK_DIR/folds.csv.
    Returns (folds, the file, a note when the fallback was used). classify and train-gan --fold both
    call this, so a generator's fold K is the classifier's fold K."""
    path = Path(data) / FOLDS_FILE
    note = None
    if not path.exists() and not (Path(data).is_dir() and os.access(data, os.W_OK | os.X_OK)):
        path = Path(fallback_dir) / FOLDS_FILE
        note = f"{data} is not writable: folds written to {path}"
    # near-duplicate groups (protgan.data.duplicates) go to one fold; found only when the folds are made
    groups = lambda: duplicate_groups(open_dataset(data), log)  # noqa: E731
    return load_or_make_folds(ids, targets, path, k=k, seed=FOLDS_SEED, groups=groups), path, note
