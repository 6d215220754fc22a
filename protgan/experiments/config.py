"""`CompareConfig` and `DemoConfig`: every option of `protgan compare` and `protgan demo`, with defaults
and help texts (torch-free: the CLI is generated from these fields)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from protgan.classify.config import KEEP_CHECKPOINTS_CHOICES
from protgan.core.errors import ProtganError
from protgan.core.options import option

ARMS = ("classic", "gan")
ALL_ARMS = ("none", "classic", "gan", "classic+gan")
THRESHOLD_CHOICES = ("tuned", "0.5")
DEMO_PLANS = ("default", "quick", "tiny")


@dataclass
class CompareConfig:
    """Every option of `protgan compare` (saved as DIR/config.json)."""

    data: str = option(help="Dataset folder in the HPA layout (the real images; folds.csv is shared).")
    out: str = option(help="Comparison folder: cells/MODEL/ARM/seed_S/ runs, comparison.md/.csv/.png, config.json.")
    models: str = option("vgg16", "Comma list of models, e.g. vgg16,nasnet_mobile,resnet50,inception_v4 (the paper's "
                                  "Table 2/3 models).")
    classes: str = option("top5", "Class subset: top5 (the paper's), all, topK or a comma list.")
    synthetic: Optional[str] = option(None, "Synthetic dataset for the gan arm (protgan synth output); joins the "
                                            "training part only.")
    gan_runs: Optional[str] = option(None, "Instead of --synthetic: a folder of train-gan runs (one per class); synth "
                                           "is run into OUT/synthetic.")
    per_class: int = option(1000, "With --gan-runs: synthetic images per class (the paper: 1000).")
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
                                               "checkpoint once the cell is done) or all.",
                                   choices=KEEP_CHECKPOINTS_CHOICES, affects_run=False)

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
    jobs: int = option(0, "Processes for the per-class GANs and the classification cells (0: one per CPU core).",
                       affects_run=False)

    def resolved_jobs(self) -> int:
        return self.jobs or os.cpu_count() or 1
