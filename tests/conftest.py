"""Small datasets in the HPA layout, made by the tests themselves (no dependency on ../shared)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

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


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module (tiny models on a shared 2-core machine: less waiting). Module
    scope, so module-scoped fixtures (a reference run) use the same thread count as the tests compared
    with them: a different count changes float reductions, hence the trained weights."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_gan_config(data: Path, out: Path, **kw):
    """A TrainGanConfig for CPU tests: 32 px, narrow networks, nothing written unless asked; `kw` overrides."""
    from protgan.gan.config import TrainGanConfig

    base = dict(data=str(data), class_index=0, out=str(out), size=32, batch_size=4, steps=2, g_width=16,
                d_width=16, log_every=1, ckpt_every=0, sample_every=0, workers=0, device="cpu", n_samples=4)
    return TrainGanConfig(**{**base, **kw})


def register_tiny_classifier(name: str) -> str:
    """Register (once) a tiny classifier backbone under `name` (one stride-2 conv, no batch norm, so averaged
    weights stay exactly the mean of the epochs) for fast classify tests; returns the name."""
    from torch import nn

    from protgan.classify.models import list_models, register_model

    class TinyNet(nn.Module):
        def __init__(self, in_chans: int) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(in_chans, 8, 3, stride=2, padding=1), nn.ReLU())
            self.num_features = 8

        def forward(self, x):
            return self.conv(x)

    if name not in list_models():
        @register_model(name, recipe="paper28", min_size=8)
        def _tiny(in_chans: int, pretrained: bool) -> nn.Module:
            """Tiny test network."""
            return TinyNet(in_chans)
    return name


def read_metrics(run: Path) -> list[dict[str, str]]:
    """A train-gan run's metrics.csv, one dict per logged step."""
    import csv

    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def train_straight_and_split(make_config: Callable[..., Any], tmp_path: Path, stop: int, steps: int,
                             **kw: Any) -> tuple[Path, Path]:
    """Train `steps` steps uninterrupted (tmp_path/straight), and `stop` steps then a resumed run to `steps`
    (tmp_path/split); `make_config(out, steps=..., **kw)` builds each run's config. Returns the two folders."""
    from protgan.gan.train import GanTrainer

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert GanTrainer(make_config(straight, steps=steps, **kw)).fit().step == steps
    assert GanTrainer(make_config(split, steps=stop, **kw)).fit().step == stop
    assert GanTrainer(make_config(split, steps=steps, **kw)).fit().step == steps  # --resume auto
    assert [r["step"] for r in read_metrics(split)] == [str(s) for s in range(1, steps + 1)]
    return straight, split


def assert_same_gan_runs(straight: Path, split: Path, keys: Sequence[str]) -> dict:
    """A resumed train-gan run (`split`) equals the uninterrupted one: metrics.csv's `keys` per step, ADA's p,
    and every tensor of G, D and G_ema. Returns the straight run's last checkpoint (for further checks)."""
    import torch

    from protgan.gan import load_checkpoint

    a, b = read_metrics(straight), read_metrics(split)
    assert [r["step"] for r in b] == [r["step"] for r in a]
    for ra, rb in zip(a, b):
        for key in keys:
            assert float(ra[key]) == pytest.approx(float(rb[key]), abs=1e-6), (ra["step"], key)
    sa, sb = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (straight, split))
    assert sa["augment"]["p"] == pytest.approx(sb["augment"]["p"]) and sa["augment"]["n"] == sb["augment"]["n"]
    for key in ("G", "D", "G_ema"):
        for name, tensor in sa[key].items():
            torch.testing.assert_close(tensor, sb[key][name], atol=1e-6, rtol=0)
    return sa
