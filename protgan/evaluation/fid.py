"""`protgan fid`: Frechet distance (FID), KID and the real-vs-real floor per class, and the training-time
evaluator of train-gan --eval-every.

The distances live in protgan.evaluation.distances, the feature spaces in protgan.evaluation.features
and the named measures in protgan.evaluation.metrics; their names stay importable from here.
The floor is the same measure between two random halves of the real class.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from protgan.core.atomic import write_json
from protgan.core.device import resolve_device
from protgan.core.errors import ProtganError
from protgan.core.runfolder import check_inputs, check_out_path
from protgan.core.tables import write_csv
from protgan.data import (
    NUM_CLASSES, ChannelStackDataset, ImageSet, class_name, make_loader, open_dataset, parse_channels,
    resolve_subset, to_uint8_images,
)
from protgan.data.selection import check_select, select_class_ids
from protgan.evaluation.distances import (  # noqa: F401  (re-exported: protgan.evaluation.fid's names)
    PR_K, feature_statistics, fid_from_features, frechet_distance, kernel_inception_distance, mmd2_unbiased,
    nearest_neighbours, polynomial_kernel, precision_recall,
)
from protgan.evaluation.features import (  # noqa: F401  (re-exported)
    EFFNET_SIZE, FEATURE_CHOICES, FID_WEIGHTS_FILE, ExtractorFactory, FeatureExtractor, effnet_input,
    build_fid_inception, check_feature_spec, dataset_features, efficientnet_lite_extractor,
    extract_features, fid_inception_weights_path, image_size_of,
    inception_extractor, load_efficientnet_lite0, make_extractor, random_fid_inception_state,
    register_feature_space, torch_hub_checkpoint_dir,
)
from protgan.evaluation.config import FidConfig
from protgan.evaluation.memorisation import copy_threshold
from protgan.evaluation.metrics import MetricInputs, compute_metrics

@dataclass
class ClassFid:
    class_index: int
    class_name: str
    n_real: int
    n_fake: int
    fid: float
    kid: float
    kid_std: float
    fid_half: float  # FID(real half A, fake subset of |B| images): compare with the floor at equal n
    fid_real_real: float  # the floor: FID(real half A, real half B)
    kid_real_real: float
    kid_real_real_std: float
    features: str = ""


@dataclass
class FidResult:
    rows: list[ClassFid]
    channels: tuple[str, ...]
    size: int
    features: str
    source: str
    extra: dict[str, Any] = field(default_factory=dict)


def score_class(real_feats: np.ndarray, fake_feats: np.ndarray, class_index: int, cfg_seed: int,
                kid_subsets: int, kid_subset_size: int, features: str) -> ClassFid:
    """All the numbers of one class from its real and fake features (the registry's fid and kid)."""
    values = compute_metrics(("fid", "kid"), MetricInputs(real_feats, fake_feats, seed=cfg_seed,
                                                          kid_subsets=kid_subsets, kid_subset_size=kid_subset_size))
    return ClassFid(class_index, class_name(class_index), len(real_feats), len(fake_feats), features=features,
                    **values)


def synth_manifest(root: Path) -> dict[str, Any] | None:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class ClassSets:
    """What a real-vs-synthetic comparison reads: the two datasets, the format and, per class, its Ids."""

    real: ImageSet
    fake: ImageSet
    channels: tuple[str, ...]
    size: int
    subset: list[int]  # the classes `--select only` is judged within
    classes: list[tuple[int, list[str], list[str]]]  # (class, real ids, synthetic ids)
    manifest: dict[str, Any]


def open_class_sets(real_dir: str, fake_dir: str, classes: str | None, channels: str | None, select: str,
                    size: int | None, min_images: int = 2) -> ClassSets:
    """Open and check both datasets; per class, its real images (`select`, within `classes`) and its
    synthetic ones. Default classes: those of the synthetic set; default channels and size: its own."""
    if size is not None and not 16 <= size <= 4096:
        raise ProtganError(f"--size {size}: expected 16..4096 pixels")
    real = open_dataset(real_dir)
    fake = open_dataset(fake_dir)
    manifest = synth_manifest(Path(fake_dir)) or {}
    if channels is not None:
        chans = parse_channels(channels)
    elif manifest.get("channels"):
        chans = parse_channels(list(manifest["channels"]))
    else:
        chans = fake.channels_found()
        if not chans:
            raise ProtganError(f"{fake.image_dir}: no channel images found")
    check_select(select)
    # `--select only` is judged within --classes, as train-gan judges it (default: all classes).
    subset = list(range(NUM_CLASSES)) if classes is None else resolve_subset(classes, real.targets)
    wanted = sorted({c for t in fake.targets for c in t}) if classes is None else subset
    plan: list[tuple[int, list[str], list[str]]] = []
    for c in wanted:
        fake_ids = select_class_ids(fake.ids, fake.targets, c, wanted, "any")
        real_ids = select_class_ids(real.ids, real.targets, c, subset, select)
        if len(fake_ids) < min_images:
            raise ProtganError(f"{Path(fake_dir) / 'train.csv'}: class {c} has {len(fake_ids)} synthetic images "
                               f"(need {min_images}+)")
        if len(real_ids) < min_images:
            raise ProtganError(f"{Path(real_dir) / 'train.csv'}: class {c} has {len(real_ids)} real images "
                               f"(--select {select}; need {min_images}+)")
        real.select(real_ids).require_channels(chans)
        fake.select(fake_ids).require_channels(chans)
        plan.append((c, real_ids, fake_ids))
    side = size or int(manifest.get("size") or image_size_of(fake, chans))
    return ClassSets(real, fake, tuple(chans), side, subset, plan, manifest)


def check_common(kid_subsets: int, kid_subset_size: int, batch: int) -> None:
    if kid_subsets < 1:
        raise ProtganError(f"--kid-subsets {kid_subsets}: must be at least 1")
    if kid_subset_size < 2:
        raise ProtganError(f"--kid-subset-size {kid_subset_size}: must be at least 2")
    if batch < 1:
        raise ProtganError(f"--batch {batch}: must be at least 1")


def counting_progress(total: int, progress: Callable[[str, int, int], None] | None,
                      label: str = "features") -> Callable[[int], None]:
    """on_batch(n) that reports `progress(label, done, total)`."""
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(label, done, total)

    return tick


FID_WRITES = ("fid.csv", "fid.json", "config.json")  # what --out receives


def run_fid(cfg: FidConfig, progress: Callable[[str, int, int], None] | None = None) -> FidResult:
    """Per class: FID, KID +- std, and the real-vs-real floor. `progress(label, done, total)` per batch."""
    check_common(cfg.kid_subsets, cfg.kid_subset_size, cfg.batch)
    if cfg.out:  # before any feature is computed: an --out that is a file, read-only or an input is one line now
        check_out_path(cfg.out)
        check_inputs(cfg.out, {"--real": cfg.real, "--fake": cfg.fake}, writes=FID_WRITES)
    sets = open_class_sets(cfg.real, cfg.fake, cfg.classes, cfg.channels, cfg.select, cfg.size)
    extractor = make_extractor(cfg.features, resolve_device(cfg.device), cfg.weights)
    tick = counting_progress(sum(len(r) + len(f) for _, r, f in sets.classes), progress)
    rows = []
    for c, real_ids, fake_ids in sets.classes:
        rf = dataset_features(sets.real, real_ids, sets.channels, sets.size, extractor, cfg.batch, cfg.workers, tick)
        ff = dataset_features(sets.fake, fake_ids, sets.channels, sets.size, extractor, cfg.batch, cfg.workers, tick)
        rows.append(score_class(rf, ff, c, cfg.seed, cfg.kid_subsets, cfg.kid_subset_size, extractor.name))
    result = FidResult(rows, sets.channels, sets.size, extractor.name, extractor.source)
    if cfg.out:
        write_fid_outputs(Path(cfg.out), cfg, result)
    return result


FID_CSV_COLUMNS = ("class_index", "class_name", "n_real", "n_fake", "fid", "kid", "kid_std", "fid_half",
                   "fid_real_real", "kid_real_real", "kid_real_real_std", "features")


def write_fid_outputs(out: Path, cfg: FidConfig, result: FidResult) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "fid.csv", [asdict(r) for r in result.rows], FID_CSV_COLUMNS)
    write_json(out / "fid.json", {"features": result.features, "weights": result.source,
                                  "channels": list(result.channels), "size": result.size,
                                  "classes": [asdict(r) for r in result.rows]})
    write_json(out / "config.json", asdict(cfg))


# ----------------------------------------------------------------------------------------------
# During training: train-gan --eval-every
# ----------------------------------------------------------------------------------------------

class TrainingEval:
    """eval_fn(trainer, step) for GanTrainer: KID, FID, precision / recall and the near-copy share of
    `n_fake` EMA-generator samples against the class's real training images, in an offline feature
    space. "score" = KID (unbiased, so it is comparable across evals even with a few hundred images)
    picks checkpoints/best.pt. A collapsing generator shows as falling recall; a memorising one as a
    rising near-copy share.

    The real features (and the near-copy threshold) are computed once, on the first call. The noise
    comes from its own generator (fixed across evals, so successive scores differ by the model only)
    and the KID subsets from their own seed: the training RNG streams are not touched, so resumed runs
    stay equal.
    """

    def __init__(self, features: str = "efficientnet_lite0", n_fake: int = 256, max_real: int = 2000,
                 kid_subsets: int = 50, batch: int = 64, seed: int = 0, weights: str | None = None) -> None:
        if n_fake < 2:
            raise ProtganError(f"--eval-images {n_fake}: must be at least 2")
        self.features, self.weights = features, weights
        check_feature_spec(features, weights)  # a bad spec fails before training starts, not at the first eval
        self.n_fake, self.max_real, self.kid_subsets, self.batch, self.seed = n_fake, max_real, kid_subsets, batch, seed
        self.extractor: FeatureExtractor | None = None
        self.real: np.ndarray | None = None
        self.copy_tau: float = float("nan")
        self.z: torch.Tensor | None = None
        # a conditional generator's label vectors, one per fake (n_fake x K, handed to generate as y in the
        # noise's slices); None: generate(z) alone
        self.conditions: torch.Tensor | None = None

    def _setup(self, trainer: Any) -> None:
        self.extractor = make_extractor(self.features, trainer.device, self.weights)
        data = trainer.dataset
        n = len(data)
        picks = np.sort(np.random.default_rng(self.seed).permutation(n)[:self.max_real])
        sub = ChannelStackDataset(data.ds, data.channels, data.size, data.classes, ids=[data.ids[k] for k in picks],
                                  cache=data.cache if data.cache is not None else None)
        loader = make_loader(sub, self.batch, shuffle=False, workers=0, pin_memory=False)
        self.real = extract_features(loader, self.extractor, data.channels)
        if len(self.real) >= 2:
            self.copy_tau = copy_threshold(self.real)
        g = torch.Generator().manual_seed(self.seed + 12345)
        self.z = torch.randn(self.n_fake, trainer.cfg.z_dim, generator=g)

    def __call__(self, trainer: Any, step: int) -> dict[str, float]:
        if self.extractor is None:
            self._setup(trainer)
        assert self.extractor is not None and self.real is not None and self.z is not None
        channels = tuple(trainer.cfg.channels)
        def labels(i: int) -> dict[str, torch.Tensor]:  # y only for a conditional evaluation
            return {} if self.conditions is None else {"y": self.conditions[i:i + self.batch]}

        batches = (to_uint8_images(trainer.generate(z=self.z[i:i + self.batch], use_ema=True, **labels(i)))
                   for i in range(0, self.n_fake, self.batch))
        fake = extract_features(batches, self.extractor, channels)
        kid, kid_std = kernel_inception_distance(self.real, fake, self.kid_subsets, 1000, self.seed)
        out = {"fid": fid_from_features(self.real, fake), "kid": kid, "kid_std": kid_std}
        if len(self.real) > PR_K and len(fake) > PR_K:  # k-NN radii need k + 1 images on each side
            out["precision"], out["recall"] = precision_recall(self.real, fake)
        if np.isfinite(self.copy_tau):
            out["near_copies"] = float((nearest_neighbours(fake, self.real)[0] < self.copy_tau).mean())
        out["score"] = kid
        return out
