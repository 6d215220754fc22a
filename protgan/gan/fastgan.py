"""FastGAN (Liu et al. 2021, "Towards Faster and Stabilized GAN Training for High-fidelity Few-shot Image
Synthesis"), written for protgan at any power-of-two size 32..1024 and 1, 3 or 4 channels.

Generator: z -> 4x4 (transposed conv + BN + GLU), then one block per doubling up to the image size. Blocks at
8, 32, 128 and 512 px (log2 odd) are the paper's "UpBlockComp": nearest 2x, conv3x3, noise injection, BN,
GLU, twice; the others a single nearest 2x + conv3x3 + BN + GLU. Skip-layer excitation (SLE): a
low-resolution feature map gates the channels of one 16x larger (4 -> 64, 8 -> 128, 16 -> 256, 32 -> 512,
as in the paper); a 32 px generator, which has no such pair, gets 4 -> 32. Output: conv3x3 + tanh.
Noise injection draws fresh noise per sample while training and uses a fixed noise map stored in the
weights in eval mode (StyleGAN2's "const" noise mode): samples, synth and the EMA generator are then
deterministic functions of z and never touch the global random streams.

Discriminator: a stride-1 stem, then the paper's "DownBlockComp" (conv4x4 s2 + conv3x3 beside avg-pool +
conv1x1, averaged) down to 8x8, with SLE from 8x larger maps (64 -> 8, 128 -> 16, 256 -> 32 where they exist);
a second branch sees the image at half the size (at most 128). Each branch ends in a 4x4 conv giving
5x5 patch logits; the image's logit is the mean of its 50 patch logits (`forward(x)[0]`, what synth's
`--filter-by disc` and ADA's r_t read). Self-supervision: on real images three small decoders
reconstruct the image from the 8x8 map, the image from the small branch's 8x8 map, and one random
quadrant of the image from the matching 8x8 quadrant of the 16x16 map; the loss (protgan.gan.losses)
compares them with the area-downscaled real image / quadrant (L1 on pixels instead of the paper's LPIPS,
which needs downloaded weights).

Widths: `width` is the channel count at the 8x8 grid (G and D), halving per doubling of the resolution,
never below MIN_WIDTH; G's 4x4 map has `width` channels. Spectral normalisation on every conv, as in the
paper's code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from protgan.core.errors import ProtganError
from protgan.gan.conditional import Projection, batch_norm, run_layers

MIN_SIZE, MAX_SIZE = 32, 1024
MIN_WIDTH = 16
Z_DIM = 100
REC_MAX = 128  # the decoders' output side (the paper's 128), at most the image side


def check_size(size: int) -> None:
    if not (MIN_SIZE <= size <= MAX_SIZE and size & (size - 1) == 0):
        raise ProtganError(f"--size {size}: must be a power of two from {MIN_SIZE} to {MAX_SIZE} for --arch fastgan and projected")


def width_at(res: int, width: int) -> int:
    """Channels at a resolution: `width` at 8x8 (and 4x4), halving per doubling, never below MIN_WIDTH."""
    return max(MIN_WIDTH, width >> max(0, int(math.log2(res // 8)))) if res >= 8 else width


def sle_pairs(size: int) -> list[tuple[int, int]]:
    """(source, target) resolutions of G's skip-layer excitations."""
    pairs = [(r // 16, r) for r in (64, 128, 256, 512) if r <= size]
    return pairs or [(4, size)]


def rec_size(size: int) -> int:
    """Side of the decoders' reconstructions: half the image, at least 32, at most 128 (the paper's)."""
    return min(REC_MAX, max(32, size // 2))


def sn(module: nn.Module) -> nn.Module:
    return nn.utils.spectral_norm(module)


class NoiseInjection(nn.Module):
    """x + w * noise (w starts at 0): fresh N(0, 1) per sample in training, a fixed map in eval mode."""

    def __init__(self, res: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.register_buffer("const", torch.randn(1, 1, res, res))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        else:
            noise = self.const.to(x.dtype)
        return x + self.weight * noise


class SLE(nn.Module):
    """Skip-layer excitation: channel gates in (0, 1) computed from a small map multiply a large one."""

    def __init__(self, c_small: int, c_big: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4), sn(nn.Conv2d(c_small, c_big, 4, 1, 0, bias=False)), nn.SiLU(),
            sn(nn.Conv2d(c_big, c_big, 1, 1, 0, bias=False)), nn.Sigmoid())

    def forward(self, small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
        return big * self.gate(small)


def up_block(cin: int, cout: int, num_classes: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), sn(nn.Conv2d(cin, cout * 2, 3, 1, 1, bias=False)),
                         batch_norm(cout * 2, num_classes), nn.GLU(dim=1))


def up_block_comp(cin: int, cout: int, res: int, num_classes: int = 0) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), sn(nn.Conv2d(cin, cout * 2, 3, 1, 1, bias=False)),
        NoiseInjection(res), batch_norm(cout * 2, num_classes), nn.GLU(dim=1),
        sn(nn.Conv2d(cout, cout * 2, 3, 1, 1, bias=False)), NoiseInjection(res), batch_norm(cout * 2, num_classes),
        nn.GLU(dim=1))


class FastganGenerator(nn.Module):
    def __init__(self, size: int = 256, channels: int = 3, z_dim: int = Z_DIM, width: int = 256,
                 num_classes: int = 0) -> None:
        super().__init__()
        check_size(size)
        self.size, self.channels, self.z_dim, self.width = size, channels, z_dim, width
        self.num_classes = num_classes  # > 0: conditional on a K-class label vector (protgan.gan.conditional)
        self.init = nn.Sequential(sn(nn.ConvTranspose2d(z_dim, width * 2, 4, 1, 0, bias=False)),
                                  batch_norm(width * 2, num_classes), nn.GLU(dim=1))
        self.resolutions = [2 ** k for k in range(3, int(math.log2(size)) + 1)]
        self.blocks = nn.ModuleDict()
        for r in self.resolutions:
            cin, cout = width_at(r // 2, width), width_at(r, width)
            comp = int(math.log2(r)) % 2 == 1
            self.blocks[str(r)] = up_block_comp(cin, cout, r, num_classes) if comp else up_block(cin, cout, num_classes)
        self.pairs = sle_pairs(size)
        self.sle = nn.ModuleDict({str(t): SLE(width_at(s, width), width_at(t, width)) for s, t in self.pairs})
        self.to_img = nn.Sequential(sn(nn.Conv2d(width_at(size, width), channels, 3, 1, 1)), nn.Tanh())
        if num_classes:  # y's embedding, added to z
            self.embed = nn.Linear(num_classes, z_dim, bias=False)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        source_of = {t: s for s, t in self.pairs}
        keep = set(source_of.values())
        feats: dict[int, torch.Tensor] = {}
        if y is not None:
            z = z + self.embed(y.to(z.dtype))
        x = run_layers(self.init, z.view(z.shape[0], -1, 1, 1), y)
        if 4 in keep:
            feats[4] = x
        for r in self.resolutions:
            x = run_layers(self.blocks[str(r)], x, y)
            if r in source_of:
                x = self.sle[str(r)](feats.pop(source_of[r]), x)
            if r in keep:
                feats[r] = x
        return self.to_img(x)


class DownBlockComp(nn.Module):
    """conv4x4 s2 + BN + LReLU + conv3x3 + BN + LReLU, averaged with avg-pool + conv1x1 + BN + LReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            sn(nn.Conv2d(cin, cout, 4, 2, 1, bias=False)), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(cout, cout, 3, 1, 1, bias=False)), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))
        self.direct = nn.Sequential(nn.AvgPool2d(2, 2), sn(nn.Conv2d(cin, cout, 1, 1, 0, bias=False)),
                                    nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


def down_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(sn(nn.Conv2d(cin, cout, 4, 2, 1, bias=False)), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


def simple_decoder(cin: int, channels: int, out: int, width: int) -> nn.Sequential:
    """8x8 feature map -> channels x out x out image in [-1, 1]: nearest-2x + conv3x3 + BN + GLU blocks."""
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(8)]
    c, r = cin, 8
    while r < out:
        r *= 2
        layers.append(up_block(c, width_at(r, width)))
        c = width_at(r, width)
    layers += [sn(nn.Conv2d(c, channels, 3, 1, 1)), nn.Tanh()]
    return nn.Sequential(*layers)


def quadrant(x: torch.Tensor, q: int) -> torch.Tensor:
    """Quadrant q (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of a B x C x H x W tensor."""
    h, w = x.shape[2] // 2, x.shape[3] // 2
    top, left = (q // 2) * h, (q % 2) * w
    return x[:, :, top:top + h, left:left + w]


class FastganDiscriminator(nn.Module):
    def __init__(self, size: int = 256, channels: int = 3, width: int = 256, num_classes: int = 0) -> None:
        super().__init__()
        check_size(size)
        self.size, self.channels, self.width = size, channels, width
        w = lambda r: width_at(r, width)  # noqa: E731
        self.stem = nn.Sequential(sn(nn.Conv2d(channels, w(size), 3, 1, 1, bias=False)), nn.LeakyReLU(0.2, inplace=True))
        self.downs = nn.ModuleDict()
        r = size
        while r > 8:
            self.downs[str(r // 2)] = DownBlockComp(w(r), w(r // 2))
            r //= 2
        self.se = nn.ModuleDict({str(t): SLE(w(t * 8), w(t)) for t in (8, 16, 32) if t * 8 <= size})
        self.rf_big = nn.Sequential(sn(nn.Conv2d(w(8), w(8), 1, 1, 0, bias=False)), nn.BatchNorm2d(w(8)),
                                    nn.LeakyReLU(0.2, inplace=True), sn(nn.Conv2d(w(8), 1, 4, 1, 0)))
        self.small_size = min(REC_MAX, size // 2)
        small: list[nn.Module] = [sn(nn.Conv2d(channels, w(self.small_size // 2), 4, 2, 1, bias=False)),
                                  nn.LeakyReLU(0.2, inplace=True)]
        r = self.small_size // 2
        while r > 8:
            small.append(down_block(w(r), w(r // 2)))
            r //= 2
        self.down_small = nn.Sequential(*small)
        self.rf_small = sn(nn.Conv2d(w(8), 1, 4, 1, 0))
        self.rec = rec_size(size)
        self.decoder_big = simple_decoder(w(8), channels, self.rec, width)
        self.decoder_small = simple_decoder(w(8), channels, self.rec, width)
        self.decoder_part = simple_decoder(w(16), channels, self.rec, width)
        if num_classes:  # projection discriminator (Miyato & Koyama 2018), one term per branch
            self.proj_big = Projection(num_classes, w(8), spectral=True)
            self.proj_small = Projection(num_classes, w(8), spectral=True)

    def forward(self, x: torch.Tensor, recon: bool = False, part: int = 0, y: torch.Tensor | None = None):
        """(image logits B, patch logits B x 50, reconstructions or None).

        recon=True (D's step on real images): also {"big", "small", "part"} reconstructions, "part"
        being quadrant `part` of the image (see `quadrant`). Labels y (a conditional D): each branch's
        projection term <embed(y), phi> is added to each of its patch logits."""
        feats = {self.size: self.stem(x)}
        h = feats[self.size]
        r = self.size
        while r > 8:
            r //= 2
            h = self.downs[str(r)](h)
            if str(r) in self.se:
                h = self.se[str(r)](feats[r * 8], h)
            feats[r] = h
        small_in = F.avg_pool2d(x, self.size // self.small_size) if self.small_size < self.size else x
        h_small = self.down_small(small_in)
        big, small = self.rf_big(h).flatten(1), self.rf_small(h_small).flatten(1)
        if y is not None:
            big, small = big + self.proj_big(h, y)[:, None], small + self.proj_small(h_small, y)[:, None]
        patches = torch.cat([big, small], dim=1)
        logits = patches.mean(dim=1)
        if not recon:
            return logits, patches, None
        recs = {"big": self.decoder_big(h), "small": self.decoder_small(h_small),
                "part": self.decoder_part(quadrant(feats[16], part))}
        return logits, patches, recs


def build_fastgan_generator(size: int, channels: int, z_dim: int = Z_DIM, width: int = 256,
                            num_classes: int = 0) -> FastganGenerator:
    """forward(z: B x z_dim[, y: B x num_classes]) -> B x channels x size x size in [-1, 1]."""
    return FastganGenerator(size, channels, z_dim, width, num_classes)


def build_fastgan_discriminator(size: int, channels: int, width: int = 256, num_classes: int = 0) -> FastganDiscriminator:
    """forward(x[, y=labels]) -> (logits B, patch logits B x 50, reconstructions | None); see FastganDiscriminator.forward."""
    return FastganDiscriminator(size, channels, width, num_classes)
