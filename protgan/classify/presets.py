"""The paper's two training recipes (sections 3.3.2, 3.4, 3.5.2) as named presets.

`paper28`: InceptionV4, head dropout 0.5 -> BN -> GAP -> dense 128 ReLU -> dense 28, Adam 5e-4,
35 epochs, focal loss, batch size 32 doubled every 15 epochs up to 128.
`paper5`: VGG16, head dense 256 ReLU -> dense 5, Adam 1e-4, 50 epochs, same loss and schedules.
Every registered model names the recipe it trains with when no preset is given (`--preset none`).
"""

from __future__ import annotations

from dataclasses import dataclass

from protgan.core.errors import ProtganError


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
    # the related papers' recipes differ in these (see protgan.classify.optim); defaults = verma2020's
    optimizer: str = "adam"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    lr_schedule: str = "exp"  # exp (lr0 * exp(-0.01 epoch)), plateau, constant
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    size: int = 512
    channels: str = "rgb"
    augment: str = "classic"
    balance: str = "none"
    select: str = "macro_f1"  # the best checkpoint evaluated per fold


PRESETS: dict[str, Preset] = {
    "paper28": Preset("paper28", model="inception_v4", classes="all", head="paper28", lr=5e-4, epochs=35),
    "paper5": Preset("paper5", model="vgg16", classes="top5", head="paper5", lr=1e-4, epochs=50),
    # Al-joudi & Arif 2023 (Table 1, sections 3.2, 4): 299 x 299 x 4, SGD 0.1 / 0.9, batch 80, 80 epochs,
    # BCE, lr halved on a plateau (patience not given: 5), median:500 balancing; its only augmentation
    # (a random rotation/flip of the oversampled copies) comes with --balance.
    "gapnet": Preset("gapnet", model="gapnet-pl", classes="all", head="own", lr=0.1, epochs=80, loss="bce",
                     batch_size=80, batch_schedule="fixed", optimizer="sgd", momentum=0.9, lr_schedule="plateau",
                     plateau_factor=0.5, plateau_patience=5, size=299, channels="rgby", augment="none",
                     balance="median:500"),
    # Aggarwal et al. 2022 (sections III.B-E, Table 4): 512 px RGB, Adam 1e-3 (weight decay 1e-8), batch 32,
    # BCE, lr x0.1 after 3 epochs without a lower validation loss; augmentation: rotations, zoom,
    # brightness, flips (our `classic` is the nearest); the epoch count is not given (50 here).
    "aggarwal": Preset("aggarwal", model="concat-cnn", classes="all", head="own", lr=1e-3, epochs=50, loss="bce",
                       batch_size=32, batch_schedule="fixed", optimizer="adam", weight_decay=1e-8,
                       lr_schedule="plateau", plateau_factor=0.1, plateau_patience=3, size=512, channels="rgb",
                       augment="classic"),
    # Liimatainen et al. 2021 (sections 2.2-2.3): all four channels at 256 px, Adam 1e-3, batch 64, BCE,
    # lr / 3 after 8 epochs without a lower validation loss, 100 epochs, no augmentation mentioned; the
    # model with the lowest validation loss is kept (their early-stopping criterion).
    "liimatainen": Preset("liimatainen", model="fcn13", classes="all", head="own", lr=1e-3, epochs=100,
                          loss="bce", batch_size=64, batch_schedule="fixed", optimizer="adam",
                          lr_schedule="plateau", plateau_factor=1 / 3, plateau_patience=8, size=256,
                          channels="rgby", augment="none", select="loss"),
}
PRESET_CHOICES = (*PRESETS, "none")


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ProtganError(f"--preset {name!r}: expected one of {', '.join(PRESET_CHOICES)}") from None
