"""The paper's schedules (section 3.4): exponential learning-rate decay lr0 * exp(-k * epoch), k = 0.01,
and a batch size doubled every 15 epochs from 32 up to 128 (epochs are counted from 0)."""

from __future__ import annotations

import math

import torch

from protgan.core.errors import ProtganError

LR_DECAY_K = 0.01
BATCH_DOUBLING_EVERY = 15
BATCH_SCHEDULE_CHOICES = ("paper", "fixed")


def lr_at(epoch: int, lr0: float, k: float = LR_DECAY_K) -> float:
    return lr0 * math.exp(-k * epoch)


def batch_size_at(epoch: int, base: int = 32, schedule: str = "paper", every: int = BATCH_DOUBLING_EVERY,
                  max_doublings: int = 2) -> int:
    """`paper`: base, 2*base from epoch `every`, 4*base (the cap: 32 -> 128) from epoch 2*every."""
    if schedule == "fixed":
        return base
    if schedule != "paper":
        raise ProtganError(f"--batch-schedule {schedule!r}: expected one of {', '.join(BATCH_SCHEDULE_CHOICES)}")
    return base * 2 ** min(epoch // every, max_doublings)


def exponential_decay(optimizer: torch.optim.Optimizer, k: float = LR_DECAY_K) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per epoch: the lr during epoch e is lr0 * exp(-k * e)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: math.exp(-k * epoch))
