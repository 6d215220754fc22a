"""The paper's two training recipes (sections 3.3.2, 3.4, 3.5.2) as named presets.

`paper28`: InceptionV4, head dropout 0.5 -> BN -> GAP -> dense 128 ReLU -> dense 28, Adam 5e-4,
35 epochs, focal loss, batch size 32 doubled every 15 epochs up to 128.
`paper5`: VGG16, head dense 256 ReLU -> dense 5, Adam 1e-4, 50 epochs, same loss and schedules.
Every registered model names the recipe it trains with when no preset is given (`--preset none`).
"""

from __future__ import annotations

from dataclasses import dataclass

from protgan.errors import ProtganError


@dataclass(frozen=True)
class Preset:
    name: str
    model: str
    classes: str  # "all", "top5" or a list accepted by resolve_subset
    head: str  # a name in protgan.classify.heads.HEADS
    lr: float
    epochs: int
    loss: str = "focal"
    batch_size: int = 32
    batch_schedule: str = "paper"  # 32 -> 64 (epoch 15) -> 128 (epoch 30)


PRESETS: dict[str, Preset] = {
    "paper28": Preset("paper28", model="inception_v4", classes="all", head="paper28", lr=5e-4, epochs=35),
    "paper5": Preset("paper5", model="vgg16", classes="top5", head="paper5", lr=1e-4, epochs=50),
}
PRESET_CHOICES = (*PRESETS, "none")


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ProtganError(f"--preset {name!r}: expected one of {', '.join(PRESET_CHOICES)}") from None
