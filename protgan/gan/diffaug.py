"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random, differentiable augmentation is applied to real and fake images wherever D sees them
(D step and G step), so D cannot overfit a small class and G's gradients pass through the
augmentation. The three policies follow the authors' reference implementation:
  color:       brightness +U(-0.5, 0.5), saturation x U(0, 2) around the channel mean, contrast x U(0.5, 1.5)
  translation: shift by up to 1/8 of the side, zero padded
  cutout:      one zeroed square of half the side at a random place
Every draw is a device tensor: no host sync. ADA (protgan.gan.ada) applies each operation with a
probability p per sample (`diff_augment(x, policy, p)`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from protgan.core.errors import ProtganError


def rand_brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)


def rand_saturation(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + mean


def rand_contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean


def rand_translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sx, sy = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sx, sx + 1, size=[b, 1, 1], device=x.device)
    ty = torch.randint(-sy, sy + 1, size=[b, 1, 1], device=x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(b, device=x.device), torch.arange(h, device=x.device), torch.arange(w, device=x.device),
        indexing="ij",
    )
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])  # the zero border is what shifted-in pixels read
    return padded.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)


def rand_cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), size=[b, 1, 1], device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), size=[b, 1, 1], device=x.device)
    gb, gx, gy = torch.meshgrid(
        torch.arange(b, device=x.device), torch.arange(ch, device=x.device), torch.arange(cw, device=x.device),
        indexing="ij",
    )
    gx = torch.clamp(gx + ox - ch // 2, min=0, max=h - 1)
    gy = torch.clamp(gy + oy - cw // 2, min=0, max=w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


POLICIES: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
    "color": [rand_brightness, rand_saturation, rand_contrast],
    "translation": [rand_translation],
    "cutout": [rand_cutout],
}


def parse_policy(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """`"color,translation,cutout"` (or a list, or ""/None/"none" for off) -> validated policy names."""
    if spec is None:
        return ()
    names = [p.strip().lower() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    if names in (["none"], ["off"]):
        return ()
    bad = [n for n in names if n not in POLICIES]
    if bad:
        raise ProtganError(f"--diffaug {spec!r}: unknown policy {bad[0]!r}; use a comma list of {', '.join(POLICIES)}")
    return tuple(dict.fromkeys(names))


def diff_augment(x: torch.Tensor, policy: Sequence[str], p: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Apply the policies in order, each with fresh per-sample randomness; identity for an empty policy.

    p < 1 (a float or a 0-dim device tensor, as ADA's adapted probability): each operation is applied to
    each sample with probability p (Karras et al. 2020), drawn on the device (no host sync). p = 1.0 (a
    float) is DiffAugment as published: every operation on every sample, no extra draws."""
    always = not isinstance(p, torch.Tensor) and p >= 1.0
    for name in policy:
        for fn in POLICIES[name]:
            if always:
                x = fn(x)
            else:
                apply = torch.rand(x.size(0), 1, 1, 1, device=x.device) < p
                x = torch.where(apply, fn(x), x)
    return x
