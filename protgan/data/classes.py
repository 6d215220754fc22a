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
    counts = Counter(c for t in targets for c in t)
    return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def resolve_subset(spec: str | Sequence[int | str], targets: Iterable[Sequence[int]] | None = None) -> list[int]:
    """Class indices for `all`, `topK` (computed from `targets`) or a comma list of indices/names.

    The order is kept as given (top-K: by frequency), duplicates removed.
    """
    if isinstance(spec, str):
        text = spec.strip()
        low = text.lower()
        if low == "all":
            return list(range(NUM_CLASSES))
        if low.startswith("top") and low[3:].isdigit():
            if targets is None:
                raise ProtganError(f"class subset {spec!r} needs a label table to count")
            k = int(low[3:])
            if not 1 <= k <= NUM_CLASSES:
                raise ProtganError(f"class subset {spec!r}: K must be 1..{NUM_CLASSES}")
            return top_k_classes(targets, k)
        items: Sequence[int | str] = [p for p in text.split(",") if p.strip()]
        if not items:
            raise ProtganError("empty class list")
    else:
        items = spec
    out: list[int] = []
    for item in items:
        idx = resolve_class(item)
        if idx not in out:
            out.append(idx)
    return out
