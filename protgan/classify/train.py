"""`ClassifyConfig`, the training loop, the K-fold driver and the merge of fold results.

One fold = train on the other folds' real images (+ synthetic images when augmenting with a GAN),
validate on its own real images after every epoch, keep three "best" checkpoints (lowest validation
loss, highest validation macro F1, highest validation micro F1: the paper's three callbacks) and a
`last.pt` to resume from. At the end, the checkpoint chosen by `select` is evaluated on the training
part (thresholds tuned there) and on validation, at the tuned thresholds and at 0.5.

Layout of RUN:
    config.json          the resolved options
    folds.csv            only when DATA was not writable (else DATA/folds.csv, shared by every run)
    fold_K/              history.json, ids.json, result.json, thresholds.json,
                         best_loss.pt, best_macro_f1.pt, best_micro_f1.pt, last.pt (while training;
                         once the fold is done, --keep-checkpoints selected keeps best_<select>.pt only)
    metrics.csv, per_class.csv, summary.md, thresholds.json, curves.png, per_class.png  (once all folds are done)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from protgan.core import distributed
from protgan.core.atomic import atomic_path, write_json
from protgan.classify.config import SELECT_CHOICES, ClassifyConfig
from protgan.core.runfolder import RunLock, check_same_options, claim_run_folder, read_saved_options
from protgan.core.safeload import load_weights, plain, rng_state, set_rng_state
from protgan.data.problems import require_readable
from protgan.classify.augment import AUGMENT_CHOICES, AugmentTransform, SeededSamples, parse_probabilities
from protgan.classify.balance import ResampledDataset, balance_indices, parse_balance
from protgan.classify.fcn_targets import FcnObjective, fcn_network
from protgan.classify.mlcm import write_label_reports
from protgan.classify.optim import LR_SCHEDULE_CHOICES, OPTIMIZER_CHOICES, EpochSchedule, make_optimizer
from protgan.classify.losses import LOSS_CHOICES, make_loss
from protgan.classify.metrics import evaluate, macro_f1, micro_f1
from protgan.classify.models import Classifier, create_model, get_spec
from protgan.classify.models.paper_models import SIZE_MULTIPLE
from protgan.classify.schedules import BATCH_SCHEDULE_CHOICES, batch_size_at
from protgan.classify.thresholds import KINDS as THRESHOLD_KINDS
from protgan.classify.thresholds import apply_thresholds, thresholds_by_kind
from protgan.classify.tta import TTA_CHOICES, predict_probs
from protgan.classify.averaging import Ema, average_saved_epochs, epoch_weights_path, parse_average, recompute_bn
from protgan.data import (
    ChannelStackDataset, ImageSet, class_name, dataset_folds, make_loader, open_dataset,
    parse_channels, resolve_subset, to_unit_range,
)
from protgan.core.errors import ProtganError
from protgan.core.options import per_invocation
from protgan.core.tensorboard import open_tensorboard
from protgan.data.provenance import FoldCheck, check_fold, synthetic_for_fold
from protgan.classify.report import collect_run
from protgan.data.duplicates import refuse_synthetic_copies
from protgan.data.folds import holdout_split

CHECKPOINT_FORMAT = "protgan-classifier/1"
# what classify writes in RUN: an input elsewhere inside RUN is not written over
RUN_WRITES = ("config.json", "folds.csv", "metrics.csv", "per_class.csv", "summary.md", "thresholds.json",
              "curves.png", "per_class.png") + tuple(f"fold_{k}" for k in range(100))
# options that may change between the invocations of one run (e.g. one fold per GPU)
_PER_INVOCATION = per_invocation(ClassifyConfig)  # fold, workers, device, amp, sync_bn, keep_checkpoints, ...

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass
class Prepared:
    """Everything a fold needs, checked once."""

    cfg: ClassifyConfig
    out: Path
    real: ImageSet
    synthetic_sets: dict[int, ImageSet]  # fold -> its synthetic images (one shared set, or SYN/fold_K)
    classes: list[int]
    channels: tuple[str, ...]
    folds_path: Path
    fold_of: dict[str, int]
    k: int
    notes: list[str] = field(default_factory=list)
    group_of: dict[str, str] | None = None  # near-duplicate groups (folds.csv), kept whole in the held-out split
    leakage: dict[int, FoldCheck] = field(default_factory=dict)  # fold -> what its generators saw of its validation

    def synthetic_for(self, fold: int) -> ImageSet | None:
        return self.synthetic_sets.get(fold)

    def split(self, fold: int) -> tuple[list[str], list[str]]:
        if not 0 <= fold < self.k:
            raise ProtganError(f"--fold {fold} out of range 0..{self.k - 1}")
        train = [i for i in self.real.ids if self.fold_of[i] != fold]
        val = [i for i in self.real.ids if self.fold_of[i] == fold]
        return train, val


def validate(cfg: ClassifyConfig) -> None:
    spec = get_spec(cfg.model)
    if cfg.size < spec.min_size:
        raise ProtganError(f"--size {cfg.size}: {spec.name} needs images of at least {spec.min_size} px")
    if cfg.folds < 2:
        raise ProtganError(f"--folds {cfg.folds}: need at least 2 folds")
    if cfg.fold is not None and not 0 <= cfg.fold < cfg.folds:
        raise ProtganError(f"--fold {cfg.fold} out of range 0..{cfg.folds - 1}")
    if cfg.epochs < 1:
        raise ProtganError(f"--epochs {cfg.epochs}: must be >= 1")
    if cfg.batch_size < 1:
        raise ProtganError(f"--batch-size {cfg.batch_size}: must be >= 1")
    if not cfg.lr > 0:
        raise ProtganError(f"--lr {cfg.lr}: must be > 0")
    if cfg.batch_schedule not in BATCH_SCHEDULE_CHOICES:
        raise ProtganError(f"--batch-schedule {cfg.batch_schedule!r}: expected {', '.join(BATCH_SCHEDULE_CHOICES)}")
    if cfg.loss not in LOSS_CHOICES:
        raise ProtganError(f"--loss {cfg.loss!r}: expected one of {', '.join(LOSS_CHOICES)}")
    if cfg.augment not in AUGMENT_CHOICES:
        raise ProtganError(f"--augment {cfg.augment!r}: expected one of {', '.join(AUGMENT_CHOICES)}")
    if cfg.select not in SELECT_CHOICES:
        raise ProtganError(f"--select {cfg.select!r}: expected one of {', '.join(SELECT_CHOICES)}")
    uses_gan = "gan" in cfg.augment
    if uses_gan and not cfg.synthetic:
        raise ProtganError(f"--augment {cfg.augment}: needs --synthetic SYN (a folder of synthetic images)")
    if cfg.synthetic and not uses_gan:
        raise ProtganError(f"--synthetic {cfg.synthetic}: only used with --augment gan or classic+gan")
    if cfg.workers is not None and cfg.workers < 0:
        raise ProtganError(f"--workers {cfg.workers}: must be >= 0")
    parse_probabilities(cfg.aug_probs)
    check_recipe_options(cfg, spec.name)
    check_evaluation_options(cfg)
    distributed.lr_factor(cfg.lr_scaling, world=1)  # checks --lr-scaling


def check_recipe_options(cfg: ClassifyConfig, model: str) -> None:
    """The related papers' options: optimizer, lr schedule, balancing, and what their models need."""
    if cfg.optimizer not in OPTIMIZER_CHOICES:
        raise ProtganError(f"--optimizer {cfg.optimizer!r}: expected one of {', '.join(OPTIMIZER_CHOICES)}")
    if cfg.lr_schedule not in LR_SCHEDULE_CHOICES:
        raise ProtganError(f"--lr-schedule {cfg.lr_schedule!r}: expected one of {', '.join(LR_SCHEDULE_CHOICES)}")
    if not 0.0 <= cfg.momentum < 1.0:
        raise ProtganError(f"--momentum {cfg.momentum}: expected a value in [0, 1)")
    if cfg.weight_decay < 0:
        raise ProtganError(f"--weight-decay {cfg.weight_decay}: must be >= 0")
    if not 0.0 < cfg.plateau_factor < 1.0:
        raise ProtganError(f"--plateau-factor {cfg.plateau_factor}: expected a value in (0, 1)")
    if cfg.plateau_patience < 0:
        raise ProtganError(f"--plateau-patience {cfg.plateau_patience}: must be >= 0")
    parse_balance(cfg.balance)
    multiple = SIZE_MULTIPLE.get(model)
    if multiple and cfg.size % multiple:
        raise ProtganError(f"--size {cfg.size}: {model} needs a multiple of {multiple} px (e.g. {cfg.size // multiple * multiple or multiple})")
    if model == "fcn13" and "green" not in parse_channels(cfg.channels):
        raise ProtganError(f"--channels {cfg.channels}: fcn13 learns heat maps made from the green (protein) "
                           f"channel; include green (the paper: rgby)")


def check_evaluation_options(cfg: ClassifyConfig) -> None:
    if not 0.0 <= cfg.threshold_split < 1.0:
        raise ProtganError(f"--threshold-split {cfg.threshold_split}: expected a share in [0, 1) (0.1: 10% held out)")
    if cfg.thresholds not in THRESHOLD_KINDS:
        raise ProtganError(f"--thresholds {cfg.thresholds!r}: expected one of {', '.join(THRESHOLD_KINDS)}")
    if cfg.tta not in TTA_CHOICES:
        raise ProtganError(f"--tta {cfg.tta!r}: expected one of {', '.join(TTA_CHOICES)}")
    avg = parse_average(cfg.average)
    if avg.kind == "last" and avg.k > cfg.epochs:
        raise ProtganError(f"--average {cfg.average}: averages the last {avg.k} epochs but --epochs is {cfg.epochs}")


def prepare(cfg: ClassifyConfig, log: Log = print) -> Prepared:
    """Resolve and check the options, open the data, the folds and the synthetic set."""
    cfg = cfg.resolved()
    validate(cfg)
    make_loss(cfg.loss, cfg.focal_gamma, cfg.focal_alpha)  # option errors before any data is read
    ds = open_dataset(cfg.data)
    classes = resolve_subset(cfg.classes, ds.targets)
    ds.require_classes(classes)
    channels = parse_channels(cfg.channels)
    real = ds.restrict(classes)
    real.require_channels(channels)
    require_readable(real, channels)  # a broken image is found now, not after an epoch
    notes = []
    if real.dropped_unlabelled:
        notes.append(f"{real.dropped_unlabelled} images of {cfg.data} have none of the {len(classes)} classes: not used")
    out = Path(cfg.out)
    # folds come from the full label table, so every class subset and arm (and train-gan --fold) shares them
    # near-duplicate groups are kept in one fold (protgan.data.duplicates)
    folds, folds_path, note = dataset_folds(cfg.data, ds.ids, ds.targets, cfg.folds, out, log=log)
    notes += [note] if note else []
    prep = Prepared(cfg, out, real, {}, classes, channels, folds_path, folds.fold_of, folds.k, notes,
                    group_of=folds.group_of)
    if cfg.synthetic:
        _prepare_synthetic(prep, set(ds.ids))
    return prep


def _prepare_synthetic(prep: Prepared, real_ids: set[str]) -> None:
    """Open each asked fold's synthetic set and refuse one whose generator saw that fold's validation
    images (protgan.data.provenance), before any fold trains."""
    cfg = prep.cfg
    if not Path(cfg.synthetic).exists():
        raise ProtganError(f"--synthetic {cfg.synthetic}: directory does not exist")
    opened: dict[Path, ImageSet] = {}
    for fold in [cfg.fold] if cfg.fold is not None else range(prep.k):
        syn_path = synthetic_for_fold(cfg.synthetic, fold)
        if syn_path not in opened:
            syn_all = open_dataset(syn_path)
            clash = sorted(set(syn_all.ids) & real_ids)
            if clash:
                raise ProtganError(f"--synthetic {syn_path}: Id {clash[0]!r} is also a real image in {cfg.data} "
                                   f"({len(clash)} such Ids); synthetic Ids must be distinct")
            syn = syn_all.restrict(prep.classes)
            if not syn.ids:
                raise ProtganError(f"--synthetic {syn_path}: no image has one of the {len(prep.classes)} classes")
            syn.require_channels(prep.channels)
            require_readable(syn, prep.channels, flag="--synthetic")
            opened[syn_path] = syn
        # a near-copy of a validation image is refused whatever the provenance says
        refuse_synthetic_copies(opened[syn_path], prep.real.select(prep.split(fold)[1]), prep.channels,
                                where=f"--synthetic {syn_path}")
        check = check_fold(cfg.synthetic, prep.classes, prep.split(fold)[1], fold, cfg.allow_leakage)
        if check.leaky:
            prep.notes.append(f"fold {fold}: LEAKAGE ALLOWED (--allow-leakage): synthetic images whose generators "
                              f"saw validation images of this fold ({check.summary()})")
        prep.synthetic_sets[fold], prep.leakage[fold] = opened[syn_path], check


def fold_datasets(prep: Prepared, fold: int) -> dict[str, Dataset]:
    """`train` (augmented, + synthetic), `train_eval` (real training part, no augmentation), `val`, and
    `held` (the held-out part of the training fold, `--threshold-split`; absent at 0)."""
    cfg = prep.cfg
    train_ids, val_ids = prep.split(fold)
    held_ids: list[str] = []
    if cfg.threshold_split > 0:  # deterministic per fold (not per seed): every seed and arm holds out the same
        part = prep.real.select(train_ids)
        train_ids, held_ids = holdout_split(part.ids, part.targets, cfg.threshold_split, seed=fold,
                                            group_of=prep.group_of)
    transform = None
    if "classic" in cfg.augment:
        transform = AugmentTransform(parse_probabilities(cfg.aug_probs), cfg.size)
    real_train = ChannelStackDataset(prep.real, prep.channels, cfg.size, prep.classes, ids=train_ids,
                                     transform=transform)
    balanced = None
    spec = parse_balance(cfg.balance)
    if spec is not None:  # the real training part only; validation and synthetic images are never resampled
        balanced = balance_indices(real_train.labels.numpy(), spec, seed=cfg.seed * 1009 + fold, classes=prep.classes)
        real_train = ResampledDataset(real_train, balanced)
    parts: list[Dataset] = [real_train]
    synthetic = prep.synthetic_for(fold)
    if synthetic is not None:
        parts.append(ChannelStackDataset(synthetic, prep.channels, cfg.size, prep.classes, transform=transform))
    val = ChannelStackDataset(prep.real, prep.channels, cfg.size, prep.classes, ids=val_ids)
    assert not set(val.ids) & (set(synthetic.ids) if synthetic else set())
    return {
        "train": ConcatDataset(parts) if len(parts) > 1 else real_train,
        "train_eval": ChannelStackDataset(prep.real, prep.channels, cfg.size, prep.classes, ids=train_ids),
        "val": val,
        **({"held": ChannelStackDataset(prep.real, prep.channels, cfg.size, prep.classes, ids=held_ids)}
           if held_ids else {}),
        **({"balance": balanced} if balanced is not None else {}),
    }


def dataset_ids(ds: Dataset) -> list[str]:
    if isinstance(ds, ConcatDataset):
        return [i for part in ds.datasets for i in dataset_ids(part)]
    return list(ds.ids)


# ----------------------------------------------------------------------------------------- the loop
@dataclass
class Accel:
    """How the hot loop runs on this device."""

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    @classmethod
    def for_device(cls, device: torch.device, amp: bool | None) -> "Accel":
        use_amp = device.type == "cuda" if amp is None else amp
        dtype = None
        if use_amp:
            if device.type == "cuda":
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dtype = torch.bfloat16  # CPU autocast only does bf16
        return cls(device, dtype, device.type == "cuda")

    def make_scaler(self) -> torch.amp.GradScaler | None:
        # fp16 needs loss scaling; bf16 has fp32's range
        return torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        x = to_unit_range(x.to(self.device, non_blocking=True))
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)


def train_epoch(model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer, loss_fn, accel: Accel,
                scaler: torch.amp.GradScaler | None = None, keep_outputs: bool = True,
                on_batch: Callable[[int], None] | None = None,
                step_fn: Callable | None = None,
                after_step: Callable[[], None] | None = None) -> tuple[float, torch.Tensor | None, torch.Tensor | None]:
    """One pass over `loader`: (mean loss, logits, targets). The loss is summed on the device and read
    once at the end, so the loop never waits on the GPU. `step_fn(model, x, y) -> (logits, loss)`
    replaces `loss_fn(model(x), y)` for models trained on something else than their logits (the FCN)."""
    model.train()
    loss_sum = torch.zeros((), device=accel.device)
    seen = 0
    outs, tgts = [], []
    for x, y in loader:
        x = accel.batch(x)
        y = y.to(accel.device, non_blocking=True)
        with accel.autocast():
            if step_fn is None:
                logits = model(x)
            else:
                logits, loss = step_fn(model, x, y)
        if step_fn is None:
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if after_step is not None:  # e.g. the EMA of the weights (protgan.classify.averaging)
            after_step()
        loss_sum += loss.detach() * len(y)
        seen += len(y)
        if keep_outputs:
            outs.append(logits.detach().float())
            tgts.append(y)
        if on_batch is not None:
            on_batch(len(y))
    mean = loss_sum.item() / max(seen, 1)
    if not keep_outputs or not outs:
        return mean, None, None
    return mean, torch.cat(outs), torch.cat(tgts)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, loader, accel: Accel,
                   on_batch: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, targets) over `loader`, in order, on the CPU as float32."""
    model.eval()
    outs, tgts = [], []
    for x, y in loader:
        with accel.autocast():
            logits = model(accel.batch(x))
        outs.append(logits.float())
        tgts.append(y)
        if on_batch is not None:
            on_batch(len(y))
    return torch.cat(outs).cpu(), torch.cat(tgts).cpu()


# ---------------------------------------------------------------------------------- checkpoints
def checkpoint_payload(model: Classifier, prep: Prepared, epoch: int, metrics: dict,
                       thresholds: Sequence[float] | None = None) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "meta": model.meta(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "classes": list(prep.classes),
        "class_names": [class_name(c) for c in prep.classes],
        "channels": list(prep.channels),
        "size": prep.cfg.size,
        "epoch": epoch,
        "metrics": metrics,
        "thresholds": None if thresholds is None else [float(t) for t in thresholds],
        "config": asdict(prep.cfg),
    }


# payload entries that are plain data (numbers may come as numpy scalars): stored as Python numbers so that
# torch.load(weights_only=True) reads the file
_PLAIN_KEYS = ("metrics", "history", "best", "config", "thresholds", "loader", "rng", "thresholds_by_kind")


def save_checkpoint(path: Path, payload: dict) -> None:
    payload = {k: (plain(v) if k in _PLAIN_KEYS else v) for k, v in payload.items()}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A classifier checkpoint, loaded with weights_only=True (a .pt from anyone never runs code)."""
    path = Path(path)
    ckpt = load_weights(path, "cpu", what="classifier checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ProtganError(f"{path}: not a protgan classifier checkpoint")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> Classifier:
    meta = ckpt["meta"]
    model = create_model(meta["model"], meta["num_classes"], meta["in_chans"], pretrained=False, head=meta["head"])
    model.load_state_dict(ckpt["model"])
    return model


# ------------------------------------------------------------------------------------- one fold
BEST_KEYS = {"loss": ("val_loss", min), "macro_f1": ("val_macro_f1", max), "micro_f1": ("val_micro_f1", max)}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_fold(prep: Prepared, fold: int, log: Log = print, progress: Progress | None = None) -> dict:
    """Train, checkpoint and evaluate one fold into RUN/fold_{fold}; returns its result.json content.

    Ctrl-C / SIGTERM stop at the next batch; last.pt then holds the last finished epoch, and running the
    same command again continues from it to the same result as an uninterrupted run."""
    if not distributed.is_main():  # torchrun: rank 0 logs, shows progress and writes the files
        log, progress = (lambda message: None), None
    result_path = prep.out / f"fold_{fold}" / "result.json"
    if result_path.exists():
        log(f"fold {fold}: already done ({result_path})")
        return json.loads(result_path.read_text())
    # one process per fold folder (folds of one run may train side by side, one per GPU)
    with RunLock(prep.out / f"fold_{fold}", what=f"classify fold {fold}", warn=log):
        stop = StopRequest()
        with stop.installed():
            return _run_fold(prep, fold, log, progress, stop)


@dataclass
class FoldState:
    """What a fold's training carries from epoch to epoch (and what last.pt restores)."""

    model: torch.nn.Module
    ddp_model: torch.nn.Module  # torchrun: DDP (+ sync batch norm) for the training steps; `model` stays unwrapped
    optimizer: torch.optim.Optimizer
    scheduler: EpochSchedule
    scaler: Any
    loss_fn: Callable
    fcn_step: Any  # an FCN trains on its heat maps (Liimatainen et al.); None for the other networks
    accel: Accel
    device: torch.device
    avg: Any  # --average
    ema: Ema | None
    history: list[dict] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    start: int = 0  # the next epoch to train


@dataclass
class FoldLoaders:
    val: Any
    val_part: Any  # torchrun: this rank's contiguous part of the validation set (gather_cat restores it)
    held: Any | None  # the held-out part of the training fold (thresholds, checkpoint choice), if any
    eval_bs: int
    pin: bool

    @property
    def select_on(self) -> str:
        return "held" if self.held is not None else "val"


def _run_fold(prep: Prepared, fold: int, log: Log, progress: Progress | None, stop: "StopRequest") -> dict:
    """One fold: its datasets, the model (new or resumed), the epochs, then the evaluation and its files."""
    fold_dir = prep.out / f"fold_{fold}"
    if distributed.is_main():
        fold_dir.mkdir(parents=True, exist_ok=True)
    data, n_syn = _fold_data(prep, fold, fold_dir, log)
    st = _build_or_resume(prep, fold, fold_dir, log)
    loaders = _fold_loaders(prep, data, st)
    _train_epochs(prep, fold, fold_dir, data, st, loaders, log, progress, stop)
    if not distributed.is_main():  # torchrun: rank 0 evaluates the chosen checkpoint and writes the results
        distributed.barrier()
        return json.loads((fold_dir / "result.json").read_text())
    result = _evaluate_fold(prep, fold, fold_dir, data, st, loaders, n_syn, log)
    distributed.barrier()
    return result


def _fold_data(prep: Prepared, fold: int, fold_dir: Path, log: Log) -> tuple[dict[str, Dataset], int]:
    """(the fold's datasets, its number of synthetic training images); ids.json and balance.json written."""
    data = fold_datasets(prep, fold)
    synthetic = prep.synthetic_for(fold)
    n_syn = len(synthetic.ids) if synthetic is not None else 0
    log(f"fold {fold}: {len(data['train_eval'])} real + {n_syn} synthetic training images, "
        f"{len(data['val'])} validation images")
    if not len(data["val"]) or not len(data["train_eval"]):
        raise ProtganError(f"--folds {prep.k}: fold {fold} leaves an empty training or validation part")
    if "balance" in data:
        bal = data["balance"]
        log(f"fold {fold}: {bal.summary()}")
        log("  class counts (before -> after): " + ", ".join(
            f"{c}:{b}->{a}" for c, b, a in bal.table([str(c) for c in prep.classes])))
        if distributed.is_main():
            write_json(fold_dir / "balance.json", {"target": bal.target, "removed": bal.removed, "added": bal.added,
                                                   "classes": list(prep.classes),
                                                   "counts_before": bal.counts_before.tolist(),
                                                   "counts_after": bal.counts_after.tolist()})
    if distributed.is_main():
        write_json(fold_dir / "ids.json", {"train": dataset_ids(data["train"]), "val": dataset_ids(data["val"]),
                                           "held": dataset_ids(data["held"]) if "held" in data else [],
                                           "synthetic": list(synthetic.ids) if synthetic else []})
    return data, n_syn


def _build_or_resume(prep: Prepared, fold: int, fold_dir: Path, log: Log) -> FoldState:
    """The model, optimiser, schedule and scaler of a fold: new, or restored from fold_K/last.pt."""
    cfg = prep.cfg
    device = distributed.setup(cfg.device)  # resolve_device, or cuda:LOCAL_RANK + process group under torchrun
    accel = Accel.for_device(device, cfg.amp)
    _seed_everything(cfg.seed * 1009 + fold)
    model = create_model(cfg.model, len(prep.classes), len(prep.channels), pretrained=cfg.pretrained,
                         weights=cfg.weights, head=cfg.head)
    model = accel.prepare_model(model)
    optimizer = make_optimizer(model.parameters(), cfg.optimizer, cfg.lr * distributed.lr_factor(cfg.lr_scaling),
                               cfg.momentum, cfg.weight_decay)
    avg = parse_average(cfg.average)
    st = FoldState(
        model=model, ddp_model=distributed.wrap_model(model, device, cfg.sync_bn), optimizer=optimizer,
        scheduler=EpochSchedule(optimizer, cfg.lr_schedule, cfg.plateau_factor, cfg.plateau_patience),
        scaler=accel.make_scaler(), loss_fn=make_loss(cfg.loss, cfg.focal_gamma, cfg.focal_alpha),
        fcn_step=FcnObjective(prep.channels.index("green")) if fcn_network(model) is not None else None,
        accel=accel, device=device, avg=avg, ema=Ema(model, avg.decay) if avg.kind == "ema" else None)
    last_path = fold_dir / "last.pt"
    if last_path.exists():
        state = load_weights(last_path, "cpu", what="classifier checkpoint")
        st.model.load_state_dict(state["model"])
        st.optimizer.load_state_dict(state["optimizer"])
        st.scheduler.load_state_dict(state["scheduler"])
        if st.scaler is not None and state.get("scaler"):
            st.scaler.load_state_dict(state["scaler"])
        st.history, st.best, st.start = state["history"], state["best"], state["next_epoch"]
        if "rng" in state:
            set_rng_state(state["rng"])
        else:  # written before every RNG was kept
            torch.set_rng_state(state["torch_rng"])
        if st.ema is not None and state.get("ema"):
            st.ema.load_state_dict(state["ema"])
        log(f"fold {fold}: resuming at epoch {st.start + 1}/{cfg.epochs}")
    return st


def _fold_loaders(prep: Prepared, data: dict[str, Dataset], st: FoldState) -> FoldLoaders:
    cfg = prep.cfg
    pin, eval_bs = st.device.type == "cuda", 2 * cfg.batch_size
    val = make_loader(data["val"], eval_bs, shuffle=False, workers=cfg.workers, pin_memory=pin)
    val_part = val if not distributed.active() else make_loader(
        distributed.shard_dataset(data["val"]), eval_bs, shuffle=False, workers=cfg.workers, pin_memory=pin)
    held = make_loader(data["held"], eval_bs, shuffle=False, workers=cfg.workers, pin_memory=pin) \
        if "held" in data else None
    return FoldLoaders(val, val_part, held, eval_bs, pin)


def _save_last(prep: Prepared, st: FoldState, path: Path, next_epoch: int) -> None:
    if not distributed.is_main():
        return
    payload = checkpoint_payload(st.model, prep, next_epoch - 1, st.history[-1] if st.history else {})
    payload.update(optimizer=st.optimizer.state_dict(), scheduler=st.scheduler.state_dict(),
                   scaler=st.scaler.state_dict() if st.scaler is not None else None, history=st.history,
                   best=st.best, next_epoch=next_epoch, torch_rng=torch.get_rng_state(), rng=rng_state(),
                   ema=st.ema.state_dict() if st.ema is not None else None)
    save_checkpoint(path, payload)


def _train_epochs(prep: Prepared, fold: int, fold_dir: Path, data: dict[str, Dataset], st: FoldState,
                  loaders: FoldLoaders, log: Log, progress: Progress | None, stop: "StopRequest") -> None:
    """The epochs from st.start on, each kept (best checkpoints, last.pt, history) before the next."""
    cfg = prep.cfg
    last_path = fold_dir / "last.pt"
    tb = open_tensorboard(fold_dir, cfg.tensorboard and distributed.is_main())  # RUN/fold_K/tensorboard
    try:
        for epoch in range(st.start, cfg.epochs):
            rec = _train_epoch(prep, fold, epoch, data, st, loaders, progress, stop)
            st.history.append(rec)
            if tb is not None:
                tb.scalars(f"classify/fold_{fold}", rec, epoch + 1)
            _keep_epoch(prep, fold_dir, st, rec, loaders.select_on)
            log(f"fold {fold} epoch {epoch + 1}/{cfg.epochs}: bs {rec['batch_size']} lr {rec['lr']:.2e} train loss "
                f"{rec['train_loss']:.4f} macro F1 {rec['train_macro_f1']:.3f} | val loss {rec['val_loss']:.4f} "
                f"macro F1 {rec['val_macro_f1']:.3f} micro F1 {rec['val_micro_f1']:.3f}")
    except KeyboardInterrupt:
        # last.pt already holds the last finished epoch: a resume from it equals the uninterrupted run
        # (a mid-epoch save would re-run the epoch from other weights)
        log(f"interrupted: fold {fold} keeps the state after epoch {len(st.history)} in {last_path}; run the same "
            f"command again to resume at epoch {len(st.history) + 1} (the same result as without the interruption)")
        raise
    finally:
        if tb is not None:
            tb.close()


def _train_epoch(prep: Prepared, fold: int, epoch: int, data: dict[str, Dataset], st: FoldState,
                 loaders: FoldLoaders, progress: Progress | None, stop: "StopRequest") -> dict:
    """Train one epoch, then score it on the validation (and held-out) part: the epoch's history record."""
    cfg = prep.cfg
    bs = batch_size_at(epoch, cfg.batch_size, cfg.batch_schedule)
    # a loader per epoch, seeded by the epoch: the same order and augmentations after a resume
    # torchrun: this rank's slice of each global batch of world x bs (the single-process order), and
    # per-rank augmentation/dropout streams (still a function of seed and epoch)
    seed = cfg.seed * 100003 + fold * 1009 + epoch
    drop_last = len(data["train"]) > bs * distributed.world_size()
    sampler = distributed.train_sampler(len(data["train"]), bs, seed, drop_last)
    if sampler is not None:
        torch.manual_seed(distributed.rank_seed(seed))
        seed = distributed.rank_seed(seed, 1)
    stop.check()
    train = data["train"]
    if "classic" in cfg.augment:  # per-sample augmentation seeds: any --workers gives the same batches
        train = SeededSamples(train, cfg.seed * 100003 + fold, epoch)
    loader = make_loader(train, bs, shuffle=True, workers=cfg.workers, pin_memory=loaders.pin,
                         seed=seed, drop_last=drop_last, sampler=sampler)
    total = len(loader) * bs if loader.drop_last else len(data["train"])
    done = [0]

    def tick(n: int, name: str = f"fold {fold} epoch {epoch + 1}/{cfg.epochs}") -> None:
        done[0] += n
        if progress is not None:
            progress(name, done[0], total)
        stop.check()  # Ctrl-C / SIGTERM: stop here, in the main loop (last.pt keeps the previous epoch)

    lr = st.optimizer.param_groups[0]["lr"]
    try:
        train_loss, train_logits, train_y = train_epoch(
            st.ddp_model, loader, st.optimizer, st.loss_fn, st.accel, st.scaler, on_batch=tick, step_fn=st.fcn_step,
            after_step=(lambda: st.ema.update(st.model)) if st.ema else None)
    except (RuntimeError, OSError):
        # loader workers get the terminal's Ctrl-C too and exit; the loader then fails: the interrupt
        if stop.signum is None:
            raise
        raise KeyboardInterrupt from None
    finally:
        del loader
    if distributed.active():  # the epoch over every rank; rank 0's batch-norm statistics on all
        train_loss = distributed.mean_scalar(train_loss)
        train_logits, train_y = distributed.gather_cat(train_logits), distributed.gather_cat(train_y)
        distributed.broadcast_buffers(st.model)
    val_logits, val_y = predict_logits(st.model, loaders.val_part, st.accel)
    val_logits, val_y = distributed.gather_cat(val_logits), distributed.gather_cat(val_y)
    if st.fcn_step is not None:  # the FCN's loss is on its heat maps, for validation too
        val_loss = st.fcn_step.mean_loss(st.model, loaders.val, st.accel.batch, st.accel.autocast)
    else:
        val_loss = float(st.loss_fn(val_logits, val_y))
    st.scheduler.step(val_loss)
    tp = (torch.sigmoid(train_logits) >= 0.5).cpu().numpy()
    ty = train_y.cpu().numpy()
    vp = (torch.sigmoid(val_logits) >= 0.5).numpy()
    vy = val_y.numpy()
    rec = {"epoch": epoch + 1, "lr": lr, "batch_size": bs, "train_loss": train_loss,
           "train_macro_f1": macro_f1(ty, tp), "train_micro_f1": micro_f1(ty, tp),
           "val_loss": val_loss, "val_macro_f1": macro_f1(vy, vp), "val_micro_f1": micro_f1(vy, vp)}
    if loaders.held is not None:
        rec.update(_part_metrics("held", st.model, loaders.held, st.accel, st.loss_fn, st.fcn_step))
    if not all(math.isfinite(rec[k]) for k in ("train_loss", "val_loss")):
        raise ProtganError(f"fold {fold} epoch {epoch + 1}: loss is not finite (lower --lr, or --no-amp)")
    return rec


def _keep_epoch(prep: Prepared, fold_dir: Path, st: FoldState, rec: dict, select_on: str) -> None:
    """The epoch's best_* checkpoints (chosen on `select_on`), --average's epoch weights, last.pt, history."""
    cfg, epoch = prep.cfg, rec["epoch"]
    for name, (key, better) in BEST_KEYS.items():
        key = key.replace("val_", select_on + "_")
        if name not in st.best or better(rec[key], st.best[name]) != st.best[name]:
            st.best[name] = rec[key]
            if distributed.is_main():
                save_checkpoint(fold_dir / f"best_{name}.pt", checkpoint_payload(st.model, prep, epoch, rec))
    if st.avg.kind == "last" and epoch > cfg.epochs - st.avg.k and distributed.is_main():
        save_checkpoint(epoch_weights_path(fold_dir, epoch), {k: v.detach().cpu() for k, v in st.model.state_dict().items()})
    _save_last(prep, st, fold_dir / "last.pt", epoch)
    if distributed.is_main():
        write_json(fold_dir / "history.json", st.history)
    distributed.barrier()  # torchrun: the others wait while rank 0 writes the epoch's checkpoints


def _evaluate_fold(prep: Prepared, fold: int, fold_dir: Path, data: dict[str, Dataset], st: FoldState,
                   loaders: FoldLoaders, n_syn: int, log: Log) -> dict:
    """The selected (or averaged) weights evaluated; thresholds from the held-out part (or, with
    --threshold-split 0, the training part's own predictions); every threshold kind reported and written."""
    cfg, model, accel = prep.cfg, st.model, st.accel
    train_eval_loader = make_loader(data["train_eval"], loaders.eval_bs, shuffle=False, workers=cfg.workers,
                                    pin_memory=loaders.pin)
    chosen_path, chosen = _evaluated_weights(prep, fold_dir, model, st.avg, st.ema, train_eval_loader, accel,
                                             st.history)
    model.load_state_dict(chosen["model"])
    tr_p, tr_y = predict_probs(model, train_eval_loader, accel, cfg.tta)
    va_p, va_y = predict_probs(model, loaders.val, accel, cfg.tta)
    tr_p, tr_y, va_p, va_y = tr_p.numpy(), tr_y.numpy(), va_p.numpy(), va_y.numpy()
    parts = {"train": (tr_y, tr_p), "val": (va_y, va_p)}
    if loaders.held is not None:
        he_p, he_y = predict_probs(model, loaders.held, accel, cfg.tta)
        parts["held"] = (he_y.numpy(), he_p.numpy())
    tune_y, tune_p = parts["held" if loaders.held is not None else "train"]
    by_kind = thresholds_by_kind(tune_y, tune_p, train_prevalence=tr_y.mean(0))
    thresholds = by_kind[cfg.thresholds]
    source = (f"{cfg.thresholds}, from the held-out {cfg.threshold_split:g} of the training part"
              if loaders.held is not None else f"{cfg.thresholds}, from the training part's own predictions")
    result = {
        "fold": fold, "selected": chosen["selected"], "selected_epoch": chosen["epoch"],
        "selected_on": loaders.select_on,
        "tta": cfg.tta, "average": cfg.average, "threshold_kind": cfg.thresholds, "threshold_source": source,
        "n_train_real": len(data["train_eval"]), "n_train_synthetic": n_syn, "n_val": len(data["val"]),
        "n_held": len(data["held"]) if "held" in data else 0,
        "classes": list(prep.classes), "thresholds": thresholds.tolist(), "leakage": leakage_record(prep, fold),
        "thresholds_by_kind": {k: v.tolist() for k, v in by_kind.items()},
        **{split: {k: evaluate(y, p, th) for k, th in by_kind.items()} for split, (y, p) in parts.items()},
    }
    chosen.update(thresholds=thresholds.tolist(), thresholds_by_kind=result["thresholds_by_kind"],
                  threshold_source=source, tta=cfg.tta)
    save_checkpoint(chosen_path, chosen)
    write_json(fold_dir / "thresholds.json", {"selected": chosen["selected"], "classes": list(prep.classes),
                                               "names": [class_name(c) for c in prep.classes],
                                               "kind": cfg.thresholds, "source": source,
                                               "thresholds": thresholds.tolist(),
                                               "by_kind": result["thresholds_by_kind"]})
    _write_val_predictions(fold_dir / "val_predictions.csv", data["val"].ids, va_p, thresholds, prep.classes)
    # MLCM (Heydarian et al.) and accuracy by labels per image, validation at the chosen thresholds
    result["val_labels"] = write_label_reports(fold_dir, va_y, apply_thresholds(va_p, thresholds),
                                               [class_name(c) for c in prep.classes], prefix="val_",
                                               title=f"fold {fold} validation MLCM")
    write_json(fold_dir / "result.json", result)
    if cfg.keep_checkpoints != "all":  # the fold is done: only the evaluated checkpoint is ever read again
        prune_checkpoints(fold_dir, keep=chosen_path.name if cfg.keep_checkpoints == "selected" else None)
    v = result["val"][cfg.thresholds]
    log(f"fold {fold} done: {chosen['selected']} (epoch {chosen['epoch']}) val macro F1 {v['macro_f1']:.3f} "
        f"micro F1 {v['micro_f1']:.3f} at {source} thresholds (tta {cfg.tta})")
    return result


def _part_metrics(name: str, model: torch.nn.Module, loader, accel: Accel, loss_fn, fcn_step) -> dict:
    """{name_loss, name_macro_f1, name_micro_f1} of one evaluation part (threshold 0.5, no TTA)."""
    logits, y = predict_logits(model, loader, accel)
    loss = fcn_step.mean_loss(model, loader, accel.batch, accel.autocast) if fcn_step is not None \
        else float(loss_fn(logits, y))
    pred = (torch.sigmoid(logits) >= 0.5).numpy()
    return {f"{name}_loss": loss, f"{name}_macro_f1": macro_f1(y.numpy(), pred),
            f"{name}_micro_f1": micro_f1(y.numpy(), pred)}


def _evaluated_weights(prep: Prepared, fold_dir: Path, model: torch.nn.Module, avg, ema: Ema | None,
                       bn_loader, accel: Accel, history: list[dict]) -> tuple[Path, dict]:
    """(path, checkpoint) of the weights a fold is evaluated with: `best_{select}.pt`, or with --average
    the averaged weights (batch-norm statistics recomputed on the training part) in `averaged.pt`."""
    cfg = prep.cfg
    if avg.kind == "none":
        path = fold_dir / f"best_{cfg.select}.pt"
        ckpt = load_weights(path, "cpu", what="classifier checkpoint")
        ckpt["selected"] = f"best {cfg.select}"
        return path, ckpt
    if avg.kind == "last":
        epochs = list(range(cfg.epochs - avg.k + 1, cfg.epochs + 1))
        state = average_saved_epochs(epoch_weights_path(fold_dir, e) for e in epochs)
        what = f"mean of epochs {epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else f"epoch {epochs[0]}"
    else:
        state = ema.averaged_state(model)
        what = f"EMA (decay {ema.decay:g}, {ema.steps} steps)"
    model.load_state_dict(state)
    if recompute_bn(model, bn_loader, accel):
        what += ", batch-norm statistics recomputed"
    payload = checkpoint_payload(model, prep, cfg.epochs, history[-1] if history else {})
    payload["selected"] = what
    path = fold_dir / "averaged.pt"
    return path, payload


def prune_checkpoints(fold_dir: Path, keep: str | None) -> list[Path]:
    """Delete a finished fold's checkpoints except `keep` (the evaluated one: best_<select>.pt or
    averaged.pt; None: keep none): the other best_*.pt, --average's epoch_*.pt and last.pt (a done fold
    never resumes). Returns what was deleted."""
    gone = []
    for path in sorted(fold_dir.glob("*.pt")):
        if path.name != keep and (path.name == "last.pt" or path.name.startswith(("best_", "epoch_"))):
            path.unlink()
            gone.append(path)
    return gone


def leakage_record(prep: Prepared, fold: int) -> dict | None:
    """result.json's record of the fold's synthetic images: None without any, else where they came from,
    whether leakage was allowed and, per class, how many of the fold's validation images its generator saw."""
    check = prep.leakage.get(fold)
    if check is None:
        return None
    return {"synthetic": str(check.synthetic), "allowed": prep.cfg.allow_leakage, "leaky": check.leaky,
            "seen": {str(c): n for c, n in check.seen.items()}, "unrecorded": list(check.unrecorded),
            "n_val_seen": check.n_val_seen}


class StopRequest:
    """Ctrl-C / SIGTERM (SLURM's pre-emption signal) during a fold: noted by the handler and acted on at the
    next batch, in the main loop (never inside a loader's or a write's cleanup); a second signal stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handler(self, signum: int, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self):
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: Ctrl-C still arrives as KeyboardInterrupt
                pass
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _write_val_predictions(path: Path, ids: Sequence[str], probs: np.ndarray, thresholds: np.ndarray,
                           classes: Sequence[int]) -> None:
    pred = apply_thresholds(probs, thresholds)
    lines = ["Id,Predicted," + ",".join(f"p{c}" for c in classes)]
    for i, id_ in enumerate(ids):
        labels = " ".join(str(classes[j]) for j in np.flatnonzero(pred[i]))
        lines.append(f"{id_},{labels}," + ",".join(f"{p:.5f}" for p in probs[i]))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------- the driver
def _check_same_run(out: Path, cfg: ClassifyConfig) -> None:
    saved = read_saved_options(out / "config.json")
    if saved is not None:
        check_same_options(out / "config.json", saved, asdict(cfg), may_differ=_PER_INVOCATION,
                           path_keys=("data", "synthetic", "weights"), hint=f"use another --out (or delete {out})")


def run_classify(cfg: ClassifyConfig, log: Log = print, progress: Progress | None = None) -> dict | None:
    """Train the asked folds of RUN; when every fold is done, merge them (report files). Returns the
    merged summary, or None while folds are missing."""

    distributed.setup(cfg.device)  # torchrun: join the process group first
    if not distributed.is_main():  # rank 0 logs and writes
        log, progress = (lambda message: None), None
    # the run-folder contract; no lock on RUN itself (one invocation per --fold may share it), each fold
    # folder is locked while it trains
    claim_run_folder(cfg.out, {"--data": cfg.data, "--synthetic": cfg.synthetic}, writes=RUN_WRITES, what="classify")
    with distributed.main_first():  # rank 0 writes folds.csv and config.json before the others read them
        prep = prepare(cfg, log)
        for note in prep.notes:
            log(note)
        if distributed.is_main():
            prep.out.mkdir(parents=True, exist_ok=True)
            _check_same_run(prep.out, prep.cfg)
            write_json(prep.out / "config.json", asdict(prep.cfg))
    folds = [prep.cfg.fold] if prep.cfg.fold is not None else list(range(prep.k))
    log(f"{prep.cfg.model} ({prep.cfg.head} head, {'pretrained' if prep.cfg.pretrained else 'from scratch'}"
        f"{', weights ' + prep.cfg.weights if prep.cfg.weights else ''}), {len(prep.classes)} classes, "
        f"{','.join(prep.channels)} at {prep.cfg.size} px, folds {folds} of {prep.k} ({prep.folds_path}), "
        f"augment {prep.cfg.augment}")
    for f in folds:
        run_fold(prep, f, log, progress)
    if not distributed.is_main():  # rank 0 writes the report
        return None
    missing = [f for f in range(prep.k) if not (prep.out / f"fold_{f}" / "result.json").exists()]
    if missing:
        log(f"folds {missing} not done yet: run them (--fold K), then `protgan classify --collect {prep.out}`")
        return None
    return collect_run(prep.out)
