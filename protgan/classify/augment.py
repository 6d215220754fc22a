"""Classic augmentation as the paper lists it (section 4.4): horizontal and vertical flip, crop, scale,
rotation, shear, sharpening and inversion, each applied with its own probability.

Built with torchvision.transforms.v2 on one uint8 C x S x S tensor, so every channel of an image gets
the same geometric transform, and any channel count (1, 3, 4) works. The paper gives no magnitudes;
the ranges below are ordinary ones for fluorescence microscopy (no preferred orientation, so any
rotation; black corners are background).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from protgan.core.errors import ProtganError

AUGMENT_CHOICES = ("none", "classic", "gan", "classic+gan")


@dataclass(frozen=True)
class ClassicAugment:
    """Probability of each transform (0 turns it off) and its range."""

    hflip: float = 0.5
    vflip: float = 0.5
    crop: float = 0.3  # random resized crop, area `crop_scale`, back to the full size
    scale: float = 0.3  # zoom in or out by `scale_range`
    rotation: float = 0.5  # uniform angle in +-`rotation_degrees`
    shear: float = 0.2  # +-`shear_degrees` on both axes
    sharpen: float = 0.2  # sharpness factor `sharpness`
    invert: float = 0.05  # 255 - x on all channels
    crop_scale: tuple[float, float] = (0.6, 1.0)
    scale_range: tuple[float, float] = (0.85, 1.15)
    rotation_degrees: float = 180.0
    shear_degrees: float = 10.0
    sharpness: float = 2.0

    def probabilities(self) -> dict[str, float]:
        return {n: getattr(self, n) for n in PROBABILITY_NAMES}

    def build(self, size: int) -> v2.Transform:
        steps: list[v2.Transform] = []
        if self.hflip:
            steps.append(v2.RandomHorizontalFlip(self.hflip))
        if self.vflip:
            steps.append(v2.RandomVerticalFlip(self.vflip))
        if self.crop:
            steps.append(v2.RandomApply([v2.RandomResizedCrop(size, scale=self.crop_scale, ratio=(0.9, 1.1),
                                                              antialias=True)], p=self.crop))
        if self.scale:
            steps.append(v2.RandomApply([v2.RandomAffine(degrees=0, scale=self.scale_range)], p=self.scale))
        if self.rotation:
            steps.append(v2.RandomApply([v2.RandomRotation(self.rotation_degrees)], p=self.rotation))
        if self.shear:
            d = self.shear_degrees
            steps.append(v2.RandomApply([v2.RandomAffine(degrees=0, shear=(-d, d, -d, d))], p=self.shear))
        if self.sharpen:
            steps.append(RandomSharpen(self.sharpness, p=self.sharpen))
        if self.invert:
            steps.append(v2.RandomInvert(p=self.invert))
        return v2.Compose(steps) if steps else v2.Identity()


class RandomSharpen(torch.nn.Module):
    """v2.RandomAdjustSharpness for any channel count (torchvision's kernel takes 1 or 3 channels only):
    the same sharpening filter on every channel, with probability p."""

    def __init__(self, factor: float, p: float) -> None:
        super().__init__()
        self.factor, self.p = factor, p

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return img
        return torch.cat([F.adjust_sharpness(img[c:c + 1], self.factor) for c in range(img.shape[0])])


PROBABILITY_NAMES = ("hflip", "vflip", "crop", "scale", "rotation", "shear", "sharpen", "invert")


def parse_probabilities(spec: str | None, base: ClassicAugment | None = None) -> ClassicAugment:
    """`"hflip=0.5,invert=0"` -> a ClassicAugment with those probabilities changed."""
    base = base or ClassicAugment()
    if not spec:
        return base
    changes: dict[str, float] = {}
    for item in spec.split(","):
        name, eq, value = item.strip().partition("=")
        if not eq or name not in PROBABILITY_NAMES:
            raise ProtganError(f"--aug-probs {item.strip()!r}: expected NAME=P with NAME one of {', '.join(PROBABILITY_NAMES)}")
        try:
            p = float(value)
        except ValueError:
            raise ProtganError(f"--aug-probs {item.strip()!r}: {value!r} is not a number") from None
        if not 0.0 <= p <= 1.0:
            raise ProtganError(f"--aug-probs {item.strip()!r}: probability must be in [0, 1]")
        changes[name] = p
    return ClassicAugment(**{**asdict(base), **changes})


class AugmentTransform:
    """Picklable per-sample transform (DataLoader workers): uint8 C x S x S -> augmented uint8 C x S x S."""

    def __init__(self, aug: ClassicAugment, size: int) -> None:
        self.pipeline = aug.build(size)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return self.pipeline(img)


class SeededSamples(torch.utils.data.Dataset):
    """A dataset whose sample k, in epoch e, is drawn with the torch RNG seeded from (seed, e, k): the
    augmentations no longer depend on which loader worker (or the main process) reads a sample, so any
    --workers gives the same batches. The caller's RNG stream is left as it was (fork_rng)."""

    def __init__(self, dataset: torch.utils.data.Dataset, seed: int, epoch: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k: int):
        seed = int(np.random.SeedSequence([self.seed, self.epoch, int(k)]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[k]
