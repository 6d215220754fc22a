"""The related papers' from-scratch networks in the model registry, each with its paper's recipe.

    gapnet-pl        Al-joudi & Arif 2023 / Rumetshofer et al. 2018 (SELU); preset `gapnet`
    gapnet-pl-prelu  the same with PReLU (Al-joudi's comparison; `--model gapnet-pl --activation prelu`)
    concat-cnn       Aggarwal et al. 2022, Table 3; preset `aggarwal`
    cnn13, fcn13     Liimatainen et al. 2021; preset `liimatainen`

They are trained from scratch (there are no pretrained weights for them; `--pretrained` is ignored and
the run records pretrained=false). Inputs reach them in [0, 1] (mean 0, std 1 in the registry):
Aggarwal divides by 255 and nothing else; GapNet-PL's SELU and the Liimatainen base's batch norm need
no further normalisation.
"""

from __future__ import annotations

from torch import nn

from protgan.classify.models.concat_cnn import ConcatCNN, min_input_size
from protgan.classify.models.gapnet import GapNetPL
from protgan.classify.models.liimatainen import LiimatainenCNN, LiimatainenFCN
from protgan.classify.models.registry import register_model
from protgan.core.errors import ProtganError

FROM_SCRATCH = "none (trained from scratch, as in its paper)"
UNIT = dict(mean=(0.0,), std=(1.0,), full_model=True, pretrained_source=FROM_SCRATCH)
PAPER_MODELS = ("gapnet-pl", "gapnet-pl-prelu", "concat-cnn", "cnn13", "fcn13")
SIZE_MULTIPLE = {"cnn13": 32, "fcn13": 16}  # 5 (CNN) or 4 (FCN) halvings of the input


@register_model("gapnet-pl", recipe="gapnet", min_size=16, aliases=("gapnet-pl-selu",), **UNIT)
def gapnet_pl(num_classes: int, in_chans: int, pretrained: bool = False) -> nn.Module:
    """GapNet-PL with SELU (Rumetshofer et al. 2018; Al-joudi & Arif 2023)."""
    return GapNetPL(num_classes, in_chans, activation="selu")


@register_model("gapnet-pl-prelu", recipe="gapnet", min_size=16, **UNIT)
def gapnet_pl_prelu(num_classes: int, in_chans: int, pretrained: bool = False) -> nn.Module:
    """GapNet-PL with PReLU (Al-joudi & Arif 2023's variant)."""
    return GapNetPL(num_classes, in_chans, activation="prelu")


@register_model("concat-cnn", recipe="aggarwal", min_size=min_input_size(), aliases=("aggarwal-cnn",), **UNIT)
def concat_cnn(num_classes: int, in_chans: int, pretrained: bool = False) -> nn.Module:
    """Concatenated conv blocks CNN (Aggarwal et al. 2022, Table 3; >= 76 px)."""
    return ConcatCNN(num_classes, in_chans)


@register_model("cnn13", recipe="liimatainen", min_size=32, **UNIT)
def cnn13(num_classes: int, in_chans: int, pretrained: bool = False) -> nn.Module:
    """Liimatainen et al. 2021 CNN (10 convs + 3 dense; size a multiple of 32)."""
    return LiimatainenCNN(num_classes, in_chans)


@register_model("fcn13", recipe="liimatainen", min_size=16, **UNIT)
def fcn13(num_classes: int, in_chans: int, pretrained: bool = False) -> nn.Module:
    """Liimatainen et al. 2021 FCN: per-class heat maps at 1/16 of the input (size a multiple of 16)."""
    return LiimatainenFCN(num_classes, in_chans)


def resolve_activation(model: str, activation: str | None) -> str:
    """`--model gapnet-pl --activation prelu` -> the registered PReLU variant's name."""

    if activation is None:
        return model
    if activation not in ("selu", "prelu"):
        raise ProtganError(f"--activation {activation!r}: expected selu or prelu")
    if model not in ("gapnet-pl", "gapnet-pl-selu", "gapnet-pl-prelu"):
        raise ProtganError(f"--activation {activation}: only for --model gapnet-pl (Al-joudi's SeLU/PReLU comparison)")
    return "gapnet-pl-prelu" if activation == "prelu" else "gapnet-pl"
