"""`FidConfig`: every option of `protgan fid`, its default and its help text (torch-free: the CLI is
generated from these fields)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from protgan.core.options import option
from protgan.data.selection import SELECT_CHOICES

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_CHOICES = ("inception", "efficientnet_lite0", "efficientnet_lite1", "ckpt:PATH")


@dataclass
class FidConfig:
    """Every option of `protgan fid` (recorded in OUT/config.json)."""

    real: str = option(help="Real dataset folder (train.csv + train/{Id}_{channel}.png).")
    fake: str = option(help="Synthetic dataset folder (what `protgan synth` writes).")
    classes: Optional[str] = option(None, "Class index/name, or a subset (all, top5, topK or a comma list); default: "
                                          "every class in the synthetic set.", cli="--class --classes")
    features: str = option("inception", "Feature space: inception (pytorch-fid's InceptionV3 pool3), efficientnet_lite0 "
                                        "or efficientnet_lite1 (ImageNet weights shipped in pip packages, offline; lite1 "
                                        "for --arch projected, whose D sees lite0), or ckpt:PATH (a protgan classifier's "
                                        "embedding).")
    weights: Optional[str] = option(None, f"Inception weights file (pytorch-fid's {FID_WEIGHTS_FILE}); default: the "
                                          "$TORCH_HOME hub cache.")
    size: Optional[int] = option(None, "Side the images are read at (area resize); default: the synthetic images' size.")
    channels: Optional[str] = option(None, "green, rgb, rgby or a comma list; default: the synthetic set's channels. "
                                           "1 channel is replicated to RGB; yellow is folded into red+green.")
    select: str = option("any", "Real images of a class: any (every image with the class) or only (single-label "
                                "images within the class subset, like train-gan's default).", choices=SELECT_CHOICES)
    kid_subsets: int = option(100, "KID: number of random subsets (the std is over them).")
    kid_subset_size: int = option(1000, "KID: images per subset (capped by the smaller set).")
    batch: int = option(50, "Images per feature-extraction batch.", affects_run=False)
    workers: Optional[int] = option(None, "Image-reading worker processes (default: automatic).", affects_run=False)
    seed: int = option(0, "Seed of the real halves split and the KID subsets.")
    device: str = option("auto", "auto, cpu or cuda.", affects_run=False)
    out: Optional[str] = option(None, "Folder for fid.csv, fid.json and config.json.")
