"""Which classes the demo generator draws, and sampling label sets that follow the real HPA table.

The statistics come from `protgan/data/demo_label_stats.json` (made by
`tools/make_demo_label_stats.py` from the real Kaggle 2018 train.csv): every distinct label set with
its count. A label set is projected onto the requested classes (labels outside dropped, empty sets
and sets of more than 3 labels left out), so class frequencies and pair co-occurrence are those of
the real table restricted to the requested classes.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from protgan.data.classes import resolve_subset
from protgan.core.errors import ProtganError

STATS_FILE = Path(__file__).resolve().parents[1] / "demo_label_stats.json"
MAX_LABELS = 3

# The classes the generator can draw (real HPA indices), each with a recognisable green pattern.
DRAWABLE_CLASSES: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 14, 19, 21, 23, 24, 25, 26)
# The five most frequent classes of the real table (checked against the stats in the tests).
TOP5: tuple[int, ...] = (0, 25, 21, 2, 23)


@lru_cache(maxsize=1)
def label_stats() -> dict:
    """The stored statistics of the real label table (class_counts, pair_counts, cardinality, label_sets)."""
    return json.loads(STATS_FILE.read_text())


def real_class_counts() -> list[int]:
    return list(label_stats()["class_counts"])


def resolve_demo_classes(spec: str | Sequence[int | str]) -> list[int]:
    """`top5` (default), `topK` (the K most frequent drawable classes), `all` (every drawable class, by
    frequency), or a comma list of indices/names: protgan.data.classes.resolve_subset over the drawable
    classes, ranked by the real table's counts."""
    counts = real_class_counts()
    by_freq = sorted(DRAWABLE_CLASSES, key=lambda c: (-counts[c], c))
    try:
        return resolve_subset(spec, counts=counts, universe=by_freq, outside="cannot be drawn by demo-data")
    except ProtganError as e:
        raise ProtganError(f"--classes: {e}") from None


@lru_cache(maxsize=64)
def label_set_distribution(classes: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], ...], np.ndarray]:
    """(label sets, probabilities) of the real table projected onto `classes`."""
    keep = set(classes)
    acc: dict[tuple[int, ...], int] = {}
    for labels, n in label_stats()["label_sets"]:
        proj = tuple(c for c in labels if c in keep)
        if 1 <= len(proj) <= MAX_LABELS:
            acc[proj] = acc.get(proj, 0) + n
    if not acc:
        raise ProtganError(f"--classes {list(classes)}: no image of the real table carries these classes")
    sets = tuple(sorted(acc))  # a fixed order keeps sampling deterministic
    counts = np.array([acc[s] for s in sets], np.float64)
    return sets, counts / counts.sum()


def sample_labels(rng: np.random.Generator, classes: Sequence[int]) -> tuple[int, ...]:
    """One image's label set (1..3 classes), drawn from the projected real distribution."""
    sets, probs = label_set_distribution(tuple(sorted(classes)))
    return sets[int(rng.choice(len(sets), p=probs))]
