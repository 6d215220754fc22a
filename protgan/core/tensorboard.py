"""`--tensorboard`: scalars and images as TensorBoard events under a run folder (`tensorboard --logdir RUN`).

The optional `tensorboard` extra (pip install 'protgan[tensorboard]') provides the event writer; without
it, --tensorboard is a one-line error naming the extra. Writers exist on rank 0 only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from protgan.core.errors import ProtganError

TENSORBOARD_DIR = "tensorboard"


class TensorBoardLog:
    """A thin SummaryWriter: `scalars(prefix, values, step)` (non-finite and non-numbers skipped),
    `image(tag, hwc_uint8, step)`, `close()`."""

    def __init__(self, logdir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package
            raise ProtganError("--tensorboard: the tensorboard package is not installed "
                               "(pip install 'protgan[tensorboard]' or pip install tensorboard)") from None
        self.logdir = Path(logdir)
        self._writer = SummaryWriter(log_dir=str(self.logdir))

    def scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        for key, value in values.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self._writer.add_scalar(f"{prefix}/{key}", float(value), int(step))
        self._writer.flush()

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An H x W x 3 uint8 image."""
        self._writer.add_image(tag, np.ascontiguousarray(image), int(step), dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def open_tensorboard(run: str | Path, enabled: bool) -> TensorBoardLog | None:
    """RUN/tensorboard's writer when `enabled` (the option and rank 0), else None."""
    return TensorBoardLog(Path(run) / TENSORBOARD_DIR) if enabled else None
