"""Training one GAN per class: the config (a dataclass whose fields are the options) and the Trainer.

`arch` picks the models and their recipe: "dcgan" (the paper's, the default, described below),
"fastgan" (Liu et al. 2021, protgan.gan.fastgan: hinge loss, a self-supervised D, Adam for both) or
"projected" (Sauer et al. 2021, protgan.gan.projected: FastGAN's G, D on frozen pretrained features). The
loop is one loop for all: the recipe's losses and optimizers come from a loss object
(protgan.gan.losses), D's inputs go through the augmentation of `--augment-p` (protgan.gan.ada: off,
fixed or adaptive), and `max_minutes` stops a run cleanly at a step boundary after a time budget.

The paper's recipe (section 3.1.3) is the default: images in [-1, 1], tanh output, Adam for G and
SGD for D, 5% of D's labels flipped, one-sided label smoothing (real target 0.9), separate real and
fake minibatches for D (each its own forward pass, so BN never mixes them), the DCGAN N(0, 0.02)
init. Hyper-parameters the paper leaves open (documented in the dataclass): Adam lr 2e-4 with betas
(0.5, 0.999) (Radford et al.'s DCGAN values), SGD lr 0.01 with momentum 0.9 for D, batch 64, the
non-saturating G loss (G's target is 1), 20,000 steps.

Around it, what the GAN toolkits do: an EMA copy of G (used for samples), bf16/fp16 autocast and
channels_last on CUDA, optional torch.compile, metrics accumulated on the device and read only every
`log_every` steps (no host sync in the hot loop), atomic checkpoints of every state (models,
optimizers, AMP scaler, step, RNGs; the data order is a function of (seed, epoch) only) so a resumed
run continues exactly as an uninterrupted one, Ctrl-C/SIGTERM saves and stops at a step boundary,
a NaN/inf loss stops without overwriting the last good checkpoint, and a collapse indicator (spread
of a fixed batch of EMA samples relative to real images).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import shutil
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from protgan.core import distributed
from protgan.core.atomic import atomic_path, write_json, write_text
from protgan.core.tensorboard import open_tensorboard
from protgan.core.runfolder import check_same_options, claim_run_folder, run_independent_fields
from protgan.core.safeload import rng_state, set_rng_state  # plain-data RNG states: weights_only loads them
from protgan.data import (
    ChannelStackDataset, composite_rgb, make_loader, open_dataset, resolve_subset, to_signed_range, to_uint8_images,
    write_png,
)
from protgan.core.errors import ProtganError
from protgan.data.folds import dataset_folds
from protgan.data.provenance import ids_record
from protgan.data.selection import select_class_ids
from protgan.evaluation.features import is_efficientnet_lite0
from protgan.gan import conditional
from protgan.gan.ada import AdaptiveAugment
from protgan.gan.config import ARCH_TITLES, TrainGanConfig, parse_transition
from protgan.gan.checkpoint import (
    ADA_PLOT, CONFIG_FILE, LOSSES_PLOT, METRICS_FILE, SAMPLES_DIR, best_checkpoint, discriminator_from_config,
    generator_from_config, last_checkpoint, load_checkpoint, save_checkpoint,
)
from protgan.gan.losses import make_loss

# A resumed run must agree on every option except these: where it stops (steps), how it runs and logs,
# and what is filled in (core.runfolder.check_same_options)
RESUME_MAY_DIFFER = ("steps", "resume", "device", "workers", "compile", "channels_last", "ckpt_every",
                     "sample_every", "log_every", "eval_every", "class_name", "n_images", "folds_file",
                     "max_minutes", "time_clock")
# what train-gan writes in RUN (an input inside RUN under another name is not overwritten)
RUN_WRITES = (CONFIG_FILE, "checkpoints", SAMPLES_DIR, METRICS_FILE, LOSSES_PLOT, ADA_PLOT)

METRIC_COLUMNS = ("step", "loss_D", "loss_G", "D_x", "D_G_z", "lr_G", "lr_D", "img_per_s", "diversity", "r_t", "aug_p")
# The clocks of --max-minutes (a module attribute so a test can replace them).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}

EvalFn = Callable[["GanTrainer", int], dict[str, float]]


# |loss| above this is divergence (BCE losses of a healthy GAN stay below ~20)
LOSS_BOUND = 1e4


class TrainingDiverged(ProtganError):
    """A loss became NaN or infinite: the run stops, the last good checkpoint is kept."""


@dataclass
class TrainResult:
    status: str  # "done", "interrupted", "already-done" or "time-limit" (--max-minutes reached)
    step: int
    run: Path
    n_images: int
    checkpoint: Path | None
    warnings: list[str] = field(default_factory=list)


class EpochSampler(Sampler[int]):
    """A permutation that depends only on (seed, epoch), started at any position: a resumed run reads
    exactly the batches the uninterrupted one would have read."""

    def __init__(self, n: int, seed: int, batch_size: int = 1, weights: torch.Tensor | None = None) -> None:
        self.n, self.seed = n, seed
        self.weights = weights  # --conditional --balance uniform: each epoch drawn with replacement by these
        # a class smaller than one batch: each "epoch" is one batch drawn with replacement
        self.length = max(n, batch_size)
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def permutation(self, epoch: int) -> list[int]:
        seed = int(np.random.SeedSequence([self.seed, epoch]).generate_state(1)[0])
        if self.weights is not None:
            return conditional.balanced_order(self.n, self.weights, seed, self.length)
        gen = torch.Generator().manual_seed(seed)
        if self.length > self.n:
            return torch.randint(self.n, (self.length,), generator=gen).tolist()
        return torch.randperm(self.n, generator=gen).tolist()

    def __iter__(self):
        return iter(self.permutation(self.epoch)[self.start:])

    def __len__(self) -> int:
        return self.length - self.start


def image_grid(images: np.ndarray, channels: Sequence[str], gap: int = 2, cols: int | None = None) -> np.ndarray:
    """N x C x S x S uint8 -> one RGB grid (composite of the channels), as square as possible (or `cols` wide)."""
    n, _, s, _ = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (s + gap) + gap, cols * (s + gap) + gap, 3), 255, np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        y, x = gap + r * (s + gap), gap + c * (s + gap)
        grid[y:y + s, x:x + s] = composite_rgb(images[k], tuple(channels))
    return grid


def spread(x: torch.Tensor) -> torch.Tensor:
    """Per-pixel standard deviation across the batch, averaged over pixels: ~0 for a collapsed generator
    (the batch as one row of conditional.class_spreads)."""
    return conditional.class_spreads(x, 1)[0]


class GanTrainer:
    """One class's DCGAN: owns the data, models, optimizers, the run folder, save/load and generate.

    eval_fn(trainer, step) -> {name: value} is called every `eval_every` steps; its values go into
    metrics.csv and its "score" (lower is better, e.g. FID) decides checkpoints/best.pt.
    on_log(row) gets each metrics row, on_step(step) each finished step, warn(message) each warning.
    """

    def __init__(self, config: TrainGanConfig, eval_fn: EvalFn | None = None,
                 on_log: Callable[[dict[str, float]], None] | None = None,
                 on_step: Callable[[int], None] | None = None,
                 warn: Callable[[str], None] | None = None) -> None:
        config.validate()
        self.cfg = config
        self.eval_fn = eval_fn
        self.on_log = on_log or (lambda row: None)
        self.tb = None  # --tensorboard: opened by fit() once the run folder is ours
        self.on_step = on_step or (lambda step: None)
        self._warn = warn or (lambda message: None)
        self.warnings: list[str] = []
        self.run = Path(config.out)
        self.device = distributed.setup(config.device)  # resolve_device, or cuda:LOCAL_RANK + process group under torchrun
        # torchrun: every rank draws the global batch's noise and takes its slice (the same numbers as one
        # process with the global batch), and the LRs get --lr-scaling's factor.
        self.world, self.rank = distributed.world_size(), distributed.rank() if distributed.active() else 0
        self.lr_factor = distributed.lr_factor(config.lr_scaling)
        self.is_cuda = self.device.type == "cuda"
        self.step = 0
        self.train_seconds = 0.0  # on the --time-clock, summed over resumes (the --max-minutes budget)
        self.best_score = math.inf
        self.rows: list[dict[str, float]] = []
        self._collapse_armed = False  # set once diversity is clearly healthy; a fall below the threshold warns once
        self._stop_signal: int | None = None
        self._in_update = False
        self._setup_data()
        self._setup_models()
        if config.arch == "projected" and config.eval_every and is_efficientnet_lite0(config.eval_features):
            # its D matches these very features: the KID would flatter it
            self.warn("--arch projected scored in --eval-features efficientnet_lite0, the feature space its D was "
                      "trained on: the KID flatters it (pass --eval-features efficientnet_lite1 or ckpt:PATH)")

    # ----------------------------------------------------------------------------------------- setup
    def _select_ids(self, ds: Any) -> tuple[list[str], list[int]]:
        """(the images of the run, the classes of its label vectors): --class's images by --select, or
        (--conditional) every image with a label of --classes, the others counted in self.n_unlabeled."""
        cfg = self.cfg
        subset = resolve_subset(cfg.classes, ds.targets)
        if cfg.conditional:  # the label vector: the classes of the subset that have an image (`all`: 28 otherwise)
            present = {c for t in ds.targets for c in t}
            cfg.class_subset = [int(c) for c in subset if c in present] or [int(c) for c in subset]
            ids, _, self.n_unlabeled = conditional.subset_label_sets(ds.ids, ds.targets, cfg.class_subset)
            return ids, cfg.class_subset
        if cfg.class_index not in subset:
            raise ProtganError(f"--class {cfg.class_index} ({cfg.class_name}) is not in --classes {cfg.classes} "
                               f"({', '.join(map(str, subset))})")
        return select_class_ids(ds.ids, ds.targets, cfg.class_index, subset, cfg.select), [cfg.class_index]

    def _setup_data(self) -> None:
        cfg = self.cfg
        ds = open_dataset(cfg.data)
        self.n_unlabeled = 0
        ids, label_classes = self._select_ids(ds)
        part = ""
        if cfg.fold is not None:  # the training part of the fold: never its validation images
            folds, folds_path, _ = dataset_folds(cfg.data, ds.ids, ds.targets, cfg.folds, cfg.out)
            ids, _ = folds.split(cfg.fold, ids)
            cfg.folds_file = str(folds_path)
            part = f" in the training part of fold {cfg.fold} of {folds_path}"
        record = ids_record(ids, cfg.fold, cfg.folds)
        cfg.train_ids, cfg.train_ids_sha256, cfg.n_train_ids = (record["train_ids"], record["train_ids_sha256"],
                                                                record["n_train_ids"])
        cfg.n_images = len(ids)
        rule = "with only this label" if cfg.select == "only" else "with this label"
        if not ids and cfg.conditional:
            raise ProtganError(f"{ds.root}: --conditional --classes {cfg.classes}: no image{part} carries a label of "
                               f"{', '.join(map(str, cfg.class_subset))} ({self.n_unlabeled} without one)")
        if not ids:
            raise ProtganError(f"{ds.root}: class {cfg.class_index} ({cfg.class_name}) has no images {rule}{part} "
                               f"(--select {cfg.select}, --classes {cfg.classes})")
        if len(ids) < cfg.batch_size and not distributed.active():
            # the paper's rare classes (Rods & rings: 11 images) are smaller than a batch of 64: each batch
            # is drawn with replacement from the class (images repeat within a batch), said once
            self.warn(f"class {cfg.class_index} ({cfg.class_name}) has {len(ids)} images {rule}{part}, fewer than one "
                      f"batch (--batch-size {cfg.batch_size}): each batch is drawn with replacement")
        self.dataset = ChannelStackDataset(ds, cfg.channels, cfg.size, label_classes, ids=ids, cache="auto")
        weights = None
        if cfg.conditional:  # fake label sets are drawn from the real ones, under --balance's weights
            weights = conditional.balance_weights(self.dataset.labels, cfg.balance)
            self.label_table = self.dataset.labels.to(self.device)
            self.label_weights = weights.float().to(self.device)
        self.sampler = EpochSampler(len(ids), cfg.seed, cfg.batch_size,
                                    weights if cfg.conditional and cfg.balance != "real" else None)
        self.batches_per_epoch = self.sampler.length // cfg.batch_size
        if distributed.active():  # this rank's slice of each global batch (world x --batch-size images)
            global_batch = self.world * cfg.batch_size
            if len(ids) < global_batch:
                raise ProtganError(f"{ds.root}: class {cfg.class_index} ({cfg.class_name}) has {len(ids)} images, fewer "
                                   f"than one global batch ({self.world} processes x --batch-size {cfg.batch_size})")
            self.sampler = distributed.ShardedSampler(len(ids), cfg.batch_size, order=self.sampler.permutation)
            self.batches_per_epoch = len(ids) // global_batch
        self.loader = make_loader(self.dataset, cfg.batch_size, shuffle=False, workers=cfg.workers,
                                  drop_last=True, seed=cfg.seed, sampler=self.sampler)
        # The collapse indicator's reference: the spread of the first n_samples images (a fixed batch).
        n_ref = min(cfg.n_samples, len(ids))
        ref = torch.stack([torch.from_numpy(self.dataset.image(k)) for k in range(n_ref)])
        self.real_spread = float(spread(to_signed_range(ref)))
        self.real_reference = ref

    def _setup_models(self) -> None:
        cfg = self.cfg
        # Models are built from a seed of their own so the init does not depend on what ran before.
        torch.manual_seed(cfg.seed)
        self.G: nn.Module = generator_from_config(asdict(cfg)).to(self.device)
        self.D: nn.Module = discriminator_from_config(asdict(cfg)).to(self.device)
        self.G_ema: nn.Module = copy.deepcopy(self.G).eval().requires_grad_(False)
        # --cond-transition: the labels' strength lambda follows the step (written into G and D before each step)
        self.transition = parse_transition(cfg.cond_transition) if cfg.conditional else None
        self._label_strength: float | None = None
        self.memory_format = torch.channels_last if (cfg.channels_last and self.is_cuda) else torch.contiguous_format
        for m in (self.G, self.D, self.G_ema):
            m.to(memory_format=self.memory_format)
        self.loss = make_loss(cfg.arch, cfg.label_flip, cfg.real_label, cfg.momentum_d, self.world, self.rank,
                              cfg.class_loss)
        self.opt_G, self.opt_D = self.loss.optimizers(self.G, self.D, cfg.lr_g * self.lr_factor,
                                                      cfg.lr_d * self.lr_factor, cfg.betas_g)
        self.augment = AdaptiveAugment(cfg.augment_p, cfg.diffaug, cfg.batch_size * self.world, cfg.ada_kimg,
                                       cfg.ada_interval, self.device)
        self.amp_dtype = self._pick_amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.G_fwd: nn.Module = torch.compile(self.G) if cfg.compile else self.G
        self.D_fwd: nn.Module = torch.compile(self.D) if cfg.compile else self.D
        # torchrun: G and D each in DDP (self.G / self.D stay unwrapped for checkpoints and the EMA);
        # D's DDP steps aside while D is frozen for G's update.
        self.G_fwd = distributed.wrap_model(self.G_fwd, self.device, cfg.sync_bn)
        self.D_fwd = distributed.wrap_model(self.D_fwd, self.device, cfg.sync_bn)
        if self.is_cuda:
            torch.backends.cudnn.benchmark = True
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, 1]).generate_state(1)[0]))
        self.fixed_z = torch.randn(cfg.n_samples, cfg.z_dim, generator=gen).to(self.device)
        self.fixed_y, self.grid_cols = None, None  # None: the square grid of an unconditional run
        if cfg.conditional:  # the grid: one row per class (its label alone), the same noise in every row
            k = len(cfg.class_subset)
            self.grid_cols = conditional.grid_columns(cfg.n_samples, k)
            self.fixed_z = self.fixed_z[:self.grid_cols].repeat(k, 1)
            self.fixed_y = conditional.one_hot_rows(k, self.grid_cols).to(self.device)
            # the collapse indicator per class: one class can collapse while the others train
            self.real_class_spreads = conditional.real_class_spreads(self.dataset, k, self.grid_cols, self.real_spread)
        # loss_D, loss_G, D(x), D(G(z)), r_t and the loss's extras, summed since the last log
        self._sums = torch.zeros(5 + len(self.loss.extra_names), device=self.device)
        self._first_bad = torch.full((), -1, dtype=torch.int64, device=self.device)
        self._count = 0

    def _pick_amp_dtype(self) -> torch.dtype | None:
        if not (self.cfg.amp and self.is_cuda):
            return None
        if self.cfg.amp_dtype == "fp16" or (self.cfg.amp_dtype == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    # ------------------------------------------------------------------------------------ state I/O
    def state_dict(self) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(), "scaler": self.scaler.state_dict(),
            "step": self.step, "rng": rng_state(), "config": asdict(self.cfg), "best_score": self.best_score,
            "collapse_armed": self._collapse_armed, "augment": self.augment.state_dict(),
            "train_seconds": self.train_seconds,
            # the metrics interval in progress: an interrupted run resumes it, so its rows equal an uninterrupted run's
            "log_sums": self._sums.detach().cpu(), "log_count": self._count,
            "world_size": self.world,  # torchrun: --batch-size is per process; a resume compares global batches
        }

    def check_finite(self) -> None:
        """Every parameter and buffer of G, D and G_ema finite, else TrainingDiverged (nothing is saved)."""
        for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            for key, t in [*module.named_parameters(), *module.named_buffers()]:
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    kept = last_checkpoint(self.run)
                    where = f"last good checkpoint {kept} kept" if kept.exists() else "no checkpoint was written"
                    raise TrainingDiverged(
                        f"step {self.step}: {name}.{key} holds NaN/inf: training stopped, {where} "
                        f"(try a lower --lr-d/--lr-g, or --no-amp)")

    def save(self, path: Path | None = None) -> Path:
        path = path or last_checkpoint(self.run)
        self.check_finite()  # a diverged state never replaces the last good checkpoint
        if distributed.is_main():  # torchrun: rank 0 writes (unwrapped state dicts: any world size resumes)
            save_checkpoint(path, self.state_dict())
        return path

    def load(self, path: Path) -> None:
        state = load_checkpoint(path, map_location=self.device)
        # a resume must be the same run: every training option equal (--steps and run-independent ones aside)
        may_differ = set(RESUME_MAY_DIFFER) | run_independent_fields(type(self.cfg))
        # torchrun: the global batch (processes x --batch-size) must agree, e.g. 2 x 4 resumed as 1 x 8
        saved, new = dict(state["config"]), asdict(self.cfg)
        saved["batch_size"] = int(saved["batch_size"]) * int(state.get("world_size", 1))
        new["batch_size"] = self.cfg.batch_size * self.world
        check_same_options(path, saved, new, may_differ, path_keys=("data",))
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        # torchrun with another world size: --lr-scaling's factor is this invocation's
        for group in self.opt_G.param_groups:
            group["lr"] = self.cfg.lr_g * self.lr_factor
        for group in self.opt_D.param_groups:
            group["lr"] = self.cfg.lr_d * self.lr_factor
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.best_score = float(state.get("best_score", math.inf))
        self._collapse_armed = bool(state.get("collapse_armed", False))
        if state.get("augment"):
            self.augment.load_state_dict(state["augment"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        if state.get("log_sums") is not None:
            self._sums = state["log_sums"].to(self.device)
            self._count = int(state.get("log_count", 0))
        set_rng_state(state["rng"])

    # ------------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def generate(self, n: int | None = None, z: torch.Tensor | None = None, use_ema: bool = True,
                 y: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] (n x C x S x S) from `z` or fresh noise, by the EMA generator by default;
        a conditional run's with the label vectors y (default: the fixed grid's when z is the fixed noise)."""
        g = self.G_ema if use_ema else self.G
        if z is None:
            z = torch.randn(n or self.cfg.n_samples, self.cfg.z_dim, device=self.device)
        if y is None and self.cfg.conditional:
            if z is not self.fixed_z:
                raise ValueError("a conditional generator needs labels y")
            y = self.fixed_y
        was_training = g.training
        g.eval()
        with self._autocast():
            out = (g(z.to(self.device)) if y is None else g(z.to(self.device), y.to(self.device))).float()
        g.train(was_training)
        return out

    def write_samples(self, step: int) -> Path:
        path = self.run / SAMPLES_DIR / f"step_{step:06d}.png"
        if distributed.is_main():
            grid = image_grid(to_uint8_images(self.generate(z=self.fixed_z)).cpu().numpy(), self.cfg.channels,
                              cols=self.grid_cols)
            write_png(path, grid)
            if self.tb is not None and step != getattr(self, "_tb_image_step", None):  # the end re-writes the last
                self.tb.image("samples (fixed noise, EMA G)", grid, step)
                self._tb_image_step = step
        return path

    # ---------------------------------------------------------------------------------- the hot loop
    def train_step(self, real_u8: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """One D update (real and fake minibatches in separate passes) then one G update; no host sync.
        The arch's loss object computes both losses; every image D sees goes through self.augment.
        A conditional run: D sees the real images' labels, G and D the fake label sets of `_fake_labels`."""
        cfg = self.cfg
        real = to_signed_range(real_u8.to(self.device, non_blocking=True)).contiguous(memory_format=self.memory_format)
        b = real.shape[0]
        z = torch.randn(b * self.world, cfg.z_dim, device=self.device)[self.rank * b:(self.rank + 1) * b]
        y_real = y_fake = None
        g_in: tuple[torch.Tensor, ...] = (z,)
        if cfg.conditional:
            if self.transition is not None:
                self._follow_transition()
            y_real = labels.to(self.device, non_blocking=True)
            y_fake = self._fake_labels(b)
            g_in = (z, y_fake)

        self.D.requires_grad_(True)
        with self._autocast():
            fake = self.G_fwd(*g_in)
            d_out = self.loss.d_loss(self.D_fwd, real, fake.detach(), self.augment, y_real, y_fake)
        loss_d = d_out.loss
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_D)

        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        with self._autocast():
            loss_g = self.loss.g_loss(self.D_fwd, fake, self.augment, y_fake)
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_G)
        self.scaler.update()
        self._update_ema()

        with torch.no_grad():
            losses = torch.stack([loss_d.float(), loss_g.float()])
            rt = self.augment.observe(d_out.logit_real)
            self._sums += torch.cat([losses, torch.sigmoid(d_out.logit_real.float()).mean()[None],
                                     torch.sigmoid(d_out.logit_fake.float()).mean()[None], rt[None],
                                     d_out.extras.float()])
            # a NaN/inf loss, or one beyond any sane value (D's BN statistics overflow soon after), is divergence
            bad = ~(torch.isfinite(losses) & (losses.abs() < LOSS_BOUND)).all() & (self._first_bad < 0)
            self._first_bad = torch.where(bad, self.step + 1, self._first_bad)
        self._count += 1
        self.augment.update(self.step + 1)

    def _follow_transition(self) -> None:
        """Set lambda of --cond-transition for the coming step in G and D (G_ema copies G's buffers)."""
        value = conditional.label_strength_at(self.step, self.transition)
        if value != self._label_strength:  # a fill_ only when it changes; a python float: no host sync
            conditional.set_label_strength((self.G, self.D), value)
            self._label_strength = value

    def _fake_labels(self, b: int) -> torch.Tensor:
        """b label sets of training images drawn by --balance's weights (torchrun: this rank's slice of the
        global draw, as for the noise); on the device, no host sync."""
        idx = torch.multinomial(self.label_weights, b * self.world, replacement=True)[self.rank * b:(self.rank + 1) * b]
        return self.label_table[idx]

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))  # ramp-up: early EMA follows G
        ema_p, p = list(self.G_ema.parameters()), list(self.G.parameters())
        torch._foreach_lerp_(ema_p, p, 1.0 - decay)
        for eb, b in zip(self.G_ema.buffers(), self.G.buffers()):
            eb.copy_(b)

    # ---------------------------------------------------------------------------------- bookkeeping
    def _read_metrics(self, seconds: float) -> dict[str, float]:
        """The one host sync per log interval: averages since the last log; raises on NaN/inf."""
        if distributed.active():  # the means over ranks (equal batches); a NaN on any rank stops all
            self._sums = distributed.all_reduce_mean(self._sums)
            self._first_bad = distributed.all_reduce_max(self._first_bad)
        first_bad = int(self._first_bad)
        if first_bad >= 0:
            kept = last_checkpoint(self.run)
            where = f"last good checkpoint {kept} kept" if kept.exists() else "no checkpoint was written"
            raise TrainingDiverged(
                f"loss became NaN/inf at step {first_bad} (or |loss| > {LOSS_BOUND:g}): training stopped, {where} "
                f"(try a lower --lr-d/--lr-g, or --no-amp)")
        sums = (self._sums / max(self._count, 1)).tolist()
        n_img = self._count * self.cfg.batch_size * self.world
        row = {
            "step": self.step, "loss_D": sums[0], "loss_G": sums[1], "D_x": sums[2], "D_G_z": sums[3],
            "lr_G": self.opt_G.param_groups[0]["lr"], "lr_D": self.opt_D.param_groups[0]["lr"],
            "img_per_s": n_img / seconds if seconds > 0 else float("nan"),
            "diversity": self.diversity(), "r_t": sums[4], "aug_p": float(self.augment.p),
        }
        row.update(zip(self.loss.extra_names, sums[5:]))
        if self.transition is not None:
            row["label_strength"] = conditional.label_strength_at(self.step, self.transition)
        self._sums.zero_()
        self._count = 0
        return row

    def diversity(self) -> float:
        """Spread of the fixed batch of EMA samples over the spread of a fixed real batch (~1 healthy, ~0 collapsed);
        a conditional run: the lowest over classes of that ratio per class (its grid row, its real images)."""
        samples = self.generate(z=self.fixed_z)
        which = ""
        if self.cfg.conditional:  # the lowest class's ratio (its grid row against its real images)
            rows = conditional.class_spreads(samples, len(self.cfg.class_subset)).cpu()
            ratios = rows / self.real_class_spreads.clamp(min=1e-8)
            low = int(ratios.argmin())
            ratio, which = float(ratios[low]), f" (class {self.cfg.class_subset[low]})"
        else:
            ratio = float(spread(samples)) / max(self.real_spread, 1e-8)
        threshold = self.cfg.collapse_threshold
        # Hysteresis: a fresh G starts near 0 (no warning then); the warning is armed once the spread has
        # been clearly healthy (1.5x the threshold) and fires once per fall, not on every log near the line.
        if ratio >= 1.5 * threshold:
            self._collapse_armed = True
        elif ratio < threshold and self._collapse_armed:
            self._collapse_armed = False
            self.warn(f"step {self.step}: sample diversity{which} fell to {ratio:.2f} of the real images' "
                      f"(< {threshold}): possible mode collapse, look at {self.run / SAMPLES_DIR}")
        return ratio

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self._warn(message)

    def _write_metrics(self) -> None:
        if not distributed.is_main():
            return
        cols = list(METRIC_COLUMNS) + sorted({k for r in self.rows for k in r} - set(METRIC_COLUMNS))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in r.items()})
        write_text(self.run / METRICS_FILE, buf.getvalue())

    def _load_metrics(self) -> None:
        path = self.run / METRICS_FILE
        if not path.exists():
            return
        with path.open() as f:
            rows = list(csv.DictReader(f))
        # Rows newer than the checkpoint are from steps that will be replayed.
        self.rows = [{k: (int(v) if k == "step" else float(v)) for k, v in r.items() if v not in ("", None)}
                     for r in rows if r.get("step") and int(r["step"]) <= self.step]

    @property
    def title(self) -> str:
        """What the run learns, for the plots: a class, or a conditional run's classes."""
        if self.cfg.conditional:
            return f"conditional, classes {','.join(map(str, self.cfg.class_subset))}"
        return f"class {self.cfg.class_index} ({self.cfg.class_name})"

    def plot_losses(self) -> Path | None:
        if not self.rows or not distributed.is_main():
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in self.rows]
        evals = [r for r in self.rows if "score" in r]  # rows of an eval_fn (train-gan --eval-every)
        # precision / recall / near-copies of TrainingEval (0..1): a fifth panel when the columns exist
        shares = [k for k in ("precision", "recall", "near_copies") if any(k in r for r in evals)]
        panels = 3 + bool(evals) + bool(shares)
        fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
        for key in ("loss_D", "loss_G"):
            axes[0].plot(steps, [r.get(key, float("nan")) for r in self.rows], label=key)
        axes[0].set_title("losses")
        for key, label in (("D_x", "D(x)"), ("D_G_z", "D(G(z))")):
            axes[1].plot(steps, [r.get(key, float("nan")) for r in self.rows], label=label)
        axes[1].set_ylim(0, 1)
        axes[1].set_title("discriminator outputs")
        axes[2].plot(steps, [r.get("diversity", float("nan")) for r in self.rows], label="diversity")
        axes[2].axhline(self.cfg.collapse_threshold, color="red", ls="--", lw=1, label="collapse warning")
        axes[2].set_title("sample spread / real spread")
        if evals:
            eval_steps = [r["step"] for r in evals]
            axes[3].plot(eval_steps, [r["score"] for r in evals], "o-", label="score (KID)" if "kid" in evals[0] else "score")
            axes[3].set_title("eval vs real images (lower is better)")
            if "fid" in evals[0]:
                twin = axes[3].twinx()
                twin.plot(eval_steps, [r.get("fid", float("nan")) for r in evals], "s--", color="tab:orange", label="FID")
                twin.set_ylabel("FID")
                twin.legend(loc="upper center")
        if shares:
            for key, style in zip(shares, ("o-", "s-", "^--")):
                axes[4].plot([r["step"] for r in evals if key in r], [r[key] for r in evals if key in r], style,
                             label=key.replace("_", "-"))
            axes[4].set_ylim(-0.02, 1.02)
            axes[4].set_title("precision / recall / near-copy share")
        for ax in axes:
            ax.set_xlabel("step")
            ax.legend()
            ax.grid(alpha=0.3)
        fig.suptitle(f"{ARCH_TITLES[self.cfg.arch]} {self.title}, {self.cfg.size} px")
        return _save_figure(fig, self.run / LOSSES_PLOT)

    def plot_augment(self) -> Path | None:
        """RUN/ada.png: the augmentation probability p and r_t = E[sign(D(real))] by step (with --augment-p)."""
        if not self.rows or not distributed.is_main() or self.augment.mode == "off":
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = [r["step"] for r in self.rows]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(steps, [r.get("aug_p", float("nan")) for r in self.rows], label="augmentation p")
        ax.plot(steps, [r.get("r_t", float("nan")) for r in self.rows], label="r_t = E[sign D(real)]", alpha=0.8)
        if self.augment.target is not None:
            ax.axhline(self.augment.target, color="red", ls="--", lw=1, label=f"target {self.augment.target:g}")
        ax.set_xlabel("step")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"{self.cfg.arch} {self.title}: --augment-p {self.cfg.augment_p}, "
                     f"{self.cfg.n_images} images", fontsize=9)
        return _save_figure(fig, self.run / ADA_PLOT)

    # ----------------------------------------------------------------------------------------- fit
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self._stop_signal = signum

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: KeyboardInterrupt is still caught below
                pass
        return previous

    def prepare_run(self) -> None:
        """Create RUN/, resume from its last checkpoint (--resume auto) and write config.json."""
        cfg = self.cfg
        last = last_checkpoint(self.run)
        if cfg.resume == "auto" and last.exists():
            self.load(last)
            self._load_metrics()
        if not distributed.is_main():  # torchrun: rank 0 writes the run folder
            return
        self.run.mkdir(parents=True, exist_ok=True)
        write_json(self.run / CONFIG_FILE, asdict(cfg))
        if self.step == 0:
            real = (conditional.class_rows(self.dataset, len(cfg.class_subset), self.grid_cols) if cfg.conditional
                    else self.real_reference.numpy())
            write_png(self.run / SAMPLES_DIR / "real.png",
                      image_grid(real, cfg.channels, cols=self.grid_cols))

    def fit(self) -> TrainResult:
        """Claim RUN (not inside --data, writable, locked against a second run), then train or resume."""
        lock = claim_run_folder(self.run, {"--data": self.cfg.data}, writes=RUN_WRITES, what="train-gan",
                                warn=self.warn)
        with lock:
            return self._fit()

    def _fit(self) -> TrainResult:
        cfg = self.cfg
        self.prepare_run()
        if self.step >= cfg.steps:
            return TrainResult("already-done", self.step, self.run, cfg.n_images, last_checkpoint(self.run))
        budget = cfg.max_minutes * 60.0
        if budget and self.train_seconds >= budget:
            return TrainResult("time-limit", self.step, self.run, cfg.n_images, last_checkpoint(self.run))
        self.tb = open_tensorboard(self.run, cfg.tensorboard and distributed.is_main())
        if self.tb is not None:
            user_on_log, tb = self.on_log, self.tb
            self.on_log = lambda row: (tb.scalars("train-gan", row, int(row["step"])), user_on_log(row))
        previous = self._install_signal_handlers()
        status = "done"
        self.G.train()
        self.D.train()
        self._log_t0, self._side_seconds = time.perf_counter(), 0.0
        clock = CLOCKS[cfg.time_clock]
        clock_start, seconds_before = clock(), self.train_seconds
        time_up = False
        try:
            while self.step < cfg.steps and self._stop_signal is None and not time_up:
                epoch, batch = divmod(self.step, self.batches_per_epoch)
                self.sampler.set_position(epoch, batch * cfg.batch_size)
                for real_u8, labels in self.loader:
                    self._in_update = True
                    self.train_step(real_u8, labels)
                    self.step += 1
                    self._in_update = False
                    self.on_step(self.step)
                    self._after_step()
                    self.train_seconds = seconds_before + clock() - clock_start
                    time_up = bool(budget) and self.train_seconds >= budget
                    if self.step >= cfg.steps or self._stop_signal is not None or time_up:
                        break
        except KeyboardInterrupt:
            if self._in_update:  # the step was half-applied: keep the previous checkpoint
                raise
            self._stop_signal = signal.SIGINT
        except (RuntimeError, OSError):
            # Loader workers also receive Ctrl-C and exit; the loader then fails. That is the interrupt.
            if self._stop_signal is None or self._in_update:
                raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._stop_signal is not None:
            status = "interrupted"
        elif time_up and self.step < cfg.steps:
            status = "time-limit"
        # The end (or --max-minutes): a final log row, samples, checkpoint, plot. An interrupt instead keeps
        # the interval's sums in the checkpoint, so the resumed run writes the same rows as an uninterrupted one.
        if self._count and status in ("done", "time-limit"):
            self._log_row()
        elif int(self._first_bad) >= 0:
            self._read_metrics(0.0)  # raises TrainingDiverged: a NaN since the last log is never saved
        self.write_samples(self.step)
        path = self.save()
        distributed.barrier()  # torchrun: no rank leaves before the checkpoint is written
        self.plot_losses()
        self.plot_augment()
        if self.tb is not None:
            self.tb.close()
        return TrainResult(status, self.step, self.run, cfg.n_images, path, list(self.warnings))

    def _after_step(self) -> None:
        """Logging, eval, samples and checkpoints due after this step (their time is kept out of img/s)."""
        cfg, s = self.cfg, self.step
        if distributed.active() and distributed.any_rank(self._stop_signal is not None):
            self._stop_signal = self._stop_signal or signal.SIGTERM  # a signal seen by one rank stops all here
        eval_due = bool(cfg.eval_every and self.eval_fn and s % cfg.eval_every == 0)
        ckpt_due = bool(cfg.ckpt_every and s % cfg.ckpt_every == 0)
        sample_due = bool(cfg.sample_every and s % cfg.sample_every == 0)
        # A checkpoint or an eval needs the NaN check first, which is the log's one host sync.
        log_due = s % cfg.log_every == 0 or eval_due or ckpt_due
        if not (log_due or sample_due):
            return
        if log_due:
            row = self._log_row(write=not eval_due, notify=not eval_due)
        side_start = time.perf_counter()
        if eval_due and distributed.is_main():  # torchrun: rank 0 evaluates; the others go on
            assert self.eval_fn is not None
            rng = rng_state()  # an eval may draw random numbers; the training streams must not see it
            results = {k: float(v) for k, v in self.eval_fn(self, s).items()}
            set_rng_state(rng)
            row.update(results)
            self._write_metrics()
            score = results.get("score")
            if score is not None and math.isfinite(score) and score < self.best_score:
                self.best_score = score
                self.save(best_checkpoint(self.run))
        if eval_due:
            self.on_log(row)  # with the evaluation's figures (KID, FID) when this rank ran it
        if sample_due:
            self.write_samples(s)
        if ckpt_due:
            path = self.save()
            if cfg.keep == "all" and distributed.is_main():  # --keep all: a copy per --ckpt-every step
                shutil.copyfile(path, path.with_name(f"step_{s:06d}.pt"))
            distributed.barrier()
        self._side_seconds += time.perf_counter() - side_start

    def _log_row(self, write: bool = True, notify: bool = True) -> dict[str, float]:
        now = time.perf_counter()
        row = self._read_metrics(now - self._log_t0 - self._side_seconds)
        self._side_seconds = 0.0
        self.rows.append(row)
        if write:
            self._write_metrics()
        if notify:
            self.on_log(row)
        self._log_t0 = time.perf_counter()  # the diversity check and the CSV write are not training time
        return row


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def train_gan(config: TrainGanConfig, eval_fn: EvalFn | None = None, **callbacks: Any) -> TrainResult:
    """Train (or resume) one class's GAN (config.arch) into config.out; see GanTrainer."""
    return GanTrainer(config, eval_fn=eval_fn, **callbacks).fit()


def _save_figure(fig: Any, path: Path) -> Path:
    """Lay out, write atomically (temp file, then rename) and close a matplotlib figure."""
    import matplotlib.pyplot as plt  # lazy: matplotlib only when a plot is written

    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
