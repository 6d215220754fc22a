"""Weight averaging of one fold's training run: the last K epochs' weights (SWA-style) or an EMA.

  none     the selected best checkpoint is evaluated (protgan.classify.train `select`)
  last:K   the mean of the weights at the end of the last K epochs (each saved as fold_K/epoch_E.pt)
  ema      an exponential moving average of the weights, updated after every optimizer step with
  ema:D    decay D (default 0.999), warmed up as timm's ModelEma: decay_t = min(D, (1 + t) / (10 + t)), so
           a short run is not dominated by the starting (pretrained) weights

Batch-norm running statistics do not average into those of the averaged weights, so they are
recomputed after averaging: one pass over the (non-augmented) training part in train mode for the
batch-norm layers only, with a cumulative mean (torch.optim.swa_utils.update_bn's rule, without
dropout). With an average the evaluated model is the averaged one (fold_K/averaged.pt), not a "best"
checkpoint: weight averaging replaces the epoch choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import torch

from protgan.core.errors import ProtganError

AVERAGE_HELP = "none, last:K or ema[:DECAY]"


@dataclass(frozen=True)
class AverageSpec:
    kind: str  # none, last, ema
    k: int = 0
    decay: float = 0.999


def parse_average(text: str | None) -> AverageSpec:
    t = (text or "none").strip().lower()
    if t == "none":
        return AverageSpec("none")
    kind, _, arg = t.partition(":")
    try:
        if kind == "last" and arg:
            spec = AverageSpec("last", k=int(arg))
            if spec.k < 1:
                raise ValueError
            return spec
        if kind == "ema":
            spec = AverageSpec("ema", decay=float(arg) if arg else 0.999)
            if not 0.0 < spec.decay < 1.0:
                raise ValueError
            return spec
    except ValueError:
        pass
    raise ProtganError(f"--average {text!r}: expected {AVERAGE_HELP} (K >= 1, 0 < DECAY < 1)")


def epoch_weights_path(fold_dir: Path, epoch: int) -> Path:
    return Path(fold_dir) / f"epoch_{epoch}.pt"


def mean_state(states: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Elementwise mean of floating-point tensors; other tensors (counters) from the last state."""
    states = list(states)
    if not states:
        raise ValueError("no weights to average")
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = (sum(s[key].double() for s in states) / len(states)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def average_saved_epochs(paths: Iterable[Path]) -> dict[str, torch.Tensor]:
    return mean_state(torch.load(p, map_location="cpu", weights_only=True) for p in paths)


class Ema:
    """EMA of a model's floating-point state (parameters and buffers), float32, on the model's device."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        self.steps += 1
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1.0 - d)

    def averaged_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: (self.shadow[k].to(v.dtype) if k in self.shadow else v.detach().clone()).cpu()
                for k, v in model.state_dict().items()}

    def state_dict(self) -> dict:
        return {"decay": self.decay, "steps": self.steps, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.steps = state["decay"], state["steps"]
        dev = next(iter(self.shadow.values())).device if self.shadow else "cpu"
        self.shadow = {k: v.to(dev).float() for k, v in state["shadow"].items()}


_BN = (torch.nn.modules.batchnorm._BatchNorm,)


@torch.no_grad()
def recompute_bn(model: torch.nn.Module, loader, accel) -> bool:
    """Re-estimate every batch-norm layer's running mean/var over `loader` (cumulative mean). Other layers
    stay in eval mode (no dropout). Returns False (and changes nothing) when the model has no batch norm."""
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not bns:
        return False
    model.eval()
    momenta = {}
    for m in bns:
        momenta[m] = m.momentum
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = the mean over all batches
        m.train()
    for x, _ in loader:
        with accel.autocast():
            model(accel.batch(x))
    for m in bns:
        m.momentum = momenta[m]
    model.eval()
    return True
