"""Small datasets in the HPA layout, made by the tests themselves (no dependency on ../shared)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from protgan.data import write_label_table, write_png

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def make_dataset(
    root: Path,
    targets: Sequence[Sequence[int]],
    size: int = 32,
    channels: Sequence[str] = ("red", "green", "blue", "yellow"),
    subdir: bool = True,
    seed: int = 0,
    ext: str = ".png",
) -> Path:
    """Write train.csv and one random-textured image per (id, channel); returns root."""
    rng = np.random.default_rng(seed)
    img_dir = root / "train" if subdir else root
    img_dir.mkdir(parents=True, exist_ok=True)
    ids = [f"img{i:04d}" for i in range(len(targets))]
    for id_ in ids:
        for ch in channels:
            img = rng.integers(0, 256, (size, size), dtype=np.uint8)
            path = img_dir / f"{id_}_{ch}{ext}"
            if ext == ".png":
                write_png(path, img)
            else:
                import cv2

                cv2.imwrite(str(path), img)
    write_label_table(root / "train.csv", ids, targets)
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    targets = [(0,), (25,), (0, 25), (21,), (2, 0), (23,), (0,), (25, 21), (2,), (23, 0), (0,), (21,)]
    return make_dataset(tmp_path / "data", targets)


@pytest.fixture
def shared_dir() -> Path:
    if not (SHARED / "hpa-sample" / "train.csv").exists():
        pytest.skip("../shared/hpa-sample not available")
    return SHARED


def record_generators(syn: Path, ids_by_class: dict, fold: int | None = None, folds: int | None = None) -> Path:
    """Give a hand-made synthetic set SYN the provenance `protgan synth` writes: per class, the real Ids its
    generator was trained on (manifest.json's generator record + generator_ids.json)."""
    from protgan.core.atomic import write_json
    from protgan.data.provenance import GENERATOR_IDS_FILE, MANIFEST, ids_record

    classes = []
    for c, ids in ids_by_class.items():
        rec = ids_record(ids, fold, folds)
        classes.append({"class_index": int(c), "generator": {k: v for k, v in rec.items() if k != "train_ids"}})
    write_json(syn / MANIFEST, {"tool": "protgan synth", "classes": classes})
    write_json(syn / GENERATOR_IDS_FILE, {str(c): sorted(ids) for c, ids in ids_by_class.items()})
    return syn
