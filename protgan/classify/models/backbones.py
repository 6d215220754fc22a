"""The paper's backbones through timm (`in_chans` adapts the first convolution, pretrained or not),
plus ResNet18 as a small fast model for demos and tests.

Pretrained weights come from timm's hub (or its local cache: $HF_HOME / $TORCH_HOME); offline and
uncached, asking for them is one clear error that points at --weights and --no-pretrained.
"""

from __future__ import annotations

import torch
from torch import nn

from protgan.classify.models.registry import register_model
from protgan.core.errors import ProtganError


class TimmBackbone(nn.Module):
    """A timm model used up to its last feature map (`forward_features`); its own head is dropped."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.num_features = int(body.num_features)
        cfg = getattr(body, "pretrained_cfg", None) or {}
        # the normalisation the weights were trained with (timm knows it per weight tag)
        self.input_mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.input_std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(x)


def timm_backbone(timm_name: str, in_chans: int, pretrained: bool, **kwargs) -> TimmBackbone:
    import timm

    try:
        body = timm.create_model(timm_name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs)
    except Exception as e:
        if not pretrained:
            raise
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise ProtganError(
            f"--pretrained: could not load timm's ImageNet weights for {timm_name!r} ({first}); offline, pass "
            f"--weights PATH (a local state_dict), pre-fill the $HF_HOME / $TORCH_HOME cache, or use --no-pretrained"
        ) from None
    return TimmBackbone(body)


@register_model("vgg16", recipe="paper5", pretrained_source="timm vgg16.tv_in1k")
def vgg16(in_chans: int, pretrained: bool) -> nn.Module:
    """VGG16 (the paper's best on 5 classes), conv layers only: 512-channel map."""
    bb = timm_backbone("vgg16", in_chans, pretrained)
    bb.body.pre_logits = nn.Identity()  # timm's fc6/fc7-as-conv (102M weights) are never used here
    return bb


@register_model("resnet50", pretrained_source="timm resnet50.a1_in1k")
def resnet50(in_chans: int, pretrained: bool) -> nn.Module:
    """ResNet50."""
    return timm_backbone("resnet50", in_chans, pretrained)


@register_model("resnet101", pretrained_source="timm resnet101.a1h_in1k")
def resnet101(in_chans: int, pretrained: bool) -> nn.Module:
    """ResNet101."""
    return timm_backbone("resnet101", in_chans, pretrained)


@register_model("densenet121", pretrained_source="timm densenet121.tv_in1k")
def densenet121(in_chans: int, pretrained: bool) -> nn.Module:
    """DenseNet121."""
    return timm_backbone("densenet121", in_chans, pretrained)


@register_model("inception_v3", min_size=75, pretrained_source="timm inception_v3.tv_in1k")
def inception_v3(in_chans: int, pretrained: bool) -> nn.Module:
    """InceptionV3 (needs >= 75 px)."""
    return timm_backbone("inception_v3", in_chans, pretrained)


@register_model("inception_v4", min_size=75, pretrained_source="timm inception_v4.tf_in1k")
def inception_v4(in_chans: int, pretrained: bool) -> nn.Module:
    """InceptionV4 (the paper's best on 28 classes; needs >= 75 px)."""
    return timm_backbone("inception_v4", in_chans, pretrained)


@register_model("xception", pretrained_source="timm legacy_xception.tf_in1k")
def xception(in_chans: int, pretrained: bool) -> nn.Module:
    """Xception, Chollet's original (timm `legacy_xception`, the Keras model the paper used)."""
    return timm_backbone("legacy_xception", in_chans, pretrained)


@register_model("resnet18", pretrained_source="timm resnet18.a1_in1k")
def resnet18(in_chans: int, pretrained: bool) -> nn.Module:
    """ResNet18 (not in the paper: a small fast model for demos)."""
    return timm_backbone("resnet18", in_chans, pretrained)
