"""`TrainGanConfig`: every option of `protgan train-gan`, its default and its help text (torch-free, so
`protgan train-gan --help` and its option errors need no torch; the CLI is generated from these fields).

The paper's recipe (section 3.1.3) is the default. Hyper-parameters the paper leaves open: Adam lr 2e-4
with betas (0.5, 0.999) (Radford et al.'s DCGAN values), SGD lr 0.01 with momentum 0.9 for D, batch 64,
20,000 steps.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

from protgan.core.errors import ProtganError
from protgan.core.options import option
from protgan.data.channels import parse_channels
from protgan.data.classes import class_name, resolve_class
from protgan.data.selection import SELECT_CHOICES

KEEP_CHOICES = ("last", "all")
BALANCE_CHOICES = ("uniform", "real")  # --balance of --conditional (protgan.gan.conditional)
LABEL_CHOICES = ("single", "follow-real")  # synth --labels on a conditional run
PROJECTION_CHOICES = ("pooled", "patch")  # --projection: the projected D's label term (protgan.gan.projected)
ARCHS = ("dcgan", "fastgan", "projected")  # protgan.gan.models (the paper's), .fastgan and .projected
ARCH_TITLES = {"dcgan": "DCGAN", "fastgan": "FastGAN", "projected": "Projected GAN"}  # plot titles
TIME_CLOCKS = ("wall", "cpu")  # --time-clock of --max-minutes
# Per-arch defaults of options whose best value depends on the recipe (None / "auto" in the config).
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {"dcgan": {"lr_d": 0.01, "augment_p": "off"},
                                            "fastgan": {"lr_d": 2e-4, "augment_p": "ada:0.6"},
                                            "projected": {"lr_d": 2e-4, "augment_p": "ada:0.6"}}


def parse_augment_p(spec: str) -> tuple[str, float]:
    """"off" | "fixed:P" | "ada:TARGET" -> (mode, value); one-line error otherwise (see protgan.gan.ada)."""
    text = str(spec).strip().lower()
    if text in ("off", "none", ""):
        return "off", 1.0
    mode, _, value = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if mode not in ("fixed", "ada") or not 0 <= number <= 1 or (mode == "ada" and not 0 < number < 1):
        raise ProtganError(f"--augment-p {spec!r}: expected off, fixed:P (0 <= P <= 1) or ada:TARGET (0 < TARGET < 1), "
                           "e.g. ada:0.6")
    return mode, number


def parse_transition(spec: str) -> tuple[int, int] | None:
    """--cond-transition: "" or "off" -> None (full strength from step 0); "START:END" -> (START, END) steps."""
    text = str(spec or "").strip().lower()
    if text in ("", "off", "none"):
        return None
    start, sep, end = text.partition(":")
    try:
        bounds = (int(start), int(end)) if sep else None
    except ValueError:
        bounds = None
    if bounds is None or not 0 <= bounds[0] <= bounds[1]:
        raise ProtganError(f"--cond-transition {spec!r}: expected START:END steps with 0 <= START <= END "
                           "(e.g. 500:1500), or off")
    return bounds


DEFAULT_FOLDS = 5  # classify's default K: --fold K alone means fold K of the 5-fold split


@dataclass
class TrainGanConfig:
    """Every option of `protgan train-gan`; saved as RUN/config.json and inside each checkpoint."""

    data: str = option(help="Dataset folder in the HPA layout (a packed cache in DATA/cache is used when present).")
    class_index: int = option(help="The class to learn: index 0..27 or name (e.g. 0 or Nucleoplasm). Without it, "
                                   "--classes LIST trains one GAN per class (fan-out).", cli="--class")
    out: str = option(help="Run folder: config.json, checkpoints/, samples/, metrics.csv, losses.png.")
    class_name: str = option("", "Filled in from the class index.", cli=None)
    arch: str = option("dcgan", "Models and recipe: dcgan (the paper's DCGAN, BCE, Adam/SGD), fastgan (Liu et al. "
                                "2021: skip-layer excitation G, self-supervised D, hinge loss, Adam; for a few dozen "
                                "images and small compute) or projected (Sauer et al. 2021: FastGAN's G, D = small "
                                "heads on frozen ImageNet EfficientNet-Lite0 features through fixed random "
                                "projections, hinge loss, Adam; evaluate it with --eval-features ckpt:PATH).",
                       choices=ARCHS)
    size: int = option(512, "Image side: a power of two 32..512 (paper: 512; log2(size/8) up/down layers); fastgan "
                            "and projected 32..1024.")
    channels: list[str] = option(help="green, rgb (the paper's) or rgby, or a comma list of channels.",
                                 factory=lambda: ["red", "green", "blue"])
    select: str = option("only", "only: images whose only label within --classes is the class (synthetic labels "
                                 "stay true); any: every image that has it.", choices=SELECT_CHOICES)
    classes: str = option("all", "Class subset that --select only is judged within: all (default), top5 or a comma "
                                 "list. Without --class: train one GAN per class of it, into OUT/class_N (fan-out: "
                                 "--gpus, --jobs).")
    conditional: bool = option(False, "One conditional GAN for every class of --classes (instead of --class): G "
                                      "takes the multi-hot label set (embedding + conditional batch norm), D is a "
                                      "projection discriminator; trains on every image with a label of the subset, "
                                      "with its real label set (--select does not apply). Refused with --class.")
    balance: str = option("uniform", "--conditional: sampling of training images (and of fake label sets): uniform "
                                     "(each class of the subset about equally often) or real (every image equally "
                                     "often: the real class frequencies).", choices=BALANCE_CHOICES)
    class_loss: float = option(0.0, "--conditional --arch projected: weight of an auxiliary multi-label classification "
                                    "loss (AC-GAN, Odena et al. 2017) beside the projection: D's heads also predict "
                                    "each real image's label set (BCE), and G is trained to make fakes D classifies "
                                    "as their labels, a direct signal for class detail. 0 = off (projection only).")
    projection: str = option("pooled", "--conditional --arch projected: how D's heads take the labels: pooled "
                                       "(Miyato & Koyama: one term per image, the label embedding on the head's "
                                       "map averaged over space) or patch (StyleGAN-XL's: a per-class patch-logit "
                                       "conv, so every patch is judged against the labels: local evidence such "
                                       "as a membrane rim or a dot in a nucleus).", choices=PROJECTION_CHOICES)
    cond_transition: str = option("off", "--conditional: START:END, a transition from an unconditional to a "
                                         "conditional GAN (Shahbazi et al. 2022, against the collapse of "
                                         "conditional GANs on few images): the labels reach G and D scaled by 0 "
                                         "until step START, rising linearly to full strength at step END, so every "
                                         "class first trains the structure they share; off (the default): full "
                                         "strength from the first step.")
    class_subset: list[int] = option(help="Filled in (--conditional): the classes of the label vector, in order.",
                                     cli=None, factory=list)
    steps: int = option(20_000, "Training steps (one D and one G update each).")
    batch_size: int = option(64, "Images per minibatch (real and fake minibatches are separate). A class with fewer "
                                 "images draws its batches with replacement (a warning says so).")
    lr_g: float = option(2e-4, "Adam learning rate of G (betas 0.5, 0.999).")
    betas_g: list[float] = option(help="Adam betas of G (the DCGAN paper's values).", cli=None,
                                  factory=lambda: [0.5, 0.999])
    lr_d: Optional[float] = option(None, "Learning rate of D; default: dcgan 0.01 (SGD, momentum 0.9), fastgan and "
                                         "projected 2e-4 (Adam, G's betas).")
    momentum_d: float = option(0.9, "SGD momentum of D.", cli=None)
    label_flip: float = option(0.05, "Fraction of D's labels flipped (real <-> fake), the paper's 5%.", cli=None)
    real_label: float = option(0.9, "One-sided label smoothing: D's target for real images (fake stays 0).", cli=None)
    z_dim: int = option(100, "Noise dimensions of G.", cli=None)
    g_width: int = option(1024, "G channels at its 8x8 grid, halving per layer (paper: 1024; smaller for quick CPU runs).")
    d_width: int = option(1024, "D channels at its last 8x8 conv, halving towards the input (1024 mirrors G).")
    g_upsample: str = option("transposed", "G's upsampling: transposed (the paper's 3x3 stride-2 transposed convs) or "
                                           "resize (nearest 2x + 3x3 conv: no checkerboard artifacts).")
    intensity_gamma: float = option(1.0, "G and D work on intensity**GAMMA (images in [0, 1]): 1 = linear (the paper); "
                                         "0.5 = square root, which spreads the dark values of dim fluorescence "
                                         "fields (and stabilises photon-count noise). Samples come out linear.")
    dropout: float = option(0.25, "Dropout of D.", cli=None)
    projected_input: int = option(0, "--arch projected: side the images are resized to (bilinear) for D's frozen "
                                     "EfficientNet-Lite0; 0 = auto: the image side, at least 128 (4x4 maps at stride "
                                     "32). A multiple of 32, 64..1024.")
    projected_csm: bool = option(True, "--arch projected: cross-scale mixing of the random feature projections (the "
                                       "paper's CSM): each scale also sees the coarser ones.",
                                 cli="--projected-csm/--no-projected-csm")
    projected_pixel: bool = option(False, "--arch projected: one more D head on the image's pixels (Vision-aided "
                                          "GAN's design), for detail and colour ImageNet features blur; off = the paper.",
                                   cli="--projected-pixel/--no-projected-pixel")
    ema_decay: float = option(0.999, "Decay of the EMA generator used for samples (0: a copy of G).")
    amp: bool = option(True, "Mixed precision on CUDA (bf16, or fp16 with loss scaling); CPU runs fp32.",
                       cli="--amp/--no-amp")
    amp_dtype: str = option("auto", "auto, bf16 or fp16.", cli=None)
    channels_last: bool = option(True, "NHWC tensors on CUDA (faster convs on tensor cores); ignored on CPU.", cli=None)
    compile: bool = option(False, "torch.compile G and D (slow start, faster steps on GPU).")
    sync_bn: bool = option(False, "Under torchrun (DDP): batch-norm statistics over the global batch (all processes), "
                                  "as one process with world x --batch-size would compute them.")
    lr_scaling: str = option("none", "Under torchrun: none (keep --lr-g/--lr-d, the default), linear (x world size) or "
                                     "sqrt (x sqrt(world size)); --batch-size is per process.")
    diffaug: list[str] = option(help="DiffAugment policies for small classes, e.g. color,translation,cutout "
                                     "(default off).", factory=list)
    augment_p: str = option("auto", "Probability of each augmentation op on each image D sees: off (--diffaug as "
                                    "given, always), fixed:P, or ada:TARGET (adaptive, Karras et al. 2020: p follows "
                                    "r_t = E[sign D(real)] towards TARGET). Policy: --diffaug, or "
                                    "color,translation,cutout. auto: off for dcgan (the paper's recipe), ada:0.6 for "
                                    "fastgan and projected.")
    ada_kimg: float = option(10.0, "ADA speed: thousands of images for p to move from 0 to 1 (stylegan2-ada: 500, "
                                   "for runs of millions of images; these runs see 10-1000 thousand).")
    ada_interval: int = option(4, "ADA: steps between p updates.")
    max_minutes: float = option(0.0, "Stop cleanly at a step boundary after this many minutes of training, summed "
                                     "over resumes (checkpoint, samples and metrics written, exit 0); a rerun with a "
                                     "larger value continues. 0: no limit.", affects_run=False)
    time_clock: str = option("wall", "Clock of --max-minutes: wall, or cpu (this process's CPU time, for "
                                     "equal-compute comparisons on a shared machine).", choices=TIME_CLOCKS,
                             affects_run=False)
    resume: str = option("auto", "auto: continue OUT/checkpoints/last.pt when present; never: start over.",
                         choices=("auto", "never"), affects_run=False)
    seed: int = option(0, "Seed of the init, the noise and the data order.")
    device: str = option("auto", "auto, cpu or cuda.", affects_run=False)
    workers: Optional[int] = option(None, "Loader worker processes (default: a background thread for cached data, "
                                          "else one per core).", affects_run=False)
    ckpt_every: int = option(1000, "Steps between checkpoints (also written at the end and on Ctrl-C); 0: only then.")
    sample_every: int = option(500, "Steps between fixed-noise sample grids (samples/step_XXXXXX.png); 0: only at "
                                    "the end.")
    log_every: int = option(50, "Steps between metrics rows (the only host-device sync).")
    eval_every: int = option(0, "Steps between KID/FID of EMA samples vs the class's real images (metrics.csv, "
                                "losses.png); its KID keeps checkpoints/best.pt. 0: off.")
    eval_images: int = option(256, "Generated images per --eval-every evaluation (real: up to 2000 of the class).")
    eval_features: str = option("efficientnet_lite0", "Feature space of --eval-every: efficientnet_lite0 (offline "
                                                      "ImageNet weights), efficientnet_lite1 (the same, held out from "
                                                      "--arch projected's D), inception or ckpt:PATH.")
    keep: str = option("last", "Checkpoints kept in OUT/checkpoints: last (last.pt, and best.pt with --eval-every) or "
                               "all (also every --ckpt-every step_XXXXXX.pt).", choices=KEEP_CHOICES,
                       affects_run=False)
    tensorboard: bool = option(False, "Also write TensorBoard events (losses, D(x), KID, the fixed-noise grid) to "
                                      "OUT/tensorboard (`tensorboard --logdir OUT`; needs the tensorboard extra).",
                               affects_run=False)
    n_samples: int = option(36, "Fixed-noise samples per grid (also the collapse indicator's batch).", cli=None)
    collapse_threshold: float = option(0.25, "Warn when sample spread / real spread falls below this.", cli=None)
    n_images: int = option(0, "Filled in: how many images train this class (= n_train_ids).", cli=None)
    fold: Optional[int] = option(None, "Train on the training part of fold K of DATA/folds.csv only (the split classify "
                                       "and compare use; made if missing): the generator never sees fold K's "
                                       "validation images. Default: every image (leaky under cross-validation).")
    folds: Optional[int] = option(None, f"K of the split --fold picks from (default {DEFAULT_FOLDS}). Without --class "
                                        "(a fan-out): one job per class and fold, into OUT/fold_K/class_C.")
    # filled: the exact images this generator sees (protgan.data.provenance.ids_record); synth copies them
    # into the synthetic set's manifest, classify/compare refuse them for a fold whose validation they include
    train_ids: list[str] = option(help="Filled in: the sorted Ids of the training images.", cli=None, factory=list)
    train_ids_sha256: str = option("", "Filled in: sha256 of the sorted training Ids.", cli=None)
    n_train_ids: int = option(0, "Filled in: how many training Ids.", cli=None)
    folds_file: str = option("", "Filled in: the folds.csv the fold was taken from.", cli=None)

    def validate(self) -> None:
        """Check and normalise the options: the torch-free checks first (the CLI's option errors need no torch)."""
        if self.arch not in ARCHS:
            raise ProtganError(f"--arch {self.arch!r}: expected one of {', '.join(ARCHS)}")
        defaults = ARCH_DEFAULTS[self.arch]
        if self.lr_d is None:
            self.lr_d = defaults["lr_d"]
        if self.augment_p in ("auto", None, ""):
            self.augment_p = defaults["augment_p"]
        parse_augment_p(self.augment_p)
        if self.conditional:
            if self.class_index is not None:
                raise ProtganError(f"--conditional with --class {self.class_index}: a conditional run covers every "
                                   f"class of --classes; drop --class (or --conditional for one class's GAN)")
            self.class_name = "conditional"
        else:
            self.class_index = resolve_class(self.class_index)
            self.class_name = class_name(self.class_index)
        # a list from the CLI's comma list ("rgb" -> ["rgb"]) or a config.json: parsed as the text it was
        text = self.channels if isinstance(self.channels, str) else ",".join(self.channels)
        self.channels = list(parse_channels(text))
        self.betas_g = [float(b) for b in self.betas_g]
        checks = [
            (len(self.betas_g) == 2 and all(0 <= b < 1 for b in self.betas_g), f"betas_g {self.betas_g}: two values in [0, 1)"),
            (self.balance in BALANCE_CHOICES, f"--balance {self.balance!r}: expected one of {', '.join(BALANCE_CHOICES)}"),
            (self.select in SELECT_CHOICES, f"--select {self.select!r}: expected one of {', '.join(SELECT_CHOICES)}"),
            (self.resume in ("auto", "never"), f"--resume {self.resume!r}: expected auto or never"),
            (self.keep in KEEP_CHOICES, f"--keep {self.keep!r}: expected one of {', '.join(KEEP_CHOICES)}"),
            (self.steps >= 1, f"--steps {self.steps}: must be >= 1"),
            (self.batch_size >= 2, f"--batch-size {self.batch_size}: must be >= 2 (batch norm needs a batch)"),
            (self.lr_g > 0, f"--lr-g {self.lr_g}: must be > 0"),
            (self.lr_d > 0, f"--lr-d {self.lr_d}: must be > 0"),
            (0 <= self.momentum_d < 1, f"momentum_d {self.momentum_d}: must be in [0, 1)"),
            (0 <= self.label_flip < 0.5, f"label_flip {self.label_flip}: must be in [0, 0.5)"),
            (0.5 < self.real_label <= 1, f"real_label {self.real_label}: must be in (0.5, 1]"),
            (0 <= self.ema_decay < 1, f"--ema-decay {self.ema_decay}: must be in [0, 1)"),
            (self.amp_dtype in ("auto", "bf16", "fp16"), f"amp_dtype {self.amp_dtype!r}: expected auto, bf16 or fp16"),
            (self.z_dim >= 1 and self.g_width >= 1 and self.d_width >= 1, "z_dim, g_width and d_width must be >= 1"),
            (0 <= self.dropout < 1, f"dropout {self.dropout}: must be in [0, 1)"),
            (0.1 <= self.intensity_gamma <= 10, f"--intensity-gamma {self.intensity_gamma}: must be in [0.1, 10]"),
            (self.n_samples >= 2, f"n_samples {self.n_samples}: must be >= 2"),
            (self.workers is None or self.workers >= 0, f"--workers {self.workers}: must be >= 0"),
            (self.eval_images >= 2, f"--eval-images {self.eval_images}: must be >= 2"),
            (self.ada_kimg > 0, f"--ada-kimg {self.ada_kimg}: must be > 0"),
            (self.ada_interval >= 1, f"--ada-interval {self.ada_interval}: must be >= 1"),
            (self.max_minutes >= 0, f"--max-minutes {self.max_minutes}: must be >= 0 (0: no limit)"),
            (self.time_clock in TIME_CLOCKS, f"--time-clock {self.time_clock!r}: expected one of {', '.join(TIME_CLOCKS)}"),
            (self.folds is None or self.fold is not None,
             f"--folds {self.folds}: needs --fold K (or no --class: a fan-out trains every class on every fold)"),
            (self.class_loss >= 0, f"--class-loss {self.class_loss}: must be >= 0 (0: off)"),
            (not self.class_loss or (self.conditional and self.arch == "projected"),
             f"--class-loss {self.class_loss}: only with --conditional --arch projected"),
            (self.projection in PROJECTION_CHOICES,
             f"--projection {self.projection!r}: expected one of {', '.join(PROJECTION_CHOICES)}"),
            (self.projection == "pooled" or (self.conditional and self.arch == "projected"),
             f"--projection {self.projection}: only with --conditional --arch projected"),
            (self.conditional or str(self.cond_transition).strip().lower() in ("", "off", "none"),
             f"--cond-transition {self.cond_transition}: only with --conditional"),
            (self.arch == "projected" or not (self.projected_pixel or self.projected_input),
             f"--projected-pixel / --projected-input: only with --arch projected (this is --arch {self.arch})"),
        ]
        if self.fold is not None:
            self.folds = self.folds or DEFAULT_FOLDS
            checks += [(self.folds >= 2, f"--folds {self.folds}: need at least 2 folds"),
                       (0 <= self.fold < self.folds, f"--fold {self.fold} out of range 0..{self.folds - 1}")]
        for name in ("ckpt_every", "sample_every", "log_every", "eval_every"):
            value = getattr(self, name)
            checks.append((value >= 0, f"--{name.replace('_', '-')} {value}: must be >= 0"))
        checks.append((self.log_every >= 1, f"--log-every {self.log_every}: must be >= 1"))
        for ok, message in checks:
            if not ok:
                raise ProtganError(message)
        parse_transition(self.cond_transition)
        from protgan.core.distributed import LR_SCALING_CHOICES  # lazy: these modules import torch
        from protgan.gan.diffaug import parse_policy  # lazy: imports torch
        from protgan.gan.fastgan import check_size as check_fastgan_size  # lazy: imports torch
        from protgan.gan.models import check_size, check_upsample  # lazy: imports torch
        from protgan.gan.projected import check_input_side  # lazy: imports torch

        (check_size if self.arch == "dcgan" else check_fastgan_size)(self.size)
        check_input_side(self.projected_input)
        check_upsample(self.g_upsample)
        self.diffaug = list(parse_policy(self.diffaug))
        if self.lr_scaling not in LR_SCALING_CHOICES:
            raise ProtganError(f"--lr-scaling {self.lr_scaling!r}: expected one of {', '.join(LR_SCALING_CHOICES)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainGanConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


SYNTH_CHECKPOINT_CHOICES = ("last", "best")


@dataclass
class SynthConfig:
    """Every option of `protgan synth` (recorded in SYN/manifest.json)."""

    runs: str = option(help="Folder of train-gan runs (one sub-folder per class), or one run.")
    out: str = option(help="New folder for the synthetic dataset (never a real dataset or RUNS).")
    per_class: int = option(1000, "Images written per class (the paper: 1000).")
    classes: Optional[str] = option(None, "Class subset: all, top5, topK or a comma list of indices/names; default: "
                                          "every class with a run.")
    seed: int = option(0, "Noise seed; the same seed writes the same files.")
    batch: int = option(64, "Images per generator batch.")
    truncation: float = option(0.0, "Redraw noise components with |z| above this (truncation trick); 0 = off (the paper).")
    use_ema: bool = option(True, "Sample with the EMA generator weights (default) or the raw G.", cli="--use-ema/--no-ema")
    checkpoint: str = option("last", "last (checkpoints/last.pt) or best (checkpoints/best.pt, kept by train-gan "
                                     "--eval-every).", choices=SYNTH_CHECKPOINT_CHOICES)
    skip_missing: bool = option(False, "Skip classes without a trained generator instead of failing.")
    labels: str = option("single", "Label sets of a conditional run's images (train-gan --conditional): single (the "
                                   "class alone) or follow-real (each image of class C gets the label set of a real "
                                   "training image carrying C, drawn uniformly: the real co-occurrence).",
                         choices=LABEL_CHOICES)
    filter_by: Optional[str] = option(None, "Drop the least realistic samples: disc (the run's discriminator), "
                                            "ckpt:PATH (a protgan classifier's confidence for the class) or copies "
                                            "(the nearest to a training image first: drops near-copies).")
    keep: float = option(0.8, "With --filter-by: fraction of ceil(n/keep) candidates kept (the n best).")
    amp: bool = option(False, "Generate under autocast (bf16, or fp16 on GPUs without bf16).")
    writers: int = option(4, "Threads encoding PNG files.", affects_run=False)
    device: str = option("auto", "auto, cpu or cuda.", affects_run=False)
