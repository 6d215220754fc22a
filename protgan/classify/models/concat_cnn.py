"""The concatenated-convolutional-blocks CNN of Aggarwal et al. (IEEE Access 2022), Table 3.

Four blocks of [unpadded 3x3 conv -> batch norm -> ReLU] x 2 -> 2x2 max pool (32, 64, 128, 256 filters).
The output of every block's max pool is global-average-pooled and the four vectors are concatenated
(32+64+128+256 = 480) -> dense 512 -> BN -> ReLU -> dense 256 -> BN -> ReLU -> dense C -> sigmoid.

Table 3's parameter column fixes details the text leaves open: the dense layers carry no bias
(480*512 = 245,760 exactly; 256*28 = 7,168), the convolutions do (3*9*32 + 32 = 896), and each batch
norm has 4 numbers per channel (Keras counts gamma, beta, moving mean and variance; here they are two
parameters plus two running-stat buffers). One row of the table is a misprint: the batch norm over
256 dense units is printed as 4,096; 4 x 256 = 1,024 (tests/test_paper_models.py records it).
Weights start from Glorot (Xavier) uniform, the paper's (and Keras') initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from protgan.classify.models.init_schemes import glorot_init
from protgan.core.errors import ProtganError

BLOCK_FILTERS = (32, 64, 128, 256)


def min_input_size(n_blocks: int = len(BLOCK_FILTERS)) -> int:
    """Smallest square input for which every block still has >= 1 pixel after its max pool."""
    need = 1  # pixels needed after the last block's pool
    for _ in range(n_blocks):
        need = 2 * need + 4  # undo the 2x2 pool (floor) and the two unpadded 3x3 convs (-2 each)
    return need


class ConvBlock(nn.Sequential):
    """Two unpadded 3x3 convolutions, each followed by batch norm and ReLU, then a 2x2 max pool."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=0),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, kernel_size, padding=0),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )


class ConcatCNN(nn.Module):
    """Aggarwal et al.'s from-scratch multilabel CNN. Returns logits (sigmoid is in the loss / predictor)."""

    paper = "aggarwal-concat-conv-blocks (Table 3)"

    def __init__(
        self,
        num_classes: int = 28,
        in_chans: int = 3,
        filters: tuple[int, ...] = BLOCK_FILTERS,
        hidden: tuple[int, int] = (512, 256),
        kernel_size: int = 3,
        dense_bias: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        chans = (in_chans, *filters)
        self.blocks = nn.ModuleList(ConvBlock(chans[i], chans[i + 1], kernel_size) for i in range(len(filters)))
        self.min_input_size = min_input_size(len(filters)) if kernel_size == 3 else None
        width = sum(filters)  # 480 with the paper's filters
        self.head = nn.Sequential(
            nn.Linear(width, hidden[0], bias=dense_bias),
            nn.BatchNorm1d(hidden[0]),
            nn.ReLU(inplace=True),
            nn.Linear(hidden[0], hidden[1], bias=dense_bias),
            nn.BatchNorm1d(hidden[1]),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(hidden[1], num_classes, bias=dense_bias)
        self.num_features = width
        glorot_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The 480-d concatenation of every block's globally average-pooled output."""
        if self.min_input_size is not None and min(x.shape[-2:]) < self.min_input_size:
            raise ProtganError(
                f"--size: concat-cnn uses unpadded convolutions and needs inputs of at least "
                f"{self.min_input_size} px, got {tuple(x.shape[-2:])}"
            )
        pooled = []
        for block in self.blocks:
            x = block(x)
            pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.forward_features(x)))

