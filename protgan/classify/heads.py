"""Classifier heads on a backbone's feature map (N x C x H x W -> N x num_classes logits).

The heads end in logits, not in the paper's sigmoid: the loss applies the sigmoid itself (numerically
safe log-sigmoid) and prediction calls `torch.sigmoid`, which is the paper's output layer.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from protgan.core.errors import ProtganError


class Paper28Head(nn.Sequential):
    """Section 3.3.2 (InceptionV4, 28 classes): dropout 0.5 -> batch norm -> global average pooling ->
    dense 128 ReLU -> dense num_classes (sigmoid in the loss / at prediction)."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 128, dropout: float = 0.5) -> None:
        super().__init__(
            nn.Dropout(dropout),
            nn.BatchNorm2d(in_features),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )


class Paper5Head(nn.Sequential):
    """Section 3.5.2 (VGG16, 5 classes): dense 256 ReLU -> dense num_classes on the feature extractor.

    The paper does not say how the 512 x 16 x 16 map of VGG16 at 512 px becomes a vector; we pool it
    globally (a Flatten would put 33M weights in this one layer and tie the model to one input size)."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )


class LinearHead(nn.Sequential):
    """Global average pooling -> one dense layer (the usual fine-tuning head; not in the paper)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(in_features, num_classes))


HEADS: dict[str, Callable[[int, int], nn.Module]] = {
    "paper28": Paper28Head,
    "paper5": Paper5Head,
    "linear": LinearHead,
}


def make_head(name: str, in_features: int, num_classes: int) -> nn.Module:
    try:
        return HEADS[name](in_features, num_classes)
    except KeyError:
        raise ProtganError(f"--head {name!r}: expected paper, {', '.join(HEADS)}") from None
