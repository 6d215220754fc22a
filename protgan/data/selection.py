"""Which real images stand for a class: the one rule train-gan, fid, synth's filters and the demo share.

`only`: the class is the image's only label *within the class subset* (labels outside it ignored);
`any`: the class is among the image's labels. Judging `only` within the same subset everywhere means a
generator is scored against exactly the images it was trained on.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from protgan.core.errors import ProtganError

SELECT_CHOICES = ("only", "any")


def check_select(select: str) -> str:
    if select not in SELECT_CHOICES:
        raise ProtganError(f"--select {select!r}: expected one of {', '.join(SELECT_CHOICES)}")
    return select


def select_class_ids(ids: Sequence[str], targets: Iterable[Sequence[int]], class_index: int,
                     subset: Sequence[int], select: str) -> list[str]:
    """Ids that stand for class `class_index` under `select`, judged within `subset`."""
    check_select(select)
    keep = set(subset)
    out = []
    for id_, target in zip(ids, targets):
        labels = {c for c in target if c in keep}
        if (labels == {class_index}) if select == "only" else (class_index in labels):
            out.append(id_)
    return out
