"""One image-selection rule for every stage: train-gan and fid pick the same real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protgan.core.errors import ProtganError
from protgan.data import open_dataset, resolve_subset
from protgan.data.selection import select_class_ids
from protgan.evaluation import fid as F
from protgan.gan.train import GanTrainer, TrainGanConfig
from tests.conftest import make_dataset

# top5 of this table is 0, 25, 2, 21, 23; class 27 is outside it, so (0, 27) counts as "only 0" within top5
TARGETS = ([(0,)] * 6 + [(0, 27)] * 2 + [(0, 25)] * 2 + [(25,)] * 5 + [(21,)] * 4 + [(2,)] * 4 + [(23,)] * 3
           + [(2, 0)] * 1)


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("sel") / "real", TARGETS, size=32, channels=("green",))


def test_only_is_judged_within_the_subset(real):
    ds = open_dataset(real)
    top5 = resolve_subset("top5", ds.targets)
    assert top5 == [0, 25, 2, 21, 23]  # by count: 11, 7, 5, 4, 3 (ties by index)
    only0 = select_class_ids(ds.ids, ds.targets, 0, top5, "only")
    assert len(only0) == 8  # 6 x (0,) + 2 x (0, 27)
    assert len(select_class_ids(ds.ids, ds.targets, 0, list(range(28)), "only")) == 6
    assert len(select_class_ids(ds.ids, ds.targets, 0, top5, "any")) == 11
    with pytest.raises(ProtganError, match="--select 'most'"):
        select_class_ids(ds.ids, ds.targets, 0, top5, "most")


def test_train_gan_and_fid_select_the_same_real_images(real, tmp_path, monkeypatch):
    cfg = TrainGanConfig(data=str(real), class_index=0, out=str(tmp_path / "run"), size=32, channels=["green"],
                         classes="top5", select="only", batch_size=2, steps=1, g_width=8, d_width=8, workers=0,
                         device="cpu", n_samples=2)
    cfg.validate()
    gan_ids = list(GanTrainer(cfg).dataset.ids)

    fake = make_dataset(tmp_path / "fake", [(c,) for c in (0, 25, 21, 2, 23) for _ in range(2)], size=32,
                        channels=("green",), seed=1)
    seen: dict[str, list[str]] = {}

    def recording_features(ds, ids, channels, size, extractor, *args, **kwargs):
        seen.setdefault(str(ds.root), []).append(list(ids))
        return np.random.default_rng(len(seen)).normal(size=(len(ids), 4))

    class Dummy:
        name, source, dim = "dummy", "", 4

    monkeypatch.setattr(F, "dataset_features", recording_features)
    monkeypatch.setattr(F, "make_extractor", lambda *a, **k: Dummy())
    F.run_fid(F.FidConfig(real=str(real), fake=str(fake), classes="top5", select="only", kid_subsets=2,
                          device="cpu"))
    fid_ids_class0 = seen[str(open_dataset(real).root)][0]  # classes in subset order: 0 first
    assert sorted(fid_ids_class0) == sorted(gan_ids)
    assert len(gan_ids) == 8
