"""The metric registry: named measures of one class's synthetic images, computed from features.

    @register_metric("pr")
    def _pr(x: MetricInputs) -> dict[str, float]: ...

Every entry takes the same inputs (the class's real, synthetic and training features, seeds and
settings) and returns flat, named numbers, its floor or reference among them, so commands, the
training-time evaluator and the report select measures by name (`--metrics fid,kid,pr,copies`).
The floor of fid, kid and pr is the same measure between two random halves of the real class;
`*_half` compares half the real images with as many synthetic ones (FID's bias and the k-NN radii
depend on n, so compare `*_half` with the floor). The reference of `copies` is the share of fresh real
images flagged (protgan.evaluation.memorisation).

`cas` (train on synthetic, test on real) trains classifiers, so it lives above this package
(protgan.experiments.cas); TRAINED_METRICS names it for the option parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from protgan.core.errors import ProtganError
from protgan.evaluation.distances import PR_K, fid_from_features, kernel_inception_distance, precision_recall
from protgan.evaluation.memorisation import COPY_PERCENTILE, copy_stats

NAN = float("nan")
TRAINED_METRICS = ("cas",)


@dataclass
class MetricInputs:
    """The features of one class. `train`: the generator's training images (None: `real`)."""

    real: np.ndarray
    fake: np.ndarray
    train: np.ndarray | None = None
    seed: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    k: int = PR_K
    copy_percentile: float = COPY_PERCENTILE
    cache: dict[str, Any] = field(default_factory=dict)  # shared work between entries (halves, copy stats)

    @property
    def train_set(self) -> np.ndarray:
        return self.real if self.train is None else self.train

    def halves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(real half A, real half B, a random subset of |B| synthetic images), seeded."""
        if "halves" not in self.cache:
            n_real, n_fake = len(self.real), len(self.fake)
            order = np.random.default_rng(self.seed).permutation(n_real)
            half = n_real // 2
            a, b = self.real[order[:half]], self.real[order[half:2 * half]]
            fake_sub = self.fake[np.random.default_rng(self.seed + 1).permutation(n_fake)[:half]]
            self.cache["halves"] = (a, b, fake_sub)
        return self.cache["halves"]


MetricFn = Callable[[MetricInputs], dict[str, float]]
_REGISTRY: dict[str, MetricFn] = {}
# the columns each entry returns, in order (tables, CSV)
COLUMNS: dict[str, tuple[str, ...]] = {}


def register_metric(name: str, columns: Sequence[str]) -> Callable[[MetricFn], MetricFn]:
    """Register `fn(inputs) -> {column: value}` as metric `name`."""
    def deco(fn: MetricFn) -> MetricFn:
        _REGISTRY[name] = fn
        COLUMNS[name] = tuple(columns)
        return fn
    return deco


def metric_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def parse_metrics(spec: str | Sequence[str], allowed_extra: Sequence[str] = TRAINED_METRICS) -> list[str]:
    """`fid,kid,pr` -> the names, checked and deduplicated in the order given."""
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    known = (*_REGISTRY, *allowed_extra)
    for n in names:
        if n not in known:
            raise ProtganError(f"--metrics {n!r}: expected a comma list of {', '.join(known)}")
    if not names:
        raise ProtganError(f"--metrics: empty list (choose from {', '.join(known)})")
    return list(dict.fromkeys(names))


def compute_metrics(names: Sequence[str], inputs: MetricInputs) -> dict[str, float]:
    """The registered entries among `names` (others, e.g. cas, are skipped), merged."""
    out: dict[str, float] = {}
    for n in names:
        if n in _REGISTRY:
            out.update(_REGISTRY[n](inputs))
    return out


# ------------------------------------------------------------------------------------------ entries
@register_metric("fid", ("fid", "fid_half", "fid_real_real"))
def _fid(x: MetricInputs) -> dict[str, float]:
    a, b, fake_sub = x.halves()
    ok = len(a) >= 2
    return {"fid": fid_from_features(x.real, x.fake),
            "fid_half": fid_from_features(a, fake_sub) if ok and len(fake_sub) >= 2 else NAN,
            "fid_real_real": fid_from_features(a, b) if ok else NAN}


@register_metric("kid", ("kid", "kid_std", "kid_real_real", "kid_real_real_std"))
def _kid(x: MetricInputs) -> dict[str, float]:
    kid, kid_std = kernel_inception_distance(x.real, x.fake, x.kid_subsets, x.kid_subset_size, x.seed)
    a, b, _ = x.halves()
    rr = kernel_inception_distance(a, b, x.kid_subsets, x.kid_subset_size, x.seed) if len(a) >= 2 else (NAN, NAN)
    return {"kid": kid, "kid_std": kid_std, "kid_real_real": rr[0], "kid_real_real_std": rr[1]}


@register_metric("pr", ("precision", "recall", "precision_half", "recall_half", "precision_real_real",
                        "recall_real_real"))
def _pr(x: MetricInputs) -> dict[str, float]:
    need = x.k + 1
    if len(x.real) < need or len(x.fake) < need:
        raise ProtganError(f"precision/recall with k={x.k} need {need}+ real and synthetic images of a class, "
                           f"got {len(x.real)} and {len(x.fake)}")
    p, r = precision_recall(x.real, x.fake, x.k)
    a, b, fake_sub = x.halves()
    ok = len(a) >= need and len(fake_sub) >= need
    ph, rh = precision_recall(a, fake_sub, x.k) if ok else (NAN, NAN)
    prr, rrr = precision_recall(a, b, x.k) if ok else (NAN, NAN)
    return {"precision": p, "recall": r, "precision_half": ph, "recall_half": rh,
            "precision_real_real": prr, "recall_real_real": rrr}


@register_metric("copies", ("near_copies", "near_copies_real", "copy_threshold", "nn_distance_median"))
def _copies(x: MetricInputs) -> dict[str, float]:
    st = copy_stats(x.fake, x.train_set, x.copy_percentile, x.seed)
    x.cache["copies"] = st  # the figure of the most-copied images reuses the neighbours
    return {"near_copies": st.share, "near_copies_real": st.share_real, "copy_threshold": st.threshold,
            "nn_distance_median": float(np.median(st.distance))}
