"""Optimizers and per-epoch learning-rate schedules of the four papers' recipes.

- verma2020 (paper28 / paper5): Adam, lr0 * exp(-0.01 epoch) (`exp`).
- Al-joudi 2023 (GapNet-PL): SGD lr 0.1, momentum 0.9; "the learning rate is reduced by half when
  model performance reaches a plateau" (`plateau`, factor 0.5; the patience is not given: 5).
- Aggarwal 2022: Adam 1e-3 (betas 0.9/0.999, weight decay 1e-8, Table 4), x0.1 after 3 epochs
  without a decrease of the validation loss (`plateau`, factor 0.1, patience 3).
- Liimatainen 2021: Adam 1e-3, divided by three when the validation loss has not decreased for 8
  consecutive epochs (`plateau`, factor 1/3, patience 8).
Every schedule is stepped once per epoch after validation with that epoch's validation loss (the
exponential one ignores it), and has a state_dict so a resumed run continues it exactly.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from protgan.classify.schedules import LR_DECAY_K
from protgan.core.errors import ProtganError

OPTIMIZER_CHOICES = ("adam", "sgd")
LR_SCHEDULE_CHOICES = ("exp", "plateau", "constant")


def make_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    if name == "sgd":
        if not 0.0 <= momentum < 1.0:
            raise ProtganError(f"--momentum {momentum}: expected a value in [0, 1)")
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ProtganError(f"--optimizer {name!r}: expected one of {', '.join(OPTIMIZER_CHOICES)}")


class EpochSchedule:
    """One `step(val_loss)` per epoch; wraps torch's LambdaLR (exp, constant) or ReduceLROnPlateau."""

    def __init__(self, optimizer: torch.optim.Optimizer, name: str, factor: float = 0.5, patience: int = 5,
                 exp_k: float = LR_DECAY_K) -> None:
        if name not in LR_SCHEDULE_CHOICES:
            raise ProtganError(f"--lr-schedule {name!r}: expected one of {', '.join(LR_SCHEDULE_CHOICES)}")
        self.name = name
        if name == "plateau":
            if not 0.0 < factor < 1.0:
                raise ProtganError(f"--plateau-factor {factor}: expected a value in (0, 1)")
            if patience < 0:
                raise ProtganError(f"--plateau-patience {patience}: must be >= 0")
            # Keras' ReduceLROnPlateau (the papers' framework) cuts once `patience` epochs in a row brought no
            # improvement; torch's cuts after patience + 1 such epochs, hence patience - 1 here.
            self.inner = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=factor, patience=max(patience - 1, 0), threshold=1e-4)
        elif name == "exp":
            self.inner = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: math.exp(-exp_k * e))
        else:
            self.inner = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)

    def step(self, val_loss: float) -> None:
        if self.name == "plateau":
            self.inner.step(val_loss)
        else:
            self.inner.step()

    def state_dict(self) -> dict:
        return {"name": self.name, "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name", self.name) != self.name:
            raise ProtganError(f"resume: the run used --lr-schedule {state['name']}, not {self.name}")
        self.inner.load_state_dict(state["inner"] if "inner" in state else state)


def describe_optimizer(cfg: dict) -> str:
    """One phrase for summary.md, from a run's config.json (older runs: Adam with the exp schedule)."""
    name = cfg.get("optimizer") or "adam"
    opt = "SGD" if name == "sgd" else "Adam"
    if name == "sgd":
        opt += f" (momentum {cfg.get('momentum', 0.9):g})"
    if cfg.get("weight_decay"):
        opt += f", weight decay {cfg['weight_decay']:g}"
    sched = cfg.get("lr_schedule") or "exp"
    if sched == "exp":
        rule = "x exp(-0.01 epoch)"
    elif sched == "plateau":
        rule = (f"x {cfg.get('plateau_factor', 0.5):.3g} after {cfg.get('plateau_patience', 5)} epochs "
                f"without a lower validation loss")
    else:
        rule = "constant"
    return f"{opt}, lr {cfg['lr']:g} ({rule})"
