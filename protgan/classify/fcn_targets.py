"""Training targets for the FCN of Liimatainen et al. (2021), made from the protein (green) channel.

Section 2.2: "First, the image was normalized and filtered with Gaussian kernel. Then, the smoothened
image was thresholded with experimentally selected value 0.3. Finally, the binary image was dilated
and resized to match the output size. The same target was used for each class present, while classes
not present were given zeros as target."

Here, per image: min-max normalise to [0, 1] -> Gaussian filter -> >= 0.3 -> dilation with a square
structuring element -> area-resize to the map size. An area resize of a binary mask (what Keras-era
`resize` does with anti-aliasing) gives each map pixel the fraction of its input pixels that are
foreground: a soft target in [0, 1], which BCE takes as is. Re-binarising at 0.5 (`binary_cut=0.5`)
would erase structures smaller than half a map pixel (nuclei at small input sizes). The paper gives
neither the Gaussian's width nor the dilation's size: we use sigma 2 px and a 5 x 5 square at the
paper's 256 px input and scale both with the input size. Everything runs batched on the training device, on the batch as the loop
sees it, so augmentations (flips, rotations) move the targets with the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from protgan.core.errors import ProtganError


@dataclass(frozen=True)
class FcnTargetSpec:
    threshold: float = 0.3  # the paper's value
    sigma_px: float = 2.0  # at `reference_size`; scaled with the input size
    dilation_radius_px: float = 2.0  # square of side 2r+1 at `reference_size`
    reference_size: int = 256  # the paper's input size
    truncate: float = 4.0  # Gaussian support in sigmas (scipy.ndimage's default)
    binary_cut: float | None = None  # None: soft area-fraction targets; a number: >= it -> 1, else 0

    def sigma(self, size: int) -> float:
        return self.sigma_px * size / self.reference_size

    def dilation_radius(self, size: int) -> int:
        return max(1, round(self.dilation_radius_px * size / self.reference_size))


def _symmetric_index(n: int, r: int, device: torch.device) -> torch.Tensor:
    """Indices that pad a length-n axis by r on each side with half-sample symmetry (d c b a | a b c d)."""
    idx = torch.arange(-r, n + r, device=device) % (2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def gaussian_blur(img: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Separable Gaussian filter of B x H x W float images, borders as scipy.ndimage's 'reflect'."""
    if sigma <= 0:
        return img
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, device=img.device, dtype=img.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    h, w = img.shape[-2:]
    out = img[:, _symmetric_index(h, r, img.device)][:, :, _symmetric_index(w, r, img.device)].unsqueeze(1)
    out = F.conv2d(out, k.view(1, 1, -1, 1))
    out = F.conv2d(out, k.view(1, 1, 1, -1))
    return out[:, 0]


def protein_masks(protein: torch.Tensor, map_size: int, spec: FcnTargetSpec = FcnTargetSpec()) -> torch.Tensor:
    """B x map_size x map_size masks in [0, 1] (the foreground fraction of each map pixel, or 0/1 with
    `spec.binary_cut`) from B x H x W protein images (any dtype/range)."""
    if protein.dim() == 4:
        protein = protein[:, 0]
    if protein.dim() != 3:
        raise ProtganError(f"FCN targets: expected B x H x W protein images, got shape {tuple(protein.shape)}")
    size = protein.shape[-1]
    x = protein.float()
    lo = x.amin(dim=(1, 2), keepdim=True)
    hi = x.amax(dim=(1, 2), keepdim=True)
    x = (x - lo) / (hi - lo).clamp_min(1e-12)  # a blank image normalises to all zeros
    x = gaussian_blur(x, spec.sigma(size), spec.truncate)
    binary = (x >= spec.threshold).float().unsqueeze(1)
    r = spec.dilation_radius(size)
    binary = F.max_pool2d(binary, 2 * r + 1, stride=1, padding=r)
    h, w = binary.shape[-2:]
    if h % map_size == 0 and w % map_size == 0:
        cover = F.avg_pool2d(binary, (h // map_size, w // map_size))
    else:
        cover = F.adaptive_avg_pool2d(binary, map_size)
    cover = cover[:, 0]
    return cover if spec.binary_cut is None else (cover >= spec.binary_cut).float()


def fcn_targets(
    protein: torch.Tensor, labels: torch.Tensor, map_size: int, spec: FcnTargetSpec = FcnTargetSpec()
) -> torch.Tensor:
    """B x C x m x m targets: the protein mask for every present class, zeros for absent ones."""
    masks = protein_masks(protein, map_size, spec)
    return labels.float()[:, :, None, None] * masks[:, None]


def fcn_map_loss(map_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The paper's loss: binary cross-entropy between the sigmoid heat maps and the targets, per pixel."""
    return F.binary_cross_entropy_with_logits(map_logits.float(), targets)


def map_side(size: int, stride: int) -> int:
    if size % stride:
        raise ProtganError(f"--size: the FCN needs a size divisible by {stride}, got {size}")
    return size // stride


__all__ = ["FcnTargetSpec", "fcn_map_loss", "fcn_targets", "gaussian_blur", "map_side", "protein_masks"]


def fcn_network(model: torch.nn.Module) -> torch.nn.Module | None:
    """The FCN inside a classifier (or the FCN itself), None for any other model."""
    for m in (model, getattr(model, "backbone", None)):
        if m is not None and getattr(m, "is_fcn", False):
            return m
    return None


def fcn_maps(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Map logits B x C x m x m of an FCN classifier for [0, 1] images (its input normalisation applied)."""
    net = fcn_network(model)
    if net is None:
        raise ProtganError("heat maps: this model is not a fully convolutional network (use --model fcn13)")
    if net is not model and hasattr(model, "mean"):
        x = (x - model.mean) / model.std
    return net.forward_maps(x)


class FcnObjective:
    """The FCN's training step: (class logits = map maxima, pixelwise BCE of the maps vs the targets).

    `protein_index` is the position of the green channel in the input; targets are made on the fly
    from the batch itself, in float32 whatever the autocast dtype (thresholding needs the precision).
    """

    def __init__(self, protein_index: int, spec: FcnTargetSpec = FcnTargetSpec()) -> None:
        self.protein_index = protein_index
        self.spec = spec

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = fcn_maps(model, x)
        with torch.autocast(x.device.type, enabled=False):
            targets = fcn_targets(x[:, self.protein_index].float(), y, maps.shape[-1], self.spec)
            loss = fcn_map_loss(maps.float(), targets)
        return maps.amax(dim=(2, 3)), loss

    @torch.no_grad()
    def mean_loss(self, model: torch.nn.Module, batches, prepare, autocast) -> float:
        """Mean pixelwise loss over (x, y) batches (the validation loss the FCN's schedule watches)."""
        model.eval()
        total, n = None, 0
        for x, y in batches:
            x = prepare(x)
            y = y.to(x.device, non_blocking=True)
            with autocast():
                _, loss = self(model, x, y)
            total = loss.detach() * len(y) if total is None else total + loss.detach() * len(y)
            n += len(y)
        return float(total) / n if n else float("nan")  # one device sync, at the end
