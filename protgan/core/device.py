"""`--device auto|cpu|cuda` resolved once, with a clear error when CUDA is asked for but absent."""

from __future__ import annotations

import torch

from protgan.core.errors import ProtganError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(spec: str = "auto") -> torch.device:
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ProtganError(f"--device {spec}: CUDA is not available on this machine (use --device cpu or auto)")
        return torch.device(spec)
    raise ProtganError(f"--device {spec!r}: expected auto, cpu or cuda[:N]")
