"""A protgan classifier as a feature space (`--features ckpt:PATH`) and as a per-class scorer
(`synth --filter-by ckpt:PATH`). Registered with protgan.evaluation here, so the evaluation package
never imports classify."""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch
from torch import nn

from protgan.classify.train import load_checkpoint, model_from_checkpoint
from protgan.core.errors import ProtganError
from protgan.data import unit_range_at
from protgan.evaluation.fid import FeatureExtractor, register_feature_space

Scorer = Callable[[torch.Tensor], torch.Tensor]  # uint8 B x C x S x S on the device -> B scores (higher = keep)


def load_protgan_classifier(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """(Classifier in eval mode, its checkpoint dict: classes, channels, size) from `protgan classify`."""
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt).eval(), ckpt


class ClassifierEmbedding(nn.Module):
    """A protgan classifier cut before its head: [0, 1] images -> its input normalisation -> backbone
    feature map -> global average pool. Networks with their own head use their `forward_features`."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.classifier
        x = (x - c.mean) / c.std
        body = c.backbone
        feats = body.forward_features(x) if c.head_name == "own" and hasattr(body, "forward_features") else body(x)
        return feats.mean(dim=(2, 3)) if feats.ndim == 4 else feats.flatten(1)


def classifier_extractor(path: str, device: torch.device) -> FeatureExtractor:
    """The pooled embedding of a protgan classifier checkpoint, on the channels it was trained on."""
    classifier, ckpt = load_protgan_classifier(path)
    model = ClassifierEmbedding(classifier).eval()
    size = int(ckpt["size"])
    channels = tuple(ckpt["channels"])
    with torch.no_grad():
        dim = int(model(torch.zeros(1, len(channels), size, size)).shape[1])
    model.to(device)
    return FeatureExtractor(f"ckpt:{path}", model, dim, lambda b, chans: unit_range_at(b, size), device,
                            channels=channels, source=str(path))


def classifier_scorer(path: str, class_index: int, channels: Sequence[str], device: torch.device) -> Scorer:
    """A protgan classifier's sigmoid confidence for the class (synth's `--filter-by ckpt:PATH`)."""
    model, ckpt = load_protgan_classifier(path)
    model.to(device)
    classes = [int(c) for c in ckpt["classes"]]
    if class_index not in classes:
        raise ProtganError(f"--filter-by ckpt:{path}: the classifier does not predict class {class_index} "
                           f"(its classes: {','.join(map(str, classes))})")
    if tuple(ckpt["channels"]) != tuple(channels):
        raise ProtganError(f"--filter-by ckpt:{path}: the classifier takes {','.join(ckpt['channels'])}, "
                           f"the generators make {','.join(channels)}")
    col = classes.index(class_index)
    size = int(ckpt["size"])

    @torch.no_grad()
    def score(images: torch.Tensor) -> torch.Tensor:
        return model.predict_proba(unit_range_at(images, size))[:, col]

    return score


register_feature_space("ckpt", classifier_extractor)
