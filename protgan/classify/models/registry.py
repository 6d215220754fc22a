"""A timm-style model registry: `@register_model(...)` on a builder, `create_model(name, ...)` to get a
ready multilabel classifier (input normalisation + backbone + head).

A builder takes `(in_chans: int, pretrained: bool)` and returns either a *backbone* (an nn.Module
mapping N x in_chans x H x W to a feature map N x F x h x w, with `num_features = F`) that gets one of
the heads in `protgan.classify.heads`, or, with `full_model=True`, a complete network taking
`(num_classes, in_chans, pretrained)` and returning logits (for architectures with their own head).
Registering a new model is one decorator:

    @register_model("my_net", recipe="paper28", min_size=64)
    def my_net(in_chans: int, pretrained: bool) -> nn.Module: ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from protgan.classify.heads import make_head
from protgan.classify.presets import PRESETS
from protgan.core.errors import ProtganError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    recipe: str  # the preset whose head / lr / epochs this model trains with by default
    min_size: int  # smallest square input the architecture accepts
    full_model: bool
    pretrained_source: str  # where `pretrained=True` weights come from, for --help and errors
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str = ""
    aliases: tuple[str, ...] = field(default=())


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    name: str,
    *,
    recipe: str = "paper28",
    min_size: int = 32,
    full_model: bool = False,
    pretrained_source: str = "none",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    description: str = "",
    aliases: Sequence[str] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder to the registry under `name` (and `aliases`)."""
    if recipe not in PRESETS:
        raise ValueError(f"register_model({name!r}): unknown recipe {recipe!r}")

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"model {name!r} registered twice")
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        _REGISTRY[name] = ModelSpec(name, fn, recipe, min_size, full_model, pretrained_source,
                                    tuple(mean), tuple(std), doc, tuple(aliases))
        for a in aliases:
            _ALIASES[a] = name
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        raise ProtganError(f"--model {name!r}: unknown model (known: {', '.join(list_models())})")
    return _REGISTRY[key]


def channel_stats(values: Sequence[float], in_chans: int) -> list[float]:
    """Per-input-channel normalisation from RGB statistics: R, G, B for 3 channels (our order is
    red, green, blue, yellow); R, G, B + their mean for 4; the mean for 1 or 2 (e.g. `green`)."""
    values = list(values)
    if len(values) != 3:
        return [values[0]] * in_chans if len(values) == 1 else values[:in_chans]
    mean = sum(values) / 3
    if in_chans == 3:
        return values
    if in_chans == 4:
        return values + [mean]
    return [mean] * in_chans


class Classifier(nn.Module):
    """[0, 1] images -> normalised -> backbone -> head -> logits. `predict_proba` is the paper's sigmoid."""

    def __init__(self, spec: ModelSpec, body: nn.Module, head: nn.Module | None, num_classes: int,
                 in_chans: int, head_name: str) -> None:
        super().__init__()
        self.model_name = spec.name
        self.head_name = head_name
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.backbone = body
        self.head = head if head is not None else nn.Identity()
        mean = getattr(body, "input_mean", spec.mean)  # a backbone may know its weights' statistics
        std = getattr(body, "input_std", spec.std)
        self.register_buffer("mean", torch.tensor(channel_stats(mean, in_chans)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(channel_stats(std, in_chans)).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.head(self.backbone(x))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(x).float())

    def meta(self) -> dict:
        """What `create_model` needs to rebuild this network (stored in every checkpoint)."""
        return {"model": self.model_name, "num_classes": self.num_classes, "in_chans": self.in_chans,
                "head": self.head_name}


def resolve_head(spec: ModelSpec, head: str) -> str:
    return PRESETS[spec.recipe].head if head == "paper" else head


def create_model(
    name: str,
    num_classes: int,
    in_chans: int = 3,
    pretrained: bool = False,
    weights: str | os.PathLike | None = None,
    head: str = "paper",
) -> Classifier:
    """A classifier for `num_classes` labels on `in_chans`-channel images.

    `pretrained`: ImageNet weights from the model's source (timm's hub, or the EfficientNet-Lite0
    package), the first convolution adapted to `in_chans`. `weights`: a local state_dict file (a
    backbone's, e.g. a timm checkpoint, or a whole protgan checkpoint) loaded on top.
    `head`: "paper" (the head of the model's recipe), "paper28", "paper5" or "linear".
    """
    spec = get_spec(name)
    if num_classes < 1:
        raise ProtganError(f"num_classes {num_classes}: need at least one class")
    if not 1 <= in_chans <= 4:
        raise ProtganError(f"in_chans {in_chans}: expected 1..4 channels")
    if spec.full_model:
        body = spec.builder(num_classes=num_classes, in_chans=in_chans, pretrained=pretrained)
        model = Classifier(spec, body, None, num_classes, in_chans, "own")
    else:
        head_name = resolve_head(spec, head)
        body = spec.builder(in_chans=in_chans, pretrained=pretrained)
        model = Classifier(spec, body, make_head(head_name, body.num_features, num_classes), num_classes,
                           in_chans, head_name)
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model: Classifier, path: str | os.PathLike) -> None:
    """Load a local weights file: a protgan checkpoint or Classifier state_dict (everything that
    matches), or a bare backbone state_dict (timm layout; its classifier is ignored and its first
    convolution adapted to the input channels)."""
    from timm.models import adapt_input_conv

    path = Path(path)
    if not path.is_file():
        raise ProtganError(f"--weights {path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: one line, not a pickle traceback
        raise ProtganError(f"--weights {path}: not a PyTorch weights file ({type(e).__name__})") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ProtganError(f"--weights {path}: expected a state_dict (name -> tensor)")
    own = model.state_dict()
    if any(k.startswith("backbone.") for k in obj):
        source = obj
    else:  # a bare backbone (timm layout)
        source = {f"backbone.body.{k}": v for k, v in obj.items()}
        source.update({f"backbone.{k}": v for k, v in obj.items()})
    loaded: dict[str, torch.Tensor] = {}
    for k, v in source.items():
        if k not in own:
            continue
        target = own[k]
        if v.shape != target.shape and v.ndim == 4 and target.ndim == 4 and v.shape[0] == target.shape[0] \
                and v.shape[2:] == target.shape[2:]:
            v = adapt_input_conv(target.shape[1], v)  # a 3-channel first conv on 1 or 4 channels
        if v.shape != target.shape:
            raise ProtganError(f"--weights {path}: {k} has shape {tuple(v.shape)}, model needs {tuple(target.shape)}")
        loaded[k] = v
    if not loaded:
        raise ProtganError(f"--weights {path}: no tensor matches model {model.model_name!r}")
    backbone_keys = [k for k in own if k.startswith("backbone.") and not k.endswith("num_batches_tracked")]
    missing = [k for k in backbone_keys if k not in loaded]
    if missing:
        raise ProtganError(f"--weights {path}: {len(missing)} backbone tensors missing for {model.model_name!r} "
                           f"(first: {missing[0]})")
    model.load_state_dict(loaded, strict=False)
