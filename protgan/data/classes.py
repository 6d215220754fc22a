"""The 28 HPA localization classes (Kaggle 2018 indices), and resolving a class or a subset of them."""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from protgan.core.errors import ProtganError

CLASS_NAMES: tuple[str, ...] = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Peroxisomes",
    "Endosomes",
    "Lysosomes",
    "Intermediate filaments",
    "Actin filaments",
    "Focal adhesion sites",
    "Microtubules",
    "Microtubule ends",
    "Cytokinetic bridge",
    "Mitotic spindle",
    "Microtubule organizing center",
    "Centrosome",
    "Lipid droplets",
    "Plasma membrane",
    "Cell junctions",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Cytoplasmic bodies",
    "Rods & rings",
)
NUM_CLASSES = len(CLASS_NAMES)

_BY_NAME = {name.lower(): i for i, name in enumerate(CLASS_NAMES)}


def class_name(index: int) -> str:
    return CLASS_NAMES[index]


def resolve_class(spec: str | int) -> int:
    """A class index from `3`, `"3"` or a name (case-insensitive, `_`/`-` read as spaces)."""
    if isinstance(spec, int):
        index = spec
    else:
        text = str(spec).strip()
        if text.lstrip("-").isdigit():
            index = int(text)
        else:
            key = " ".join(text.replace("_", " ").replace("-", " ").lower().split())
            if key not in _BY_NAME:
                raise ProtganError(
                    f"unknown class {spec!r}: use an index 0..{NUM_CLASSES - 1} or a name such as "
                    f"'Nucleoplasm' (see `protgan info`)"
                )
            return _BY_NAME[key]
    if not 0 <= index < NUM_CLASSES:
        raise ProtganError(f"class index {index} out of range 0..{NUM_CLASSES - 1}")
    return index


def top_k_classes(targets: Iterable[Sequence[int]], k: int = 5) -> list[int]:
    """The k most frequent classes of a label table, most frequent first (ties by lower index)."""
    return resolve_subset(f"top{k}", targets)


def resolve_subset(spec: str | Sequence[int | str], targets: Iterable[Sequence[int]] | None = None, *,
                   universe: Sequence[int] | None = None, counts: Sequence[int] | None = None,
                   outside: str = "is not available here") -> list[int]:
    """THE class-subset parser of every command: `all`, `topK` or a comma list of indices/names.

    `topK` ranks by frequency in the label table `targets` (or per-class `counts`), ties by lower index.
    `universe`: the classes that may be chosen (default all 28; `all` returns it in its order); a listed
    class outside it is one error line saying it `outside`. The order is kept as given, duplicates removed.
    """
    pool = list(range(NUM_CLASSES)) if universe is None else list(universe)
    if isinstance(spec, str):
        text = spec.strip()
        low = text.lower()
        if low == "all":
            return pool
        if low.startswith("top") and low[3:].isdigit():
            k = int(low[3:])
            if not 1 <= k <= len(pool):
                raise ProtganError(f"class subset {spec!r}: K must be 1..{len(pool)}")
            if counts is None:
                if targets is None:
                    raise ProtganError(f"class subset {spec!r} needs a label table to count")
                tally = Counter(c for t in targets for c in t)
                counts = [tally.get(c, 0) for c in range(NUM_CLASSES)]
            ranked = sorted((c for c in pool if counts[c] > 0 or universe is not None), key=lambda c: (-counts[c], c))
            return ranked[:k]
        items: Sequence[int | str] = [p for p in text.split(",") if p.strip()]
        if not items:
            raise ProtganError("empty class list")
    else:
        items = spec
    out: list[int] = []
    for item in items:
        idx = resolve_class(item)
        if idx not in pool:
            raise ProtganError(f"class {idx} ({CLASS_NAMES[idx]}) {outside}; choose from "
                               + ", ".join(str(c) for c in sorted(pool)))
        if idx not in out:
            out.append(idx)
    return out
