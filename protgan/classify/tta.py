"""Test-time augmentation: the mean of the sigmoid outputs over flipped / rotated copies of each image.

  none   the image as it is
  flips  identity, horizontal flip, vertical flip, both (the four flips; "both" = a 180 degree rotation)
  d4     the 8 symmetries of the square (4 rotations, each with and without a horizontal flip)

Fluorescence fields have no preferred orientation, so every top HPA 2018 solution averaged over these.
Probabilities (not logits) are averaged, as they did. Non-square inputs: d4 needs square images.
"""

from __future__ import annotations

from typing import Callable

import torch

from protgan.core.errors import ProtganError

from protgan.classify.config import TTA_CHOICES  # noqa: E402  (one definition, torch-free for the CLI)
Transform = Callable[[torch.Tensor], torch.Tensor]


def _rot(k: int, flip: bool) -> Transform:
    def t(x: torch.Tensor) -> torch.Tensor:
        x = x.flip(-1) if flip else x
        return torch.rot90(x, k, dims=(-2, -1)) if k else x
    return t


def tta_transforms(kind: str) -> list[Transform]:
    """The transforms of `kind` on N x C x H x W batches (the first is always the identity)."""
    if kind == "none":
        return [lambda x: x]
    if kind == "flips":
        return [lambda x: x, lambda x: x.flip(-1), lambda x: x.flip(-2), lambda x: x.flip(-2, -1)]
    if kind == "d4":
        return [_rot(k, f) for f in (False, True) for k in range(4)]
    raise ProtganError(f"--tta {kind!r}: expected one of {', '.join(TTA_CHOICES)}")


def tta_probs(model: torch.nn.Module, x: torch.Tensor, kind: str = "none") -> torch.Tensor:
    """Mean over the transforms of sigmoid(model(t(x))), float32 (x already on the model's device)."""
    out = None
    transforms = tta_transforms(kind)
    for t in transforms:
        p = torch.sigmoid(model(t(x)).float())
        out = p if out is None else out + p
    return out / len(transforms)


@torch.no_grad()
def predict_probs(model: torch.nn.Module, loader, accel, kind: str = "none",
                  on_batch: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, targets) over `loader` in order, on the CPU; `accel` is protgan.classify.train.Accel."""
    model.eval()
    outs, tgts = [], []
    for x, y in loader:
        xb = accel.batch(x)
        with accel.autocast():
            outs.append(tta_probs(model, xb, kind))
        tgts.append(y)
        if on_batch is not None:
            on_batch(len(y))
    return torch.cat(outs).float().cpu(), torch.cat(tgts).cpu()
