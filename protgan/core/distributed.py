"""PyTorch's distributed engine for protgan: `torchrun --nproc-per-node N -m protgan classify|train-gan ...`.

The one module that knows about ranks. Training code calls a handful of functions that are no-ops in a
plain single process, so the single-process path stays exactly what it was:

    device = setup(cfg.device)          # joins the process group when torchrun set WORLD_SIZE > 1
    ddp = wrap_model(model, device, sync_bn=cfg.sync_bn)   # DDP (+ SyncBatchNorm); `model` stays unwrapped
    sampler = ShardedSampler(n, batch, order)               # this rank's slice of every global batch
    if is_main(): save(...)             # only rank 0 writes files
    barrier()                           # the others wait around checkpoint writes

Backends: NCCL when the process uses a GPU (one GPU per process, cuda:LOCAL_RANK), gloo on CPU.
Control traffic (barriers, stop flags, gathering CPU metrics) goes through a gloo group even on GPU
runs, so it never waits on a CUDA stream.

Batch and learning rate: `--batch-size` is per process, so the global batch is world_size x batch.
A global batch of a DDP run holds exactly the images of the same batch of a single process run with
world_size x batch (ShardedSampler), so the two make the same updates (with --sync-bn for models with
batch norm). The learning rate is the given one unless `--lr-scaling linear|sqrt` (Goyal et al. 2017's
linear rule: lr x world_size; sqrt: lr x sqrt(world_size)).

Sync batch norm: on CUDA, torch's nn.SyncBatchNorm (timm's converter, which keeps timm's BatchNormAct
layers' activations); torch's SyncBatchNorm does not run on CPU, so on gloo protgan uses
GlooSyncBatchNorm below: the same statistics (sum and sum of squares all-reduced over ranks) through a
differentiable all-reduce.
"""

from __future__ import annotations

import atexit
import math
import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler, Subset

from protgan.core.device import resolve_device
from protgan.core.errors import ProtganError

LR_SCALING_CHOICES = ("none", "linear", "sqrt")
# Rank 0 may work alone for a while (a final evaluation, a checkpoint of a 512 px GAN) while the others
# wait at a barrier: longer than torch's 10 min NCCL default. PROTGAN_DIST_TIMEOUT_MIN overrides it.
DEFAULT_TIMEOUT_MIN = 60

_control_group: dist.ProcessGroup | None = None  # gloo group for CPU-side control traffic


# ------------------------------------------------------------------------------------ environment
def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ProtganError(f"environment variable {name}={value!r}: expected an integer (set by torchrun)") from None


def launched_world_size() -> int:
    """WORLD_SIZE as torchrun set it (1 for a plain `protgan` run)."""
    return _env_int("WORLD_SIZE", 1)


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (torchrun's RANK before the group is joined, so logs can be muted early)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else _env_int("RANK", 0)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """Rank 0: the one process that writes files, logs and shows progress bars."""
    return rank() == 0


# -------------------------------------------------------------------------------------- setup
def rank_device(spec: str = "auto") -> torch.device:
    """The device of this rank: cuda:LOCAL_RANK for auto/cuda when GPUs exist, else the CPU."""
    if launched_world_size() <= 1:
        return resolve_device(spec)
    spec = spec.strip().lower()
    if spec.startswith("cuda:"):
        raise ProtganError(f"--device {spec}: under torchrun each process uses cuda:LOCAL_RANK; "
                           f"pass --device cuda (or auto), and pick GPUs with CUDA_VISIBLE_DEVICES")
    device = resolve_device(spec)
    if device.type != "cuda":
        return device
    n = torch.cuda.device_count()
    lr = local_rank()
    if lr >= n:
        raise ProtganError(f"--device {spec}: LOCAL_RANK {lr} but only {n} GPU(s) visible "
                           f"(use --nproc-per-node <= {n})")
    return torch.device("cuda", lr)


def setup(device_spec: str = "auto") -> torch.device:
    """This process's device; under torchrun (WORLD_SIZE > 1) also joins the process group, once.

    NCCL for GPUs, gloo for the CPU; the rendezvous is torchrun's (MASTER_ADDR, MASTER_PORT, RANK,
    WORLD_SIZE in the environment)."""
    global _control_group
    device = rank_device(device_spec)
    if launched_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return device
    if not dist.is_available():
        raise ProtganError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT", "RANK") if not os.environ.get(k)]
    if missing:
        raise ProtganError(f"WORLD_SIZE={launched_world_size()} but {', '.join(missing)} not set: "
                           f"launch with torchrun --nproc-per-node N -m protgan ...")
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(minutes=float(os.environ.get("PROTGAN_DIST_TIMEOUT_MIN", DEFAULT_TIMEOUT_MIN)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend, timeout=timeout, device_id=device if device.type == "cuda" else None)
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ProtganError(f"joining the process group ({backend}, MASTER_ADDR={os.environ.get('MASTER_ADDR')}, "
                           f"MASTER_PORT={os.environ.get('MASTER_PORT')}) failed: {first}") from None
    _control_group = dist.new_group(backend="gloo") if backend != "gloo" else None
    atexit.register(cleanup)
    return device


def cleanup() -> None:
    """Leave the process group (at exit; safe to call twice)."""
    global _control_group
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _control_group = None


def barrier() -> None:
    """Wait for every rank (CPU-side, gloo); a no-op in a single process."""
    if active():
        dist.barrier(group=_control_group)


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. creating folds.csv), the others after it: no write races."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any (e.g. a Ctrl-C seen by one process): all stop together."""
    if not active():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_control_group)
    return bool(t.item())


# --------------------------------------------------------------------------------- collectives
def _group_for(t: torch.Tensor) -> dist.ProcessGroup | None:
    return None if t.is_cuda else _control_group


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of `t` over ranks (a new tensor; `t` itself when single-process)."""
    if not active():
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM, group=_group_for(out))
    return out / world_size()


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    if not active():
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.MAX, group=_group_for(out))
    return out


def mean_scalar(value: float) -> float:
    """A Python number averaged over ranks (e.g. a mean loss)."""
    if not active():
        return value
    return float(all_reduce_mean(torch.tensor([value], dtype=torch.float64))[0])


def gather_cat(t: torch.Tensor | None) -> torch.Tensor | None:
    """Concatenate every rank's tensor along dim 0, in rank order (sizes may differ); on the CPU.

    With contiguous shards (shard_dataset) this rebuilds the full, ordered result on every rank."""
    if t is None or not active():
        return t
    local = t.detach().cpu().contiguous()
    n = torch.tensor([local.shape[0]], dtype=torch.int64)
    parts = [torch.zeros(1, dtype=torch.int64) for _ in range(world_size())]
    dist.all_gather(parts, n, group=_control_group)
    sizes = torch.cat(parts)
    longest = int(sizes.max())
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype)
    padded[:local.shape[0]] = local
    chunks = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(chunks, padded, group=_control_group)
    return torch.cat([c[:int(k)] for c, k in zip(chunks, sizes)])


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (batch-norm running statistics) on every rank, e.g. before an evaluation
    without --sync-bn, where each rank's running statistics drift apart."""
    if not active():
        return
    for b in model.buffers():
        dist.broadcast(b.data, src=0, group=_group_for(b))


# ----------------------------------------------------------------------------- models and DDP
class FreezableDDP(DistributedDataParallel):
    """DDP that steps aside while its module is frozen (requires_grad False), e.g. D during G's update
    in a GAN: the forward then runs the plain module, so DDP's reducer does not wait for gradients that
    will never come. Gradients still flow through it to whatever produced the input."""

    def forward(self, *args, **kwargs):
        first = next(self.module.parameters(), None)
        if first is not None and not first.requires_grad:
            return self.module(*args, **kwargs)
        return super().forward(*args, **kwargs)


def wrap_model(model: nn.Module, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """`model` in DDP (its batch norms made synchronous first with sync_bn); unchanged single-process.

    The conversion happens in place (same parameters, same state_dict keys), so the caller keeps using
    the unwrapped `model` for checkpoints (no `module.` prefix: any world size can resume them) and
    evaluation, and builds optimizers on its parameters."""
    if not active():
        return model
    if sync_bn:
        convert_sync_batchnorm(model, device)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return FreezableDDP(model, device_ids=ids)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every batch-norm layer of `model` (in place) computes its statistics over all ranks."""
    if device.type == "cuda":
        try:  # timm's converter also handles its BatchNormAct2d (batch norm + activation in one layer)
            from timm.layers import convert_sync_batchnorm as timm_convert
        except ImportError:  # pragma: no cover - timm is a dependency
            return nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return timm_convert(model)
    return _convert_gloo(model)


def _convert_gloo(module: nn.Module) -> nn.Module:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, (GlooSyncBatchNorm, nn.SyncBatchNorm)):
            setattr(module, name, GlooSyncBatchNorm.from_batchnorm(child))
        else:
            _convert_gloo(child)
    return module


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the gradient of a sum shared by every rank is the sum of the
    ranks' gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm with statistics over the whole global batch, for CPU (gloo) process groups.

    Training: each rank's per-channel count, sum and sum of squares are all-reduced (float64, through
    a differentiable all-reduce), giving the mean and biased variance of the global batch; running
    statistics get the unbiased variance, as nn.BatchNorm does. Eval, or a single process: plain
    batch norm. A timm BatchNormAct layer keeps its dropout/activation (`drop`, `act`)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    @classmethod
    def from_batchnorm(cls, bn: nn.modules.batchnorm._BatchNorm) -> "GlooSyncBatchNorm":
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        if bn.affine:
            new.weight, new.bias = bn.weight, bn.bias
        new.running_mean, new.running_var = bn.running_mean, bn.running_var
        new.num_batches_tracked = bn.num_batches_tracked
        for extra in ("drop", "act"):  # timm's BatchNormAct2d
            if isinstance(getattr(bn, extra, None), nn.Module):
                new.add_module(extra, getattr(bn, extra))
        new.train(bn.training)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and active():
            y = self._sync_forward(x)
        else:
            y = super().forward(x)
        if "drop" in self._modules:
            y = self.drop(y)
        if "act" in self._modules:
            y = self.act(y)
        return y

    def _sync_forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = [0] + list(range(2, x.dim()))
        n_local = x.numel() // x.shape[1]
        xf = x.double()
        stats = torch.cat([xf.sum(dims), (xf * xf).sum(dims), xf.new_tensor([float(n_local)])])
        stats = _AllReduceSum.apply(stats)
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
                count = float(n)
                unbiased = var * (count / max(count - 1.0, 1.0))
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        shape = [1, c] + [1] * (x.dim() - 2)
        invstd = torch.rsqrt(var + self.eps).to(x.dtype).view(shape)
        y = (x - mean.to(x.dtype).view(shape)) * invstd
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


# ------------------------------------------------------------------------------------ sampling
class ShardedSampler(Sampler[int]):
    """This rank's share of an epoch: the global order cut into global batches of world x batch_size,
    rank r taking slice r of each. Every sample is seen at most once per epoch across ranks (exactly
    once unless dropped as an incomplete last global batch), and the global batch k of a run with
    W processes holds the same images as batch k of a single process with batch W x batch_size.

    order(epoch) -> permutation of range(n): a function of the epoch only (a per-epoch seed), so every
    rank computes the same one and a resumed run replays it. set_epoch(e) before each epoch;
    set_position(e, start) also skips this rank's first `start` samples (mid-epoch resume).

    drop_last: drop an incomplete last global batch. When kept, it is split over the ranks in near
    equal contiguous parts; a tail smaller than the world size is dropped (a rank with no batch would
    leave the others waiting in DDP's all-reduce)."""

    def __init__(self, n: int, batch_size: int, order: Callable[[int], Sequence[int]] | None = None,
                 seed: int = 0, drop_last: bool = True, rank_: int | None = None, world: int | None = None) -> None:
        self.n, self.batch_size, self.seed, self.drop_last = n, batch_size, seed, drop_last
        self.order = order or self.seeded_permutation
        self.rank = rank() if rank_ is None else rank_
        self.world = world_size() if world is None else world
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} not in 0..{self.world - 1}")
        self.epoch, self.start = 0, 0

    def seeded_permutation(self, epoch: int) -> list[int]:
        seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(seed)).tolist()

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start = epoch, 0

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    @property
    def global_batch(self) -> int:
        return self.world * self.batch_size

    def shard(self, order: Sequence[int]) -> list[int]:
        g = self.global_batch
        full = (len(order) // g) * g
        b, r = self.batch_size, self.rank
        out = [i for k in range(0, full, g) for i in order[k + r * b:k + (r + 1) * b]]
        tail = list(order[full:])
        if tail and not self.drop_last and len(tail) >= self.world:
            bounds = [round(j * len(tail) / self.world) for j in range(self.world + 1)]
            out += tail[bounds[r]:bounds[r + 1]]
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard(list(self.order(self.epoch)))[self.start:])

    def __len__(self) -> int:
        g = self.global_batch
        full = (self.n // g) * self.batch_size
        tail = self.n % g
        if tail and not self.drop_last and tail >= self.world:
            bounds = [round(j * tail / self.world) for j in range(self.world + 1)]
            full += bounds[self.rank + 1] - bounds[self.rank]
        return max(full - self.start, 0)


def loader_order(n: int, seed: int) -> list[int]:
    """The order in which `protgan.data.make_loader(shuffle=True, seed=seed)` visits n samples in a
    single process (a DataLoader's RandomSampler on a generator seeded with `seed`), so a sharded
    DDP epoch reads the same global batches as the single-process one."""
    from torch.utils.data import DataLoader

    if n == 0:
        return []
    loader = DataLoader(range(n), batch_size=n, shuffle=True, generator=torch.Generator().manual_seed(seed))
    return next(iter(loader)).tolist()


def train_sampler(n: int, batch_size: int, seed: int, drop_last: bool) -> ShardedSampler | None:
    """The sampler of a shuffled training epoch under DDP (None single-process: make_loader shuffles)."""
    if not active():
        return None
    return ShardedSampler(n, batch_size, order=lambda epoch: loader_order(n, seed), drop_last=drop_last)


def shard_dataset(dataset):
    """This rank's contiguous part of an evaluation set (the whole set single-process); gather_cat of
    the per-rank results restores the full set's order."""
    if not active():
        return dataset
    n, w, r = len(dataset), world_size(), rank()
    return Subset(dataset, range(round(r * n / w), round((r + 1) * n / w)))


def rank_seed(*parts: int) -> int:
    """A seed for (parts..., rank): per-rank random augmentation/dropout streams that are still a
    function of the run's seed and epoch (so a resumed DDP run replays them)."""
    return int(np.random.SeedSequence([*(int(p) for p in parts), rank()]).generate_state(1)[0])


def lr_factor(rule: str, world: int | None = None) -> float:
    """none: 1 (the paper's LR whatever the world size); linear: world_size; sqrt: sqrt(world_size)."""
    if rule not in LR_SCALING_CHOICES:
        raise ProtganError(f"--lr-scaling {rule!r}: expected one of {', '.join(LR_SCALING_CHOICES)}")
    w = world_size() if world is None else world
    return {"none": 1.0, "linear": float(w), "sqrt": math.sqrt(w)}[rule]
