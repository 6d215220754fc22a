"""Weight initialisations the from-scratch papers name (Keras defaults differ from PyTorch's)."""

from __future__ import annotations

import math

from torch import nn


def _layers(model: nn.Module):
    return (m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def glorot_init(model: nn.Module) -> None:
    """Glorot (Xavier) uniform weights, zero biases: Keras' default, named by Aggarwal and Liimatainen."""
    for m in _layers(model):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def lecun_normal_init(model: nn.Module) -> None:
    """N(0, 1/fan_in) weights, zero biases: what SELU's self-normalisation assumes (Klambauer et al.)."""
    for m in _layers(model):
        fan_in = m.weight[0].numel()
        nn.init.normal_(m.weight, 0.0, math.sqrt(1.0 / fan_in))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def he_normal_init(model: nn.Module, negative_slope: float = 0.25) -> None:
    """He et al.'s init for (P)ReLU, with PReLU's initial slope 0.25 in the gain."""
    for m in _layers(model):
        nn.init.kaiming_normal_(m.weight, a=negative_slope, nonlinearity="leaky_relu")
        if m.bias is not None:
            nn.init.zeros_(m.bias)
