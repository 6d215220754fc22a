"""Focal loss (the paper's eq. 2-3, Lin et al. 2017) and plain binary cross-entropy, both on logits.

Working on logits (log-sigmoid inside) keeps the loss finite where a sigmoid output saturates at 0 or 1;
the model's sigmoid output is only used for predictions.

The paper's alpha: eq. 3 weights positive labels by alpha and negative ones by 1 - alpha, and the
paper says alpha = 1. Taken literally that gives every negative label zero weight, so predicting every
label present would be a perfect score. We read the paper's alpha = 1 as "no alpha balancing" (weight 1
on both terms, which is the loss of the Keras focal-loss code of the time with alpha = 1 as a global
factor): `alpha=None` (default, also accepted as 1). An alpha strictly between 0 and 1 gives eq. 3's
balancing exactly.

`focal+lovasz` (bestfitting, 1st place HPA 2018): focal loss + the Lovasz hinge (Berman, Triki &
Blaschko 2018), a convex surrogate of the Jaccard loss, computed per class over the images of the
batch (each class's column is one "binary segmentation" of the batch) and averaged over classes, added
with weight 1. It optimises a set-level (F1-like) quantity that per-label losses do not.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from protgan.core.errors import ProtganError

LOSS_CHOICES = ("focal", "bce", "focal+lovasz")


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0,
               alpha: float | None = None) -> torch.Tensor:
    """Mean over samples and labels of -alpha_t (1 - p_t)^gamma log(p_t), p_t = p for a positive label,
    1 - p for a negative one (p = sigmoid(logit))."""
    logits = logits.float()
    targets = targets.float()
    log_pt = -F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # log p_t, stable
    pt = log_pt.exp()
    loss = -((1.0 - pt) ** gamma) * log_pt if gamma else -log_pt
    if alpha is not None:
        loss = loss * (alpha * targets + (1.0 - alpha) * (1.0 - targets))
    return loss.mean()


def bce_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. errors sorted in decreasing order
    (Berman et al., Algorithm 1), column-wise for N x C."""
    gts = gt_sorted.sum(0, keepdim=True)
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], 0)


def lovasz_hinge(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over classes of the Lovasz hinge of each class's column (N images): the Lovasz extension of
    the Jaccard loss applied to the hinge errors max(0, 1 - logit * sign), sign = +1 / -1 for a positive /
    negative label."""
    logits = logits.float()
    targets = targets.float()
    errors = 1.0 - logits * (2.0 * targets - 1.0)
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    grad = lovasz_grad(torch.gather(targets, 0, perm))
    return (F.relu(errors_sorted) * grad).sum(0).mean()


def check_focal_alpha(alpha: float | None) -> float | None:
    """None or 1 -> None (the paper's unweighted reading); (0, 1) -> itself; anything else is an error."""
    if alpha is None or alpha == 1.0:
        return None
    if not 0.0 < alpha < 1.0:
        raise ProtganError(f"--focal-alpha {alpha}: expected a value in (0, 1), or 1 / none for the paper's loss")
    return float(alpha)


def make_loss(name: str, gamma: float = 2.0, alpha: float | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "focal":
        if gamma < 0:
            raise ProtganError(f"--focal-gamma {gamma}: must be >= 0")
        a = check_focal_alpha(alpha)
        return lambda logits, targets: focal_loss(logits, targets, gamma, a)
    if name == "bce":
        return bce_loss
    if name == "focal+lovasz":
        focal = make_loss("focal", gamma, alpha)
        return lambda logits, targets: focal(logits, targets) + lovasz_hinge(logits, targets)
    raise ProtganError(f"--loss {name!r}: expected one of {', '.join(LOSS_CHOICES)}")
