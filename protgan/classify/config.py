"""`ClassifyConfig`: every option of `protgan classify`, its default and its help text (torch-free: the
CLI is generated from these fields). None means "from the preset / the model's recipe"."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from protgan.classify.presets import PRESETS, get_preset
from protgan.core.errors import ProtganError
from protgan.core.options import option

SELECT_CHOICES = ("loss", "macro_f1", "micro_f1")
KEEP_CHECKPOINTS_CHOICES = ("selected", "all", "none")
THRESHOLD_KIND_CHOICES = ("tuned", "0.5", "positive-proportion")  # protgan.classify.thresholds.KINDS
TTA_CHOICES = ("none", "flips", "d4")  # protgan.classify.tta
# filled from the preset (or the model's recipe) when not given
RECIPE_FIELDS = ("optimizer", "momentum", "weight_decay", "lr_schedule", "plateau_factor", "plateau_patience",
                 "size", "channels", "augment", "balance", "select")


@dataclass
class ClassifyConfig:
    """Every option of `protgan classify`. None means "from the preset / the model's recipe"."""

    data: str = option(help="Dataset folder in the HPA layout (train.csv + images).")
    out: str = option(help="Run folder: config.json, fold_K/ checkpoints, metrics.csv, summary.md, plots.")
    model: Optional[str] = option(None, "Backbone: vgg16, resnet50, resnet101, densenet121, inception_v3, inception_v4, "
                                        "xception, nasnet_mobile, efficientnet_lite0, resnet18; or a related paper's "
                                        "from-scratch network: gapnet-pl, concat-cnn, cnn13, fcn13 (default: the preset's).")
    preset: str = option("none", "paper28 (InceptionV4, all 28 classes, Adam 5e-4, 35 epochs), paper5 (VGG16, top 5, "
                                 "Adam 1e-4, 50 epochs), gapnet (GapNet-PL, 299 px rgby, SGD 0.1, batch 80, median:500 "
                                 "balancing), aggarwal (concat-cnn, 512 px rgb, Adam 1e-3, batch 32), liimatainen "
                                 "(fcn13, 256 px rgby, Adam 1e-3, batch 64) or none (the model's recipe, top5, fixed "
                                 "batch size).")
    classes: Optional[str] = option(None, "top5, all, topK or a comma list of indices/names (default: top5, or the "
                                          "preset's).")
    channels: Optional[str] = option(None, "green, rgb (the paper's), rgby or a comma list (default: the preset's / "
                                           "model recipe's: rgb; gapnet-pl, cnn13, fcn13: rgby).")
    size: Optional[int] = option(None, "Image side in pixels (default: the preset's / model recipe's: 512; gapnet-pl "
                                       "299, cnn13/fcn13 256).")
    folds: int = option(5, "K of the K-fold cross-validation (DATA/folds.csv is shared by every run).")
    fold: Optional[int] = option(None, "Run only this fold (0-based) into RUN/fold_K; the report is written once all "
                                       "folds are done.", affects_run=False)
    epochs: Optional[int] = option(None, "Epochs (default: 35, or 50 for vgg16 / paper5).")
    batch_size: Optional[int] = option(None, "Batch size (with the paper schedule: the starting size, doubled at "
                                             "epochs 15 and 30). Default 32.")
    batch_schedule: Optional[str] = option(None, "paper (x2 every 15 epochs, up to x4; default with a preset) or fixed "
                                                 "(default without).")
    lr: Optional[float] = option(None, "Initial learning rate, then --lr-schedule (default: the preset's / recipe's: "
                                       "5e-4, vgg16 1e-4, with lr * exp(-0.01 epoch); gapnet-pl 0.1, "
                                       "concat-cnn/cnn13/fcn13 1e-3 with a plateau rule).")
    augment: Optional[str] = option(None, "Default: the preset's / model recipe's (classic; none for gapnet-pl, cnn13, "
                                          "fcn13). none, classic (flips, crop, scale, rotation, shear, sharpening, "
                                          "inversion), gan (add --synthetic images to the training part) or classic+gan.")
    aug_probs: Optional[str] = option(None, "Change classic augmentation probabilities, e.g. 'invert=0,rotation=0.8' "
                                            "(hflip, vflip, crop, scale, rotation, shear, sharpen, invert).")
    synthetic: Optional[str] = option(None, "Folder of synthetic images in the dataset layout (e.g. `protgan synth` "
                                            "output, or per-fold sets SYN/fold_K): joins the training part of every "
                                            "fold, never validation; refused for a fold whose validation images its "
                                            "generators saw (see --allow-leakage).")
    allow_leakage: bool = option(False, "Accept --synthetic images whose generator saw this fold's validation images "
                                        "(or whose training images are not recorded): the paper's likely, optimistic "
                                        "setup; every result is marked with it.")
    pretrained: bool = option(True, "Start from ImageNet weights (timm's hub or cache; efficientnet_lite0: the offline "
                                    "pip package).", cli="--pretrained/--no-pretrained")
    weights: Optional[str] = option(None, "A local state_dict file (a backbone's, or a protgan checkpoint) loaded into "
                                          "the model.")
    loss: Optional[str] = option(None, "focal (the paper's; default), bce, or focal+lovasz (focal + the per-class "
                                       "Lovasz hinge, bestfitting's).")
    focal_alpha: Optional[float] = option(None, "Focal loss alpha in (0, 1): positives weighted alpha, negatives "
                                                "1 - alpha (eq. 3). Default none = the paper's alpha = 1 read as no "
                                                "balancing (see README).")
    focal_gamma: float = option(2.0, "Focal loss gamma (the paper: 2).")
    head: str = option("paper", "paper (the model's recipe head), paper28 (dropout-BN-GAP-128-n), paper5 (GAP-256-n) "
                                "or linear.")
    select: Optional[str] = option(None, "Which per-fold best checkpoint is evaluated and gets the tuned thresholds: "
                                         "loss, macro_f1 or micro_f1 (default macro_f1; cnn13/fcn13: loss, Liimatainen "
                                         "et al.'s criterion).")
    amp: Optional[bool] = option(None, "Mixed precision (bf16, or fp16 + loss scaling); default: on with CUDA.",
                                 cli="--amp/--no-amp", affects_run=False)
    workers: Optional[int] = option(None, "DataLoader worker processes (default: up to 8, one per core).",
                                    affects_run=False)
    seed: int = option(0, "Seed for weights, order and augmentation (folds.csv always uses seed 0).")
    device: str = option("auto", "auto, cpu or cuda[:N].", affects_run=False)
    # the related papers' recipes (protgan.classify.optim, protgan.classify.balance); None = preset's
    optimizer: Optional[str] = option(None, "adam or sgd (default: the preset's / model recipe's).")
    momentum: Optional[float] = option(None, "SGD momentum (default 0.9).")
    weight_decay: Optional[float] = option(None, "Weight decay (default 0; aggarwal preset 1e-8).")
    lr_schedule: Optional[str] = option(None, "exp (lr0 * exp(-0.01 epoch), the paper's), plateau (x --plateau-factor "
                                              "after --plateau-patience epochs without a lower validation loss) or "
                                              "constant.")
    plateau_factor: Optional[float] = option(None, "Learning-rate factor on a plateau (gapnet 0.5, aggarwal 0.1, "
                                                   "liimatainen 1/3).")
    plateau_patience: Optional[int] = option(None, "Epochs without improvement before the plateau cut (gapnet 5, "
                                                   "aggarwal 3, liimatainen 8).")
    balance: Optional[str] = option(None, "Resample the training part of each fold towards N images per class: "
                                          "median:N (oversample classes below N, undersample above; the gapnet "
                                          "preset: median:500), median (N = the median class count) or none "
                                          "(default, except with --preset gapnet). Counts are logged and written to "
                                          "fold_K/balance.json.")
    activation: Optional[str] = option(None, "gapnet-pl only: selu (the original GapNet-PL) or prelu (Al-joudi & Arif "
                                             "2023's variant).")
    sync_bn: bool = option(False, "Under torchrun (DDP): batch-norm statistics over the global batch (all processes) "
                                  "instead of each process's part.", affects_run=False)
    lr_scaling: str = option("none", "Under torchrun: none (the recipe's --lr, the default), linear (x world size) or "
                                     "sqrt (x sqrt(world size)); --batch-size is per process.")
    allow_leakage: bool = option(False, "Let synthetic images whose generator saw this fold's validation images (or "
                                        "whose training images are not recorded) join training: the paper's likely "
                                        "setup, optimistic; every result is marked with it.")
    keep_checkpoints: str = option("selected", "selected: when a fold is finished keep only the checkpoint --select "
                                               "evaluated (what predict and synth's filter use; last.pt stays only "
                                               "while the fold can resume); all: keep best_loss, best_macro_f1, "
                                               "best_micro_f1 and last; none: no checkpoint once the fold's results are written (runs nobody "
                                               "predicts with, e.g. the demo's compare cells).",
                                   choices=KEEP_CHECKPOINTS_CHOICES,
                                   affects_run=False)
    # evaluation the HPA 2018 winners would trust (README: classify, "Thresholds, TTA, averaging")
    threshold_split: float = option(0.1, "Share of each training fold held out (multilabel-stratified, duplicate "
                                         "groups whole) to tune the thresholds and choose the checkpoint, so the "
                                         "validation fold is untouched by any choice; 0: the old way (thresholds "
                                         "tuned on the training predictions, checkpoint chosen on validation).")
    thresholds: str = option("tuned", "Thresholds the checkpoint keeps for `predict` and the headline table: tuned "
                                      "(per-class F1 optimum on the held-out part), 0.5, or positive-proportion "
                                      "(held-out predicted positive rate = training prevalence, pudae). Every kind "
                                      "is reported.", choices=THRESHOLD_KIND_CHOICES)
    tta: str = option("none", "Test-time augmentation in the evaluation: none, flips (4 flips) or d4 (8 dihedral "
                              "transforms); mean of the sigmoids.", choices=TTA_CHOICES)
    average: str = option("none", "Weight averaging: none, last:K (mean of the last K epochs' weights, SWA-style) or "
                                  "ema[:DECAY] (default 0.999); batch-norm statistics recomputed on the training "
                                  "part; the averaged model is evaluated.")
    tensorboard: bool = option(False, "Also write TensorBoard events (losses, F1, learning rate per epoch) to "
                                      "RUN/fold_K/tensorboard (`tensorboard --logdir RUN`; needs the tensorboard "
                                      "extra).", affects_run=False)

    def resolved(self) -> "ClassifyConfig":
        """A copy with every None filled from the preset (or, without one, the model's recipe)."""
        from protgan.classify.losses import check_focal_alpha  # lazy: the registry and losses import torch
        from protgan.classify.models import get_spec  # lazy: imports torch
        from protgan.classify.models.paper_models import FROM_SCRATCH, resolve_activation  # lazy: imports torch

        if self.preset != "none":
            p = get_preset(self.preset)
            model = self.model or p.model
            defaults = dict(classes=p.classes, epochs=p.epochs, batch_size=p.batch_size,
                            batch_schedule=p.batch_schedule, lr=p.lr, loss=p.loss,
                            head=p.head if self.head == "paper" else self.head)
            recipe = p
        else:
            if not self.model:
                raise ProtganError("--model: required unless --preset paper28 or paper5 is given")
            model = self.model
            recipe = PRESETS[get_spec(model).recipe]
            defaults = dict(classes="top5", epochs=recipe.epochs, batch_size=recipe.batch_size,
                            batch_schedule="fixed", lr=recipe.lr, loss=recipe.loss, head=self.head)
        model = resolve_activation(model, self.activation)
        defaults.update({k: getattr(recipe, k) for k in RECIPE_FIELDS})
        out = replace(self, model=get_spec(model).name)
        if get_spec(model).pretrained_source == FROM_SCRATCH:
            out.pretrained = False  # these papers' networks have no pretrained weights
        for k, v in defaults.items():
            if k == "head" or getattr(out, k) is None:
                setattr(out, k, v)
        out.focal_alpha = check_focal_alpha(out.focal_alpha)
        if out.model == "fcn13" and "classic" in out.augment and "invert" not in (out.aug_probs or ""):
            # the FCN's targets are thresholded protein intensities: an inverted image has no targets
            out.aug_probs = ",".join(filter(None, [out.aug_probs, "invert=0"]))
        return out
