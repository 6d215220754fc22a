"""Labels for new images from a classify checkpoint, with the per-class thresholds it keeps (chosen on the
held-out part of its training fold; 0.5 where the checkpoint has none), optionally with test-time
augmentation (protgan.classify.tta). Output: the Kaggle submission format `Id,Predicted`
(space-separated class indices of the 28-class numbering)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from protgan.core.atomic import atomic_path
from protgan.classify.fcn_targets import fcn_maps, fcn_network
from protgan.classify.heatmaps import write_heatmaps
from protgan.classify.thresholds import KINDS, apply_thresholds
from protgan.classify.tta import TTA_CHOICES, tta_probs
from protgan.classify.train import Accel, load_checkpoint, model_from_checkpoint
from protgan.data import class_name, make_loader, read_channel
from protgan.data.dataset import IMAGE_SUBDIR, LABEL_FILE, index_image_files, read_label_table
from protgan.data.imageio import IMAGE_EXTENSIONS
from protgan.core.device import resolve_device
from protgan.core.errors import ProtganError


@dataclass
class Prediction:
    id: str
    labels: list[int]  # class indices (0..27) predicted present
    probabilities: dict[int, float]  # every class of the model


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> dict[str, dict[str, Path]]:
    """{Id: {channel: path}} from dataset folders (train.csv + images, or a folder of images such as
    Kaggle's test/) and single image files named {Id}_{channel}.{ext}."""
    found: dict[str, dict[str, Path]] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            img_dir = path / IMAGE_SUBDIR if (path / IMAGE_SUBDIR).is_dir() else path
            ids = read_label_table(path / LABEL_FILE)[0] if (path / LABEL_FILE).exists() else None
            files = index_image_files(img_dir, ids)
            if not files:
                raise ProtganError(f"{path}: no images named {{Id}}_{{channel}}{{{','.join(IMAGE_EXTENSIONS)}}}")
            for id_, chans in files.items():
                found.setdefault(id_, {}).update(chans)
            if ids is not None:
                absent = [i for i in ids if i not in files]
                if absent:
                    raise ProtganError(f"{path / LABEL_FILE}: Id {absent[0]!r} has no image file ({len(absent)} such Ids)")
        elif path.is_file():
            stem, _, ch = path.stem.rpartition("_")
            if not stem or ch not in ("red", "green", "blue", "yellow") or path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ProtganError(f"{path}: expected an image named {{Id}}_{{red,green,blue,yellow}}.png/.jpg/.tif")
            found.setdefault(stem, {})[ch] = path
        else:
            raise ProtganError(f"{path}: no such file or directory")
    if not found:
        raise ProtganError("predict: no input images")
    return found


class _Stacks(Dataset):
    def __init__(self, files: dict[str, dict[str, Path]], channels: Sequence[str], size: int) -> None:
        self.ids = sorted(files)
        self.files, self.channels, self.size = files, tuple(channels), size
        for id_ in self.ids:
            for ch in self.channels:
                if ch not in files[id_]:
                    some = next(iter(files[id_].values()))
                    raise ProtganError(f"{some.parent / f'{id_}_{ch}.png'}: missing {ch} channel for Id {id_!r} "
                                       f"(the checkpoint uses {','.join(self.channels)})")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        chans = self.files[self.ids[k]]
        img = np.stack([read_channel(chans[c], self.size) for c in self.channels])
        return torch.from_numpy(img), torch.zeros(())


def predict(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike], thresholds: str = "tuned",
            batch_size: int = 16, device: str = "auto", workers: int = 0,
            heatmaps: str | os.PathLike | None = None, tta: str = "none") -> tuple[list[Prediction], dict]:
    """(predictions sorted by Id, checkpoint info: classes, names, thresholds used and where from).

    `heatmaps`: with an FCN checkpoint (fcn13), also write DIR/{Id}_heatmaps.png per image: the image
    and one panel per predicted class with its heat map overlaid (protgan.classify.heatmaps).
    `thresholds`: tuned (the checkpoint's own kind, `classify --thresholds`), positive-proportion, or a number.
    `tta`: none, flips or d4 (mean of the sigmoids)."""
    if tta not in TTA_CHOICES:
        raise ProtganError(f"--tta {tta!r}: expected one of {', '.join(TTA_CHOICES)}")
    if tta != "none" and heatmaps is not None:
        raise ProtganError(f"--tta {tta}: not with --heatmaps (a heat map belongs to one orientation)")
    ckpt = load_checkpoint(checkpoint)
    classes = ckpt["classes"]
    if thresholds == "tuned":
        if ckpt.get("thresholds") is None:
            th, source = np.full(len(classes), 0.5), ("0.5 (this checkpoint has no tuned thresholds: use "
                                                      "best_<select>.pt or averaged.pt)")
        else:
            th = np.array(ckpt["thresholds"])
            source = ckpt.get("threshold_source", "tuned on the training part")
    elif thresholds in KINDS:
        if thresholds not in (ckpt.get("thresholds_by_kind") or {}):
            raise ProtganError(f"--threshold {thresholds}: {checkpoint} has no such thresholds (made before they "
                               f"were kept, or not the evaluated checkpoint)")
        th, source = np.array(ckpt["thresholds_by_kind"][thresholds]), f"{thresholds} (kept in the checkpoint)"
    else:
        try:
            value = float(thresholds)
        except ValueError:
            raise ProtganError(f"--threshold {thresholds!r}: expected tuned, positive-proportion or a number in (0, 1)") from None
        if not 0 < value < 1:
            raise ProtganError(f"--threshold {thresholds!r}: expected a number in (0, 1)")
        th, source = np.full(len(classes), value), f"{value:g} for every class"
    if batch_size < 1:
        raise ProtganError(f"--batch-size {batch_size}: must be >= 1")
    files = collect_inputs(inputs)
    data = _Stacks(files, ckpt["channels"], ckpt["size"])
    accel = Accel.for_device(resolve_device(device), None)
    model = accel.prepare_model(model_from_checkpoint(ckpt)).eval()
    if heatmaps is not None and fcn_network(model) is None:
        raise ProtganError(f"--heatmaps {heatmaps}: {ckpt['meta']['model']} makes no heat maps; use an fcn13 checkpoint")
    truth = _known_labels(inputs) if heatmaps is not None else {}
    loader = make_loader(data, batch_size, shuffle=False, workers=workers, pin_memory=accel.device.type == "cuda")
    probs = []
    done = 0
    with torch.no_grad():
        for x, _ in loader:
            with accel.autocast():
                if heatmaps is None:
                    logits = None
                    p_batch = tta_probs(model, accel.batch(x), tta)
                else:  # one pass: the maps, and the confidences as their maxima
                    maps = fcn_maps(model, accel.batch(x))
                    logits = maps.amax(dim=(2, 3))
            probs.append((p_batch if logits is None else torch.sigmoid(logits.float())).cpu())
            if heatmaps is not None:
                ids = data.ids[done:done + len(x)]
                write_heatmaps(heatmaps, ids, x.numpy(), tuple(ckpt["channels"]), torch.sigmoid(maps.float()).cpu().numpy(),
                               probs[-1].numpy(), th, ckpt["class_names"],
                               true_names=[[class_name(c) for c in truth[i] if c in classes] if i in truth else None
                                           for i in ids] if truth else None)
            done += len(x)
    p = torch.cat(probs).numpy()
    pred = apply_thresholds(p, th)
    out = [Prediction(id_, [classes[j] for j in np.flatnonzero(pred[i])],
                      {classes[j]: float(p[i, j]) for j in range(len(classes))}) for i, id_ in enumerate(data.ids)]
    info = {"classes": classes, "names": ckpt["class_names"], "thresholds": th.tolist(), "threshold_source": source,
            "model": ckpt["meta"]["model"], "channels": ckpt["channels"], "size": ckpt["size"], "tta": tta}
    if heatmaps is not None:
        info["heatmaps"] = str(heatmaps)
    return out, info


def _known_labels(inputs: Sequence[str | os.PathLike]) -> dict[str, tuple[int, ...]]:
    """Labels of the inputs that come with a train.csv (shown as "true:" on the heat-map figures)."""
    known: dict[str, tuple[int, ...]] = {}
    for item in inputs:
        table = Path(item) / LABEL_FILE
        if Path(item).is_dir() and table.exists():
            ids, targets = read_label_table(table)
            known.update(zip(ids, (tuple(t) for t in targets)))
    return known


def write_submission(path: str | os.PathLike, predictions: Sequence[Prediction]) -> None:
    """Kaggle's format: header `Id,Predicted`, labels space-separated (empty when none is predicted)."""
    lines = ["Id,Predicted"] + [f"{p.id},{' '.join(str(c) for c in p.labels)}" for p in predictions]
    with atomic_path(path, suffix=".csv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
