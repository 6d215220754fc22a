"""`CompareConfig`, `DemoConfig` and `EvaluateConfig`: every option of `protgan compare`, `protgan demo`
and `protgan evaluate`, with defaults and help texts (torch-free: the CLI is generated from these fields)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from protgan.classify.config import KEEP_CHECKPOINTS_CHOICES
from protgan.core.errors import ProtganError
from protgan.core.jobs import cpu_jobs
from protgan.core.options import option
from protgan.data.selection import SELECT_CHOICES
from protgan.gan.config import LABEL_CHOICES

ARMS = ("classic", "gan")
ALL_ARMS = ("none", "classic", "gan", "classic+gan")
THRESHOLD_CHOICES = ("tuned", "0.5", "positive-proportion")  # the kinds classify reports
DEMO_PLANS = ("default", "quick", "tiny")
DEMO_GAN_MODES = ("per-class", "conditional")  # protgan demo --gan: one generator per class, or one for all
ALL_METRICS = "fid,kid,pr,copies,cas"


@dataclass
class CompareConfig:
    """Every option of `protgan compare` (saved as DIR/config.json)."""

    data: str = option(help="Dataset folder in the HPA layout (the real images; folds.csv is shared).")
    out: str = option(help="Comparison folder: cells/MODEL/ARM/seed_S/ runs, comparison.md/.csv/.png, config.json.")
    models: str = option("vgg16", "Comma list of models, e.g. vgg16,nasnet_mobile,resnet50,inception_v4 (the paper's "
                                  "Table 2/3 models).")
    classes: str = option("top5", "Class subset: top5 (the paper's), all, topK or a comma list.")
    synthetic: Optional[str] = option(None, "Synthetic dataset for the gan arm (protgan synth output: one set, or "
                                            "per-fold sets SYN/fold_K); joins the training part only.")
    gan_runs: Optional[str] = option(None, "Instead of --synthetic: a folder of train-gan runs, RUNS/class_C (one per "
                                           "class) or RUNS/fold_K/class_C (per fold, every fold K); synth is run "
                                           "into OUT/synthetic (per fold: OUT/synthetic/fold_K).")
    per_class: int = option(1000, "With --gan-runs: synthetic images per class (the paper: 1000).")
    synth_labels: str = option("single", "With --gan-runs of conditional runs (train-gan --conditional): the synthetic "
                                         "images' label sets, as synth --labels: single (the class alone) or "
                                         "follow-real (the label sets of real training images carrying the class).",
                               choices=LABEL_CHOICES)
    folds: int = option(5, "K of the K-fold cross-validation (the paper: 5).")
    size: Optional[int] = option(None, "Image side in pixels (default: the model's recipe, 512).")
    epochs: Optional[int] = option(None, "Epochs per cell (default: the model's recipe, 50 for vgg16).")
    seeds: str = option("0", "Comma list of training seeds; each arm runs every fold with each seed (more cells, "
                             "tighter intervals).")
    all_arms: bool = option(False, "Also train the none and classic+gan arms.")
    channels: Optional[str] = option(None, "green, rgb (the paper's; default) or rgby.")
    batch_size: Optional[int] = option(None, "Batch size per cell (default: the model's recipe, 32).")
    pretrained: bool = option(True, "Start from ImageNet weights (offline: efficientnet_lite0, or a filled timm cache).",
                              cli="--pretrained/--no-pretrained")
    thresholds: str = option("tuned", "Metrics at per-class thresholds tuned on the training part (tuned) or at 0.5.",
                             choices=THRESHOLD_CHOICES)
    confidence: float = option(0.95, "Level of the confidence intervals.")
    seed: int = option(0, "With --gan-runs: the noise seed of the synthetic images (training seeds: --seeds).")
    fold: Optional[int] = option(None, "Run only this fold's cells (0-based), e.g. one fold per machine.",
                                 affects_run=False)
    cells: list[str] = option(help="Run only this cell, MODEL:ARM:FOLD:SEED (repeatable), e.g. vgg16:gan:0:0.",
                              cli="--cell", multiple=True, factory=list, affects_run=False)
    workers: Optional[int] = option(None, "DataLoader worker processes per cell (default: automatic).",
                                    affects_run=False)
    device: str = option("auto", "auto, cpu or cuda[:N].", affects_run=False)
    keep_checkpoints: str = option("selected", "Per cell, as classify --keep-checkpoints: selected (only the evaluated "
                                               "checkpoint once the cell is done), all or none.",
                                   choices=KEEP_CHECKPOINTS_CHOICES, affects_run=False)
    allow_leakage: bool = option(False, "Accept synthetic images whose generator saw a fold's validation images "
                                        "(generators trained on every image: the paper's likely setup); refused "
                                        "otherwise. Every table, comparison.md/csv/png and the demo report say LEAKY.")

    def arms(self) -> tuple[str, ...]:
        return ALL_ARMS if self.all_arms else ARMS

    def model_list(self) -> list[str]:
        from protgan.classify.models import get_spec  # lazy: the model registry imports torch

        names = [m.strip() for m in self.models.split(",") if m.strip()]
        if not names:
            raise ProtganError("--models: empty list (e.g. --models vgg16,resnet50)")
        out: list[str] = []
        for m in names:
            name = get_spec(m).name
            if name not in out:
                out.append(name)
        return out

    def seed_list(self) -> list[int]:
        try:
            seeds = [int(s) for s in self.seeds.split(",") if s.strip()]
        except ValueError:
            raise ProtganError(f"--seeds {self.seeds!r}: expected a comma list of integers, e.g. 0,1,2") from None
        if not seeds:
            raise ProtganError("--seeds: empty list")
        if len(set(seeds)) != len(seeds):
            raise ProtganError(f"--seeds {self.seeds!r}: a seed is listed twice")
        if any(s < 0 for s in seeds):
            raise ProtganError(f"--seeds {self.seeds!r}: seeds must be >= 0")
        return seeds


@dataclass
class DemoConfig:
    """Options of `protgan demo` (saved in DIR/demo.json)."""

    out: str = option("demo-run", "Run folder: data/, enhanced/, gan/, synthetic/, fid/, compare/, report.md, "
                                  "report.html. Re-running resumes.")
    plan: str = option("default", "default, quick or tiny.", cli=None, choices=DEMO_PLANS)
    seed: int = option(0, "Seed of every stage (data, enhancement sample, GANs, synthetic noise, folds are fixed).")
    device: str = option("auto", "auto, cpu or cuda.", affects_run=False)
    jobs: int = option(0, "Processes for the GANs (per class and fold, or per fold) and the classification cells "
                          "(0: one per CPU core).",
                       affects_run=False)
    gan: str = option("per-class", "per-class: one generator per top-5 class (and fold), the paper's; conditional: one "
                                   "conditional generator for the five classes per fold (train-gan --conditional "
                                   "--balance uniform), with the steps of the five per-class runs together.",
                      choices=DEMO_GAN_MODES)
    synth_labels: str = option("single", "--gan conditional: the synthetic images' label sets (synth --labels): single "
                                         "(each class alone) or follow-real (each image the label set of a real "
                                         "training image carrying the class: the real co-occurrence).",
                               choices=LABEL_CHOICES)
    allow_leakage: bool = option(False, "One generator per class on every image (the paper's likely setup) instead of "
                                        "one per class and fold (with --gan conditional: one conditional generator on "
                                        "every image); compare runs with --allow-leakage and the report says LEAKY. "
                                        "For measuring how much of the GAN gain is leakage.")

    def resolved_jobs(self) -> int:
        return cpu_jobs(self.jobs)


def demo_paths(out: Path) -> dict[str, Path]:
    """The demo folder's stage folders: written by protgan.experiments.demo, read by its report."""
    return {"data": out / "data", "enhanced": out / "enhanced", "gan": out / "gan", "gan_beside": out / "gan-beside",
            "beside_grid": out / "gan-beside" / "beside.png", "synthetic": out / "synthetic", "fid": out / "fid",
            "evaluate": out / "evaluate", "compare": out / "compare", "logs": out / "logs"}


@dataclass
class EvaluateConfig:
    """Every option of `protgan evaluate` (saved as OUT/config.json)."""

    real: str = option(help="Real dataset folder (train.csv + train/{Id}_{channel}.png).")
    fake: str = option(help="Synthetic dataset folder (what `protgan synth` writes).")
    out: str = option(help="Folder for evaluate.csv, evaluate.json, copies.png and cas/.")
    metrics: str = option(ALL_METRICS, "Comma list of fid, kid, pr (precision/recall), copies (near-copies of "
                                       "training images), cas (train on synthetic, test on real).")
    classes: Optional[str] = option(None, "Class index/name, a comma list or topK; default: every class in the "
                                          "synthetic set.", cli="--class --classes")
    select: str = option("any", "Real images of a class: any (every image with it) or only (its only label "
                                "within --classes, like train-gan's default).", choices=SELECT_CHOICES)
    features: str = option("auto", "Feature space: auto (inception when its weights are found, else "
                                   "efficientnet_lite0), inception, efficientnet_lite0 or ckpt:PATH.")
    weights: Optional[str] = option(None, "Inception weights file (pytorch-fid's pt_inception-2015-12-05-6726825d.pth).")
    size: Optional[int] = option(None, "Side the images are read at; default: the synthetic images' size.")
    channels: Optional[str] = option(None, "green, rgb, rgby or a comma list; default: the synthetic set's.")
    kid_subsets: int = option(100, "KID: number of random subsets (the std is over them).")
    kid_subset_size: int = option(1000, "KID: images per subset (capped by half the smaller set).")
    pr_k: int = option(3, "Precision/recall: the k of the k-nearest-neighbour radii (the paper's 3).")
    copy_percentile: float = option(5.0, "Near-copies: synthetic images closer to a training image than this "
                                         "percentile of real-to-real nearest-neighbour distances.")
    copies_shown: int = option(8, "Near-copies: synthetic images per class in copies.png.")
    cas_model: str = option("efficientnet_lite0", "CAS: the classifier (efficientnet_lite0: ImageNet weights "
                                                  "shipped offline).")
    cas_epochs: int = option(3, "CAS: training epochs of each classifier.")
    cas_batch_size: int = option(32, "CAS: batch size.")
    cas_folds: int = option(5, "CAS: the shared folds (DATA/folds.csv) the validation fold comes from.")
    cas_fold: int = option(0, "CAS: the validation fold.")
    batch: int = option(50, "Images per feature-extraction batch.", affects_run=False)
    workers: Optional[int] = option(None, "Image-reading worker processes (default: automatic).", affects_run=False)
    seed: int = option(0, "Seed of the real halves, the KID subsets and the CAS subsets and training.")
    device: str = option("auto", "auto, cpu or cuda.", affects_run=False)
