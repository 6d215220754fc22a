"""Pixel ranges and the RGB composite: the one place that converts between uint8 images, the GAN's
[-1, 1] range and classifiers' [0, 1] range, and folds a channel stack into RGB.

The composite rule (the HPA viewer's): red, green and blue are themselves, yellow is added to red and
green at half weight each, the sum clipped; a single channel is grey. Display images (numpy) and the
3-channel input of ImageNet feature networks (torch) use the same weight matrix.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from protgan.core.errors import ProtganError

# channel -> its (red, green, blue) contribution in the composite
_COMPOSITE = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0), "yellow": (0.5, 0.5, 0.0)}


def composite_weights(channels: Sequence[str]) -> np.ndarray:
    """3 x C matrix W with rgb = clip(W @ stack): the composite rule of the module doc."""
    channels = tuple(channels)
    if len(channels) == 1:
        return np.ones((3, 1), np.float32)
    try:
        return np.array([_COMPOSITE[c] for c in channels], np.float32).T.copy()
    except KeyError as e:
        raise ProtganError(f"unknown channel {e.args[0]!r}: expected red, green, blue or yellow") from None


def composite_rgb(stack: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """H x W x 3 uint8 display image of a C x H x W uint8 stack (the composite rule)."""
    w = composite_weights(channels)
    if stack.shape[0] != w.shape[1]:
        raise ProtganError(f"image has {stack.shape[0]} channels but {w.shape[1]} channel names were given")
    out = np.tensordot(w, stack.astype(np.float32), axes=(1, 0))
    return np.clip(out, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def to_three_channels(batch: torch.Tensor, channels: Sequence[str]) -> torch.Tensor:
    """uint8 (or [0, 255] float) B x C x H x W -> float B x 3 x H x W in [0, 1] (the composite rule)."""
    x = batch.float() / 255.0
    w = composite_weights(channels)
    if x.shape[1] != w.shape[1]:
        raise ProtganError(f"images have {x.shape[1]} channels but {w.shape[1]} channel names were given")
    if len(channels) == 1:
        return x.expand(-1, 3, -1, -1)
    if tuple(channels) == ("red", "green", "blue"):
        return x
    out = torch.einsum("kc,bchw->bkhw", torch.from_numpy(w).to(x.device, x.dtype), x)
    return out.clamp_(0.0, 1.0)


def to_unit_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1] (classifiers)."""
    return batch.float().div_(255.0)


def to_signed_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the GAN's tanh range)."""
    return batch.float().div_(127.5).sub_(1.0)


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """The generator's [-1, 1] output -> uint8 [0, 255] on the same device, the inverse of
    `to_signed_range` (clamped first, so out-of-range values saturate instead of wrapping)."""
    return ((x.float().clamp(-1.0, 1.0) + 1.0) * 127.5).round_().to(torch.uint8)


def to_intensity_power(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """[-1, 1] images of intensity u -> [-1, 1] images of u**gamma (what a --intensity-gamma D sees). u is
    floored at 1e-6 so the gradient stays finite where a generated pixel is exactly black."""
    u = ((x + 1.0) * 0.5).clamp(min=1e-6)  # out of place throughout: G's gradient flows through it
    return u.pow(gamma) * 2.0 - 1.0


def from_intensity_power(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """The inverse of `to_intensity_power`: [-1, 1] images of u**gamma (a --intensity-gamma G's tanh output)
    -> [-1, 1] images of u."""
    v = ((t + 1.0) * 0.5).clamp(min=0.0)
    return v.pow(1.0 / gamma) * 2.0 - 1.0


def unit_range_at(batch: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 batch -> float [0, 1] at `size` x `size` (bilinear, antialiased when shrinking)."""
    x = to_unit_range(batch)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size)
    return x
