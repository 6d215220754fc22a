"""The CNN and the FCN of Liimatainen et al. (Biomolecules 2021), built on one shared base.

Base: five pairs of [3x3 conv -> ReLU -> batch norm] ... "sets of two convolutional layers followed by
batch normalization and max pooling; the number of kernels doubles after each max pooling; 10
convolutional layers in total" (section 2.2). 'Same' padding, so a 256 px input halves cleanly.
- `cnn13`: base (5 pools: 256 -> 8) -> flatten -> three dense layers, the last predicting the classes.
- `fcn13`: base without its last pool (256 -> 16) -> one 1x1 convolution per class: C heat maps of
  16 x 16 at 256 px; a class's confidence is its map's maximum.
Both end in sigmoid (here: the loss and the predictor apply it; `forward` returns logits). Because
sigmoid is monotonic, sigmoid(max of map logits) is exactly the maximum of the sigmoid map.

Left open by the paper (its figure is not in the text we have) and chosen here: 32 kernels in the first
pair (32-64-128-256-512), dense layers of 512 and 256 units, dropout 0.3 (the paper grid-searched
{0.1, 0.2, 0.3, 0.5} without printing the winner) before each dense layer of the CNN and before the
FCN's 1x1 classifier. Glorot-uniform init, as the paper says.
"""

from __future__ import annotations

import torch
from torch import nn

from protgan.classify.models.init_schemes import glorot_init
from protgan.core.errors import ProtganError

N_PAIRS = 5


def _pair(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_ch),
    ]


def make_base(in_chans: int, width: int, last_pool: bool) -> tuple[nn.Sequential, int]:
    """The 10-convolution base; returns (module, channels out)."""
    layers: list[nn.Module] = []
    ch = in_chans
    for i in range(N_PAIRS):
        out = width * 2**i
        layers += _pair(ch, out)
        if i < N_PAIRS - 1 or last_pool:
            layers.append(nn.MaxPool2d(2))
        ch = out
    return nn.Sequential(*layers), ch


def _check_size(x: torch.Tensor, factor: int, name: str) -> None:
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ProtganError(f"--size: {name} needs an input size divisible by {factor}, got {h}x{w}")


class LiimatainenCNN(nn.Module):
    """`cnn13`: the shared base with its fifth pool, then flatten and three dense layers (logits out).

    At the paper's 256 px the base ends in an 8 x 8 map that is flattened as is. So that one model
    works at any size, other sizes are brought to the same 8 x 8 grid first (adaptive average pooling:
    an average for larger inputs, a repetition for smaller ones), which is the identity at 256 px.
    """

    paper = "liimatainen2021-cnn-vs-fcn (CNN)"
    is_fcn = False
    grid = 8  # the base's output side at 256 px: 256 / 2**5

    def __init__(
        self,
        num_classes: int = 13,
        in_chans: int = 4,
        width: int = 32,
        hidden: tuple[int, int] = (512, 256),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.base, ch = make_base(in_chans, width, last_pool=True)
        self.to_grid = nn.AdaptiveAvgPool2d(self.grid)
        self.num_features = ch * self.grid * self.grid
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(self.num_features, hidden[0]), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden[0], hidden[1]), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(hidden[1], num_classes)
        glorot_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, 2**N_PAIRS, "cnn13")
        feats = self.base(x)
        if feats.shape[-1] != self.grid or feats.shape[-2] != self.grid:
            feats = self.to_grid(feats)
        return self.classifier(self.head(feats))


class LiimatainenFCN(nn.Module):
    """`fcn13`: the shared base without its last pool and a 1x1 conv per class.

    `forward` returns class logits (the maximum of each map), so the FCN drops into any classifier
    loop; `forward_maps` returns the C x S/16 x S/16 map logits the FCN is trained on.
    """

    paper = "liimatainen2021-cnn-vs-fcn (FCN)"
    is_fcn = True
    map_stride = 2 ** (N_PAIRS - 1)  # 16: a 256 px input gives 16 x 16 maps

    def __init__(
        self,
        num_classes: int = 13,
        in_chans: int = 4,
        width: int = 32,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.base, ch = make_base(in_chans, width, last_pool=False)
        self.num_features = ch
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(ch, num_classes, kernel_size=1)
        glorot_init(self)

    def map_size(self, img_size: int) -> int:
        return img_size // self.map_stride

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, self.map_stride, "fcn13")
        return self.classifier(self.dropout(self.base(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_maps(x).amax(dim=(2, 3))
