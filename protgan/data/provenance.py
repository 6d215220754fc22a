"""Which real images a generator saw, and the leakage check of synthetic images under cross-validation.

A generator trained on fold K's validation images can hand them to the classifier in disguise (a
few-shot GAN memorises), so for fold K of a cross-validation only synthetic images whose generator
never saw a fold-K validation image may join the training part. This module owns that rule:

- `ids_record(ids, fold, folds)`: what train-gan stores in RUN/config.json and every checkpoint:
  the fold (None = every image of the class), the sorted training Ids, their sha256 and count.
- synth copies each class's record into SYN/manifest.json (fold, sha256, count) and the full Id lists
  into SYN/generator_ids.json (`GENERATOR_IDS_FILE`, checked against the manifest's sha256).
- `check_fold(syn, val_ids, fold, allow_leakage)`: before fold K trains on SYN, every class's generator
  is checked against fold K's validation Ids; one that saw any is refused with one line naming the
  class, the fold and how many it saw. A synthetic set without the record (an older synth, images
  from elsewhere) is refused too. `allow_leakage` (the paper's likely setup) lets both through and
  returns what leaked, so every table can say so.

Synthetic sets come in two layouts (`synthetic_for_fold`): one set for every fold (SYN/train.csv), or
one per fold (SYN/fold_K/train.csv, what `protgan synth --runs RUNS` writes for per-fold runs
RUNS/fold_K/class_C).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from protgan.core.errors import ProtganError
from protgan.data.dataset import open_dataset

MANIFEST = "manifest.json"
GENERATOR_IDS_FILE = "generator_ids.json"
FOLD_DIR = "fold_{}"
LEAKAGE_FLAG = "--allow-leakage"


def ids_sha256(ids: Iterable[str]) -> str:
    """sha256 of the sorted Ids, one per line (order-free: the same set always hashes the same)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def ids_record(ids: Sequence[str], fold: int | None, folds: int | None) -> dict[str, Any]:
    """The training-Ids record of one generator: fold, folds, sorted Ids, their sha256 and count."""
    ids = sorted(ids)
    return {"fold": fold, "folds": folds, "train_ids": ids, "train_ids_sha256": ids_sha256(ids),
            "n_train_ids": len(ids)}


def fold_dir(root: str | Path, fold: int) -> Path:
    return Path(root) / FOLD_DIR.format(fold)


def per_fold_folders(root: str | Path) -> dict[int, Path]:
    """fold K -> ROOT/fold_K for every such sub-folder (empty when ROOT is not a per-fold layout)."""
    root = Path(root)
    out = {}
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("fold_") and p.name[5:].isdigit():
                out[int(p.name[5:])] = p
    return dict(sorted(out.items()))


def synthetic_for_fold(syn: str | Path, fold: int) -> Path:
    """The synthetic set fold `fold` trains with: SYN itself (one set for every fold) or SYN/fold_K."""
    syn = Path(syn)
    if (syn / "train.csv").is_file():
        return syn
    per_fold = per_fold_folders(syn)
    if not per_fold:
        raise ProtganError(f"--synthetic {syn}: neither a synthetic dataset (train.csv) nor per-fold sets (fold_K/)")
    if fold not in per_fold:
        raise ProtganError(f"--synthetic {syn}: no {FOLD_DIR.format(fold)}/ for fold {fold} "
                           f"(has {', '.join(p.name for p in per_fold.values())}); train and synthesise that fold")
    return per_fold[fold]


@dataclass
class GeneratorRecord:
    class_index: int
    fold: int | None
    ids: set[str] | None  # None: no record (an older synth, or images from elsewhere)


def read_generator_records(syn: str | Path) -> dict[int, GeneratorRecord]:
    """Class -> the training Ids of the generator that made its images in the synthetic set SYN.

    Classes of train.csv without a record map to GeneratorRecord(c, None, None)."""
    syn = Path(syn)
    records: dict[int, GeneratorRecord] = {}
    try:
        manifest = json.loads((syn / MANIFEST).read_text())
    except (OSError, ValueError):
        manifest = {}
    lists: dict[str, list[str]] = {}
    if (syn / GENERATOR_IDS_FILE).is_file():
        try:
            lists = json.loads((syn / GENERATOR_IDS_FILE).read_text())
        except ValueError as e:
            raise ProtganError(f"{syn / GENERATOR_IDS_FILE}: unreadable JSON ({e})") from None
    for entry in manifest.get("classes", []) if isinstance(manifest, dict) else []:
        c = int(entry["class_index"])
        gen = entry.get("generator") or {}
        ids = lists.get(str(c))
        if ids is None or "train_ids_sha256" not in gen:
            records[c] = GeneratorRecord(c, None, None)
            continue
        if ids_sha256(ids) != gen["train_ids_sha256"]:
            raise ProtganError(f"{syn / GENERATOR_IDS_FILE}: class {c}'s Ids do not match the sha256 in "
                               f"{syn / MANIFEST} (edited or copied from another set)")
        records[c] = GeneratorRecord(c, gen.get("fold"), set(ids))
    return records


@dataclass
class FoldCheck:
    """What `check_fold` found for one fold: per class, the validation images its generator saw."""

    fold: int
    synthetic: Path
    seen: dict[int, int] = field(default_factory=dict)  # class -> validation images its generator saw
    unrecorded: list[int] = field(default_factory=list)  # classes without a training-Ids record
    seen_ids: set[str] = field(default_factory=set)  # the validation images any generator saw

    @property
    def n_val_seen(self) -> int:
        """Distinct validation images seen: not the sum over classes, since a conditional run is the generator
        of every class of its subset, and per-class runs with --select any share multi-label images."""
        return len(self.seen_ids)

    @property
    def leaky(self) -> bool:
        return bool(self.unrecorded) or any(self.seen.values())

    def summary(self) -> str:
        parts = [f"class {c}: {n}" for c, n in self.seen.items() if n]
        parts += [f"class {c}: unknown (no record)" for c in self.unrecorded]
        return "; ".join(parts) if parts else "none"


def check_fold(syn: str | Path, classes: Sequence[int], val_ids: Iterable[str], fold: int,
               allow_leakage: bool = False) -> FoldCheck:
    """Refuse (ProtganError, one line) synthetic images of `classes` whose generator saw any of fold
    `fold`'s validation images, or whose generator's training Ids are not recorded; with
    `allow_leakage` nothing is refused and the returned FoldCheck says what leaked."""
    syn_set = synthetic_for_fold(syn, fold)
    present = sorted({c for t in open_dataset(syn_set).targets for c in t if c in set(classes)})
    records = read_generator_records(syn_set)
    val = set(val_ids)
    check = FoldCheck(fold, syn_set)
    for c in present:
        rec = records.get(c)
        if rec is None or rec.ids is None:
            check.unrecorded.append(c)
            if not allow_leakage:
                raise ProtganError(
                    f"--synthetic {syn_set}: class {c}'s generator has no record of its training images (made "
                    f"before protgan recorded them, or not by protgan synth), so fold {fold} cannot be checked "
                    f"for leakage; retrain per fold (train-gan --fold K), or pass {LEAKAGE_FLAG} to use it anyway")
            continue
        hit = rec.ids & val
        n = len(hit)
        check.seen[c] = n
        check.seen_ids |= hit
        if n and not allow_leakage:
            trained = "every image of the class" if rec.fold is None else f"the training part of fold {rec.fold}"
            raise ProtganError(
                f"--synthetic {syn_set}: class {c}'s generator saw {n} of fold {fold}'s validation images "
                f"(trained on {trained}); use generators trained on fold {fold}'s training part "
                f"(train-gan --fold {fold}), or pass {LEAKAGE_FLAG} to reproduce the leaky setup")
    return check
