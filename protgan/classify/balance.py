"""Class balancing by over- and undersampling around a target count (Al-joudi & Arif 2023, section 3.2).

"The true median equals 715 between class samples, but we chose 500 ... we subtracted the median from
each class sample ... If the difference is positive [the class is below the median], we use
oversampling and duplicate samples of that class using the resulting number. Otherwise ... the
undersampling, and remove the resulting number from that class sample. After applying that, there is
still an unbalance problem because each class will affect the other classes." Duplicated images get
one random geometric transformation: rotation by 0/90/180/270 degrees or a horizontal/vertical flip.

`--balance median:500` (the paper), `--balance median` (the true median of the per-class counts),
`--balance none`. What the paper leaves open, decided here and logged:
- undersampling runs first, majority classes largest first; oversampling second, rarest first, for
  every class then below the target (a majority class thinned too far by the removals included);
- each class's difference is taken when its turn comes (a class already thinned by an earlier removal
  loses fewer images), so the result is closer to the target than with differences fixed up front;
- an image that carries a below-target class is never removed (removing it would undo the
  oversampling of that class); duplicates are drawn round-robin over a shuffled list of the class's
  images, so every image of a rare class is repeated about equally often.
Balancing applies to the training part of a fold only; validation is never resampled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from protgan.core.errors import ProtganError


@dataclass(frozen=True)
class BalanceSpec:
    """Target count per class: a number, or None for the median of the (non-zero) class counts."""

    target: int | None = 500

    def describe(self) -> str:
        return "median" if self.target is None else f"median:{self.target}"


def parse_balance(text: str | None) -> BalanceSpec | None:
    """'none' -> None; 'median' -> the true median; 'median:500' -> 500 (the paper's choice)."""
    if text is None or text.strip().lower() in ("", "none", "off"):
        return None
    m = re.fullmatch(r"\s*median(?::(\d+))?\s*", text.lower())
    if not m:
        raise ProtganError(f"--balance: {text!r} is not 'none', 'median' or 'median:N' (e.g. median:500)")
    if m.group(1) is None:
        return BalanceSpec(target=None)
    n = int(m.group(1))
    if n < 1:
        raise ProtganError(f"--balance: the target count must be >= 1, got {n}")
    return BalanceSpec(target=n)


@dataclass
class BalanceResult:
    indices: np.ndarray  # rows into the input label matrix, duplicates repeated
    duplicate: np.ndarray  # bool per entry of `indices`: True for an added copy
    target: int
    counts_before: np.ndarray  # per class
    counts_after: np.ndarray
    removed: int = 0
    added: int = 0
    classes: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"balance to {self.target} per class: {self.n_before} -> {len(self.indices)} training images "
            f"(-{self.removed} removed, +{self.added} duplicated); class counts min/median/max "
            f"{_mmm(self.counts_before)} -> {_mmm(self.counts_after)}"
        )

    @property
    def n_before(self) -> int:
        return len(self.indices) - self.added + self.removed

    def table(self, names: Sequence[str] | None = None) -> list[tuple[str, int, int]]:
        """(class, count before, count after) rows for logging."""
        names = list(names) if names is not None else [str(c) for c in self.classes or range(len(self.counts_before))]
        return [(n, int(b), int(a)) for n, b, a in zip(names, self.counts_before, self.counts_after)]


def _mmm(counts: np.ndarray) -> str:
    nz = counts[counts > 0]
    if nz.size == 0:
        return "0/0/0"
    return f"{int(nz.min())}/{int(np.median(nz))}/{int(nz.max())}"


def balance_indices(labels: np.ndarray, spec: BalanceSpec, seed: int = 0, classes: Sequence[int] | None = None) -> BalanceResult:
    """Resample the rows of an N x C multi-hot matrix towards `spec.target` images per class."""
    y = np.asarray(labels).astype(bool)
    if y.ndim != 2 or y.shape[0] == 0:
        raise ProtganError(f"--balance: need a non-empty N x C label matrix, got shape {y.shape}")
    rng = np.random.default_rng(seed)
    before = y.sum(axis=0).astype(np.int64)
    present = before > 0
    target = int(np.median(before[present])) if spec.target is None else int(spec.target)
    target = max(target, 1)
    minority = present & (before <= target)

    copies = np.ones(len(y), dtype=np.int64)  # how many times each image is in the training set

    def counts() -> np.ndarray:
        return (y * copies[:, None]).sum(axis=0)

    # Undersampling: majority classes, largest first; never remove an image with a minority class.
    removable = ~(y & minority).any(axis=1)
    removed = 0
    for c in np.argsort(-before, kind="stable"):
        if before[c] <= target:
            break
        excess = int(counts()[c]) - target
        if excess <= 0:
            continue
        cand = np.flatnonzero(y[:, c] & removable & (copies > 0))
        drop = rng.permutation(cand)[:excess]
        copies[drop] = 0
        removed += len(drop)

    # Oversampling: every class now below the target (also majority classes thinned too far by the
    # removals above), rarest first; duplicates round-robin over the class's images.
    dup_copies = np.zeros(len(y), dtype=np.int64)
    for c in np.argsort(counts(), kind="stable"):
        if not present[c]:
            continue
        deficit = target - int(counts()[c])
        if deficit <= 0:
            continue
        pool = rng.permutation(np.flatnonzero(y[:, c] & (copies > 0)))
        if pool.size == 0:
            continue
        picks = pool[np.arange(deficit) % pool.size]
        np.add.at(copies, picks, 1)
        np.add.at(dup_copies, picks, 1)

    originals = np.flatnonzero(copies - dup_copies > 0)
    dups = np.repeat(np.arange(len(y)), dup_copies)
    indices = np.concatenate([originals, dups]).astype(np.int64)
    duplicate = np.concatenate([np.zeros(len(originals), bool), np.ones(len(dups), bool)])
    order = rng.permutation(len(indices))
    return BalanceResult(
        indices=indices[order],
        duplicate=duplicate[order],
        target=target,
        counts_before=before,
        counts_after=counts(),
        removed=removed,
        added=int(dup_copies.sum()),
        classes=list(classes) if classes is not None else list(range(y.shape[1])),
    )


def dihedral(img: torch.Tensor, op: int) -> torch.Tensor:
    """One of the paper's geometric transforms on a C x H x W tensor: 0-3 rotate by op*90 deg, 4 hflip, 5 vflip."""
    if op < 4:
        return torch.rot90(img, op, dims=(-2, -1))
    return torch.flip(img, dims=(-1,) if op == 4 else (-2,))


class ResampledDataset(Dataset):
    """A dataset seen through a BalanceResult: duplicates get a random dihedral transform.

    The transform is drawn from torch's generator, like the other augmentations: the loader seeds it
    per epoch and worker, so a run (and a resumed run) repeats the same draws.
    """

    def __init__(self, base: Dataset, result: BalanceResult) -> None:
        self.base = base
        self.result = result

    def __len__(self) -> int:
        return len(self.result.indices)

    @property
    def ids(self) -> list[str]:
        """The base dataset's Ids as seen here (a duplicated image appears once per copy)."""
        return [self.base.ids[int(i)] for i in self.result.indices]

    def __getitem__(self, k: int):
        item = self.base[int(self.result.indices[k])]
        if not self.result.duplicate[k]:
            return item
        op = int(torch.randint(0, 6, ()))
        img, *rest = item
        return (dihedral(img, op), *rest)
