"""GapNet-PL (Rumetshofer et al., ICLR 2019 "Human-level protein localization with CNNs"), as used by
Al-joudi & Arif (CMC 2023) with SeLU or PReLU activations.

Layer for layer as the authors' released TensorFlow graph (ml-jku/gapnet-pl, `architectures.GapNetPL`):

    block 1: conv 3x3/2, 32          -> max pool 2x2                       -> GAP (32)
    block 2: conv 3x3/2, 64; 3 x conv 3x3, 64 -> max pool 2x2              -> GAP (64)
    block 3: 3 x conv 3x3, 128                                             -> GAP (128)
    concat (224) -> dense 256 -> act -> dropout -> dense 256 -> act -> dropout -> dense C

"Some convolutions have a stride of 2, max-pooling layers learn abstract features at various spatial
resolutions; global average pooling reduces the feature maps of three layers to one pixel and the
vectors are concatenated; a fully connected network of two hidden layers classifies" (Al-joudi 3.3).
Convolutions and pools use 'SAME' padding as in the TF original. No batch norm: SeLU self-normalises.

`activation="selu"`: SELU, alpha dropout, LeCun-normal init (the original).
`activation="prelu"`: channel-wise PReLU (He et al.'s form), plain dropout, He-normal init (Al-joudi's
variant; the paper does not say channel-wise or element-wise, element-wise would tie the model to one
input size). Dropout 0.3 is the rate in the authors' GapNet-PL config.
"""

from __future__ import annotations

import torch
from torch import nn

from protgan.classify.models.init_schemes import he_normal_init, lecun_normal_init
from protgan.core.errors import ProtganError

ACTIVATIONS = ("selu", "prelu")


def _act(kind: str, channels: int) -> nn.Module:
    return nn.SELU(inplace=True) if kind == "selu" else nn.PReLU(num_parameters=channels, init=0.25)


def _conv(in_ch: int, out_ch: int, stride: int, act: str) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1), _act(act, out_ch)]


class GapNetPL(nn.Module):
    """GapNet-PL returning logits; `activation` picks the SeLU original or Al-joudi's PReLU variant."""

    paper = "aljoudi2023-gapnet-pl (after Rumetshofer et al. 2018)"

    def __init__(
        self,
        num_classes: int = 28,
        in_chans: int = 4,
        activation: str = "selu",
        hidden: int = 256,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ProtganError(f"--activation: {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        self.activation = activation
        self.num_classes = num_classes
        self.in_chans = in_chans
        a = activation
        self.block1 = nn.Sequential(*_conv(in_chans, 32, 2, a), nn.MaxPool2d(2, ceil_mode=True))
        self.block2 = nn.Sequential(
            *_conv(32, 64, 2, a), *_conv(64, 64, 1, a), *_conv(64, 64, 1, a), *_conv(64, 64, 1, a),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        self.block3 = nn.Sequential(*_conv(64, 128, 1, a), *_conv(128, 128, 1, a), *_conv(128, 128, 1, a))
        self.num_features = 32 + 64 + 128
        drop = nn.AlphaDropout if a == "selu" else nn.Dropout
        self.head = nn.Sequential(
            nn.Linear(self.num_features, hidden), _act(a, hidden), drop(dropout),
            nn.Linear(hidden, hidden), _act(a, hidden), drop(dropout),
        )
        self.classifier = nn.Linear(hidden, num_classes)
        (lecun_normal_init if a == "selu" else he_normal_init)(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated global averages of the three stages' feature maps (224 values)."""
        b1 = self.block1(x)
        b2 = self.block2(b1)
        b3 = self.block3(b2)
        return torch.cat([b1.mean(dim=(2, 3)), b2.mean(dim=(2, 3)), b3.mean(dim=(2, 3))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.forward_features(x)))
