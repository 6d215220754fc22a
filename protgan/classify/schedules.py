"""The paper's batch schedule (section 3.4): a batch size doubled every 15 epochs from 32 up to 128 (epochs
counted from 0). Its learning-rate decay lr0 * exp(-k * epoch), k = LR_DECAY_K, is protgan.classify.optim.EpochSchedule("exp")."""

from __future__ import annotations

from protgan.core.errors import ProtganError

LR_DECAY_K = 0.01
BATCH_DOUBLING_EVERY = 15
BATCH_SCHEDULE_CHOICES = ("paper", "fixed")


def batch_size_at(epoch: int, base: int = 32, schedule: str = "paper", every: int = BATCH_DOUBLING_EVERY,
                  max_doublings: int = 2) -> int:
    """`paper`: base, 2*base from epoch `every`, 4*base (the cap: 32 -> 128) from epoch 2*every."""
    if schedule == "fixed":
        return base
    if schedule != "paper":
        raise ProtganError(f"--batch-schedule {schedule!r}: expected one of {', '.join(BATCH_SCHEDULE_CHOICES)}")
    return base * 2 ** min(epoch // every, max_doublings)

