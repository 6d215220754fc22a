"""One loss object per architecture (the stylegan2-ada pattern): the training loop in protgan.gan.train is
the same for every arch and asks the loss for D's and G's losses and for the optimizers of its recipe.

    loss.optimizers(G, D, lr_g, lr_d, betas) -> (opt_G, opt_D)
    loss.d_loss(D, real, fake, augment, y_real=None, y_fake=None) -> DLoss(loss, logit_real, logit_fake, extras)
    loss.g_loss(D, fake, augment, y=None) -> loss
The labels y (B x K multi-hot) are given for a conditional run only (a projection D: D(x, y=y)); projected's
`class_weight` (--class-loss) adds an auxiliary classifier's BCE on them (AC-GAN).
`augment` is applied to every image D sees (protgan.gan.ada.AdaptiveAugment). Logits are per image (B,).
`extras` is a 1-d tensor of further metrics, named by `extra_names`; nothing here syncs with the host.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from protgan.gan.fastgan import quadrant

Augment = Callable[[torch.Tensor], torch.Tensor]


def labels(y: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """D's keyword arguments: y=labels for a conditional run, none otherwise (the unconditional call as before)."""
    return {} if y is None else {"y": y}


class DLoss(NamedTuple):
    loss: torch.Tensor
    logit_real: torch.Tensor
    logit_fake: torch.Tensor
    extras: torch.Tensor


class DcganLoss:
    """The paper's recipe (section 3.1.3): BCE with logits, `label_flip` of D's labels swapped, one-sided
    smoothing (real target `real_label`), the non-saturating G loss; Adam for G, SGD with momentum for D.
    Real and fake minibatches go through D in separate passes (BN never mixes them)."""

    extra_names: tuple[str, ...] = ()

    def __init__(self, label_flip: float, real_label: float, momentum_d: float, world: int = 1, rank: int = 0) -> None:
        self.label_flip, self.real_label, self.momentum_d = label_flip, real_label, momentum_d
        self.world, self.rank = world, rank

    def optimizers(self, G: nn.Module, D: nn.Module, lr_g: float, lr_d: float, betas: Sequence[float]):
        return (torch.optim.Adam(G.parameters(), lr=lr_g, betas=tuple(betas)),
                torch.optim.SGD(D.parameters(), lr=lr_d, momentum=self.momentum_d))

    def targets(self, b: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """D's targets: real -> real_label (smoothed), fake -> 0, with `label_flip` of each swapped."""
        p, r = self.label_flip, self.real_label
        mine = slice(self.rank * b, (self.rank + 1) * b)  # torchrun: this rank's part of the global draw
        real_t = torch.where(torch.rand(b * self.world, device=device)[mine] < p, 0.0, r)
        fake_t = torch.where(torch.rand(b * self.world, device=device)[mine] < p, r, 0.0)
        return real_t, fake_t

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, augment: Augment,
               y_real: torch.Tensor | None = None, y_fake: torch.Tensor | None = None) -> DLoss:
        real_t, fake_t = self.targets(real.shape[0], real.device)
        logit_real = D(augment(real), **labels(y_real))
        logit_fake = D(augment(fake), **labels(y_fake))
        loss = (F.binary_cross_entropy_with_logits(logit_real.float(), real_t)
                + F.binary_cross_entropy_with_logits(logit_fake.float(), fake_t))
        return DLoss(loss, logit_real, logit_fake, torch.zeros(0, device=real.device))

    def g_loss(self, D: nn.Module, fake: torch.Tensor, augment: Augment, y: torch.Tensor | None = None) -> torch.Tensor:
        logit = D(augment(fake), **labels(y)).float()
        return F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))


def hinge_d(patches_real: torch.Tensor, patches_fake: torch.Tensor) -> torch.Tensor:
    """mean(relu(1 - D(real))) + mean(relu(1 + D(fake))) over every patch logit."""
    return F.relu(1 - patches_real.float()).mean() + F.relu(1 + patches_fake.float()).mean()


def hinge_g(patches_fake: torch.Tensor) -> torch.Tensor:
    return -patches_fake.float().mean()


def reconstruction_loss(real: torch.Tensor, recs: dict[str, torch.Tensor], part: int) -> torch.Tensor:
    """L1 between D's decoders' outputs and the area-resized real image (big, small) and its quadrant (part)."""
    size = recs["big"].shape[-1]
    whole = F.interpolate(real.float(), size=(size, size), mode="area")
    crop = F.interpolate(quadrant(real, part).float(), size=(size, size), mode="area")
    return (F.l1_loss(recs["big"].float(), whole) + F.l1_loss(recs["small"].float(), whole)
            + F.l1_loss(recs["part"].float(), crop))


def adam_pair(G: nn.Module, D: nn.Module, lr_g: float, lr_d: float, betas: Sequence[float]):
    """Adam for G and for D with the same betas (the FastGAN and Projected GAN recipes)."""
    return (torch.optim.Adam(G.parameters(), lr=lr_g, betas=tuple(betas)),
            torch.optim.Adam(D.parameters(), lr=lr_d, betas=tuple(betas)))


class FastganLoss:
    """FastGAN (Liu et al. 2021): hinge loss on D's patch logits, plus on real images the self-supervised
    reconstruction loss of D's decoders (weight `rec_weight`); Adam for both (the paper's betas 0.5, 0.999).
    The decoded quadrant is drawn from torch's CPU stream (saved in checkpoints; no device sync)."""

    extra_names = ("loss_rec",)

    def __init__(self, rec_weight: float = 1.0) -> None:
        self.rec_weight = rec_weight

    def optimizers(self, G: nn.Module, D: nn.Module, lr_g: float, lr_d: float, betas: Sequence[float]):
        return adam_pair(G, D, lr_g, lr_d, betas)

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, augment: Augment,
               y_real: torch.Tensor | None = None, y_fake: torch.Tensor | None = None) -> DLoss:
        part = int(torch.randint(4, (1,)))
        real_aug = augment(real)
        logit_real, patches_real, recs = D(real_aug, recon=True, part=part, **labels(y_real))
        logit_fake, patches_fake, _ = D(augment(fake), **labels(y_fake))
        rec = reconstruction_loss(real_aug, recs, part)  # D must describe the image it was shown
        loss = hinge_d(patches_real, patches_fake) + self.rec_weight * rec
        return DLoss(loss, logit_real, logit_fake, rec.detach()[None])

    def g_loss(self, D: nn.Module, fake: torch.Tensor, augment: Augment, y: torch.Tensor | None = None) -> torch.Tensor:
        _, patches, _ = D(augment(fake), **labels(y))
        return hinge_g(patches)


class ProjectedLoss:
    """Projected GAN (Sauer et al. 2021): the hinge loss on every head's patch logits, each head weighted
    equally (the paper's mean over all heads' logits, whose heads have equal patch counts); Adam for both.
    D's parameters are its heads only: the feature network and the random projections never train.

    class_weight > 0 (a conditional run's --class-loss; D has a class head): D also learns the label sets of
    the real images (BCE, metric loss_cls) and G is asked for fakes D classifies as their labels. D classifies
    real images only, so G is pulled towards the real classes' evidence, not towards whatever D finds easy
    to tell apart among fakes (AC-GAN's known failure when D also classifies fakes)."""

    def __init__(self, class_weight: float = 0.0) -> None:
        self.class_weight = float(class_weight)
        self.extra_names: tuple[str, ...] = ("loss_cls",) if self.class_weight else ()

    def optimizers(self, G: nn.Module, D: nn.Module, lr_g: float, lr_d: float, betas: Sequence[float]):
        return adam_pair(G, D, lr_g, lr_d, betas)

    def class_kwargs(self, y: torch.Tensor | None) -> dict[str, bool]:
        """D's extra keyword arguments: classify=True when the class loss applies (labels given), none otherwise
        (the plain projected call, as labels() leaves an unconditional call as before)."""
        return {"classify": True} if self.class_weight and y is not None else {}

    def d_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, augment: Augment,
               y_real: torch.Tensor | None = None, y_fake: torch.Tensor | None = None) -> DLoss:
        classify = self.class_kwargs(y_real)
        out_real = D(augment(real), **classify, **labels(y_real))
        logit_real, heads_real = out_real[0], out_real[1]
        logit_fake, heads_fake = D(augment(fake), **labels(y_fake))
        loss = sum(hinge_d(r, f) for r, f in zip(heads_real, heads_fake)) / len(heads_real)
        extras = torch.zeros(0, device=real.device)
        if classify:
            cls = F.binary_cross_entropy_with_logits(out_real[2].float(), y_real.float())
            loss, extras = loss + self.class_weight * cls, cls.detach()[None]
        return DLoss(loss, logit_real, logit_fake, extras)

    def g_loss(self, D: nn.Module, fake: torch.Tensor, augment: Augment, y: torch.Tensor | None = None) -> torch.Tensor:
        classify = self.class_kwargs(y)
        out = D(augment(fake), **classify, **labels(y))
        loss = sum(hinge_g(h) for h in out[1]) / len(out[1])
        if classify:
            loss = loss + self.class_weight * F.binary_cross_entropy_with_logits(out[2].float(), y.float())
        return loss


def make_loss(arch: str, label_flip: float, real_label: float, momentum_d: float, world: int = 1, rank: int = 0,
              class_weight: float = 0.0):
    """The loss object of an architecture (see the module docstring)."""
    if arch == "fastgan":
        return FastganLoss()
    if arch == "projected":
        return ProjectedLoss(class_weight)
    return DcganLoss(label_flip, real_label, momentum_d, world, rank)
