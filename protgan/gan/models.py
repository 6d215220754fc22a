"""The paper's DCGAN (Verma et al. 2020, sections 3.1.2.3-3.1.2.4 and Fig. 4), at any power-of-two size.

Generator: z (100-d Gaussian) -> dense -> reshape 8 x 8 x 1024 -> BN -> ReLU, then log2(size/8)
3x3 stride-2 transposed convolutions (512 px: six), each but the last followed by BN and ReLU, the
last by tanh. Discriminator: log2(size/8) 3x3 stride-2 convolutions (512 px: six, 512 -> 8), each
followed by BN (not on the first, the DCGAN rule: no BN on D's input layer), LeakyReLU(0.2) and
Dropout(0.25), then a fully connected layer with one output. The paper puts a sigmoid after it; we
return the logit and train with BCE-with-logits (the same model, numerically safe).

Channel widths: the generator starts at `width` (1024, the paper's 8 x 8 x 1024) and halves after each
layer, never below `MIN_WIDTH` (32); the discriminator mirrors it (its last conv has `width` channels
at 8 x 8, halving towards the input). At 512 px: G 1024-512-256-128-64-32-C, D C-32-64-128-256-512-1024.
`width` smaller than 1024 is for tests and quick CPU runs only.

`upsample="resize"` (an option beyond the paper) replaces each 3x3 stride-2 transposed convolution by
a nearest-neighbour 2x upsample followed by a 3x3 convolution (Odena et al. 2016, "Deconvolution and
checkerboard artifacts"): a kernel of 3 with stride 2 overlaps unevenly (1, 2 or 4 taps per output
pixel), which prints a fixed checkerboard into every sample; resize-convolution cannot. Same layer
count, widths and parameter count.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from protgan.core.errors import ProtganError
from protgan.gan.conditional import Projection, batch_norm, run_layers

BASE = 8  # the paper's 8 x 8 starting grid
MIN_SIZE, MAX_SIZE = 32, 512
MIN_WIDTH = 32
Z_DIM = 100
# The paper's "momentum 0.80" is Keras' convention (running = 0.8 * running + 0.2 * batch).
# PyTorch's `momentum` weighs the *new* batch, so the same rule is momentum=0.2.
BN_MOMENTUM = 0.2
LEAKY_SLOPE = 0.2
DROPOUT = 0.25
UPSAMPLE_MODES = ("transposed", "resize")  # the paper's transposed convs; nearest upsample + conv


def num_layers(size: int) -> int:
    """Up/down-sampling layers for a size: log2(size / 8) (512 -> 6, 64 -> 3, 32 -> 2)."""
    check_size(size)
    return int(math.log2(size // BASE))


def check_size(size: int) -> None:
    if not (MIN_SIZE <= size <= MAX_SIZE and size & (size - 1) == 0):
        raise ProtganError(f"--size {size}: must be a power of two from {MIN_SIZE} to {MAX_SIZE} (32, 64, 128, 256, 512)")


def check_upsample(mode: str) -> None:
    if mode not in UPSAMPLE_MODES:
        raise ProtganError(f"--g-upsample {mode!r}: expected one of {', '.join(UPSAMPLE_MODES)}")


def generator_widths(size: int, width: int = 1024) -> list[int]:
    """Feature channels at 8 x 8 and after each transposed conv except the last (which outputs the image)."""
    n = num_layers(size)
    return [max(MIN_WIDTH, width >> i) for i in range(n)]


class Generator(nn.Module):
    def __init__(self, size: int = 512, channels: int = 3, z_dim: int = Z_DIM, width: int = 1024,
                 bn_momentum: float = BN_MOMENTUM, upsample: str = "transposed", num_classes: int = 0) -> None:
        super().__init__()
        check_upsample(upsample)
        self.size, self.channels, self.z_dim, self.width, self.upsample = size, channels, z_dim, width, upsample
        self.num_classes = num_classes  # > 0: conditional on a K-class label vector (protgan.gan.conditional)
        widths = generator_widths(size, width)
        self.base_width = widths[0]
        # bias=False wherever BN follows: BN's shift makes a bias redundant.
        self.fc = nn.Linear(z_dim, BASE * BASE * widths[0], bias=False)
        self.fc_bn = batch_norm(widths[0], num_classes, momentum=bn_momentum)
        layers: list[nn.Module] = []
        outs = widths[1:] + [channels]
        for i, (cin, cout) in enumerate(zip(widths, outs)):
            last = i == len(outs) - 1
            if upsample == "transposed":
                # kernel 3, stride 2: padding=1 + output_padding=1 makes the output exactly twice the input.
                layers.append(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=last))
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1, bias=last)]
            if last:
                layers.append(nn.Tanh())
            else:
                layers += [batch_norm(cout, num_classes, momentum=bn_momentum), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)
        if num_classes:  # y's embedding, added to z
            self.embed = nn.Linear(num_classes, z_dim, bias=False)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            z = z + self.embed(y.to(z.dtype))
        x = self.fc(z).view(z.shape[0], self.base_width, BASE, BASE)
        x = torch.relu(self.fc_bn(x) if y is None else self.fc_bn(x, y))
        return run_layers(self.net, x, y)


class Discriminator(nn.Module):
    def __init__(self, size: int = 512, channels: int = 3, width: int = 1024, dropout: float = DROPOUT,
                 bn_momentum: float = BN_MOMENTUM, num_classes: int = 0) -> None:
        super().__init__()
        self.size, self.channels, self.width = size, channels, width
        widths = list(reversed(generator_widths(size, width)))  # e.g. 32, 64, ..., 1024 at 8 x 8
        layers: list[nn.Module] = []
        cin = channels
        for i, cout in enumerate(widths):
            first = i == 0
            layers.append(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=first))
            if not first:
                layers.append(nn.BatchNorm2d(cout, momentum=bn_momentum))
            layers += [nn.LeakyReLU(LEAKY_SLOPE, inplace=True), nn.Dropout(dropout)]
            cin = cout
        self.net = nn.Sequential(*layers)
        self.fc = nn.Linear(cin * BASE * BASE, 1)
        if num_classes:  # projection discriminator (Miyato & Koyama 2018) on the 8 x 8 features
            self.projection = Projection(num_classes, cin)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B,): sigmoid(logit) is the paper's D(x); with labels y, plus the projection term."""
        h = self.net(x)
        logit = self.fc(torch.flatten(h, 1)).squeeze(1)
        return logit if y is None else logit + self.projection(h, y)


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN init (Radford et al.): conv/dense weights ~ N(0, 0.02), BN gamma ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_generator(size: int, channels: int, z_dim: int = Z_DIM, width: int = 1024,
                    upsample: str = "transposed", num_classes: int = 0) -> Generator:
    """forward(z: B x z_dim[, y: B x num_classes]) -> B x channels x size x size in [-1, 1]; DCGAN-initialised."""
    g = Generator(size, channels, z_dim, width, upsample=upsample, num_classes=num_classes)
    dcgan_init(g)
    return g


def build_discriminator(size: int, channels: int, width: int = 1024, dropout: float = DROPOUT,
                        num_classes: int = 0) -> Discriminator:
    """forward(x: B x channels x size x size in [-1, 1][, y]) -> B logits; DCGAN-initialised."""
    d = Discriminator(size, channels, width, dropout, num_classes=num_classes)
    dcgan_init(d)
    return d
