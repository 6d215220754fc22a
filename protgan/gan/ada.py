"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data"), on the DiffAugment operations of protgan.gan.diffaug.

`--augment-p`:
    off         DiffAugment as given by --diffaug (every op on every sample; no policy: no augmentation)
    fixed:P     each op of the policy applied to each sample with probability P
    ada:TARGET  P starts at 0 and every `interval` steps moves by
                    sign(r_t - TARGET) * (global batch * interval) / (ada_kimg * 1000)
                where r_t = E[sign(D(real))] over those steps (the overfitting heuristic: ~0 when D cannot tell
                real from fake, 1 when it is sure of every real image): D overfits -> more augmentation.
The policy is --diffaug's, or all of color, translation, cutout when --diffaug is empty.

The same augmentation (same p) is applied to every image D sees: real and fake, D's step and G's step.
p and the r_t accumulator are device tensors (no host sync in the hot loop); both go into the checkpoint,
so a resumed run continues with the same p (stylegan2-ada's resume restarts it from 0).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from protgan.core import distributed
from protgan.gan.config import parse_augment_p  # noqa: F401  (the spec parser is torch-free)
from protgan.gan.diffaug import POLICIES, diff_augment

MODES = ("off", "fixed", "ada")
DEFAULT_POLICY = tuple(POLICIES)  # color, translation, cutout


class AdaptiveAugment:
    """The augmentation D's inputs go through (call it on a batch), and ADA's p controller."""

    def __init__(self, spec: str, policy: Sequence[str], global_batch: int, ada_kimg: float, interval: int,
                 device: torch.device) -> None:
        self.mode, value = parse_augment_p(spec)
        self.policy = tuple(policy) if (policy or self.mode == "off") else DEFAULT_POLICY
        self.target = value if self.mode == "ada" else None
        self.interval = interval
        self.adjust = global_batch * interval / (ada_kimg * 1000.0)
        self.p = torch.tensor(value if self.mode == "fixed" else 0.0, device=device)
        self._sum = torch.zeros((), device=device)  # sum of per-step E[sign(D(real))] since the last update
        self._n = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return diff_augment(x, self.policy)
        return diff_augment(x, self.policy, self.p.to(x.dtype))

    def observe(self, logit_real: torch.Tensor) -> torch.Tensor:
        """Record one step's E[sign(D(real))] (returned, for the metrics) for the next p update."""
        rt = torch.sign(logit_real.detach().float()).mean()
        if self.mode == "ada":
            self._sum += rt
            self._n += 1
        return rt

    def update(self, step: int) -> None:
        """After step `step`: every `interval` steps, move p by the sign rule (device ops only)."""
        if self.mode != "ada" or step % self.interval or not self._n:
            return
        mean = self._sum / self._n
        if distributed.active():  # every rank moves p the same way
            mean = distributed.all_reduce_mean(mean)
        self.p.copy_((self.p + torch.sign(mean - self.target) * self.adjust).clamp(0.0, 1.0))
        self._sum.zero_()
        self._n = 0

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "p": float(self.p), "sum": float(self._sum), "n": self._n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.mode != "ada" or state.get("mode") != "ada":  # fixed/off: this invocation's p holds
            return
        self.p.fill_(float(state["p"]))
        self._sum.fill_(float(state.get("sum", 0.0)))
        self._n = int(state.get("n", 0))
