from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from protgan.data import (
    CLASS_NAMES,
    ChannelStackDataset,
    build_cache,
    find_cache,
    load_or_make_folds,
    make_loader,
    open_dataset,
    parse_channels,
    read_channel,
    read_label_table,
    resolve_class,
    resolve_subset,
    to_uint8,
)
from protgan.core.errors import ProtganError
from tests.conftest import make_dataset


def test_class_names_and_resolution() -> None:
    assert len(CLASS_NAMES) == 28
    assert CLASS_NAMES[0] == "Nucleoplasm" and CLASS_NAMES[25] == "Cytosol" and CLASS_NAMES[27] == "Rods & rings"
    assert resolve_class("0") == 0
    assert resolve_class("nucleoplasm") == 0
    assert resolve_class("PLASMA membrane") == 21
    assert resolve_class("plasma_membrane") == 21
    with pytest.raises(ProtganError, match="unknown class"):
        resolve_class("Nucleus")
    with pytest.raises(ProtganError, match="out of range"):
        resolve_class("28")


def test_subsets_are_computed_not_hardcoded() -> None:
    targets = [(3,), (3, 4), (4,), (3,), (7,)]
    assert resolve_subset("top2", targets) == [3, 4]
    assert resolve_subset("all") == list(range(28))
    assert resolve_subset("0,Cytosol,0") == [0, 25]


def test_top5_on_real_label_table(shared_dir: Path) -> None:
    ids, targets = read_label_table(shared_dir / "hpa-sample" / "train.csv")
    assert len(ids) == 31072
    assert set(resolve_subset("top5", targets)) == {0, 25, 21, 2, 23}
    assert resolve_subset("top5", targets)[0] == 0  # Nucleoplasm is the most frequent


def test_channels_fixed_order() -> None:
    assert parse_channels("rgb") == ("red", "green", "blue")
    assert parse_channels("yellow,red") == ("red", "yellow")
    with pytest.raises(ProtganError, match="--channels"):
        parse_channels("purple")


def test_open_dataset_layouts(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a", [(0,), (1, 2)], subdir=True)
    b = make_dataset(tmp_path / "b", [(0,), (1, 2)], subdir=False, ext=".tif")
    for root in (a, b):
        ds = open_dataset(root)
        assert ds.ids == ["img0000", "img0001"] and ds.targets == [(0,), (1, 2)]
        assert ds.channels_found() == ("red", "green", "blue", "yellow")
        assert read_channel(ds.path("img0001", "green")).shape == (32, 32)
        assert read_channel(ds.path("img0001", "green"), 16).shape == (16, 16)


def test_missing_yellow_is_fine_when_not_needed(tmp_path: Path) -> None:
    ds = open_dataset(make_dataset(tmp_path / "d", [(0,), (1,)], channels=("red", "green", "blue")))
    ds.require_channels(parse_channels("rgb"))
    with pytest.raises(ProtganError, match="missing yellow channel"):
        ds.require_channels(parse_channels("rgby"))


def test_16bit_scaling_rule(tmp_path: Path) -> None:
    import cv2

    img16 = np.array([[0, 257, 65535, 32896]], np.uint16)
    assert to_uint8(img16).tolist() == [[0, 1, 255, 128]]
    path = tmp_path / "x_green.tif"
    cv2.imwrite(str(path), np.full((64, 64), 65535, np.uint16))
    out = read_channel(path, 32)
    assert out.dtype == np.uint8 and out.shape == (32, 32) and int(out.max()) == 255


def test_restrict_drops_and_counts(tiny_dataset: Path) -> None:
    ds = open_dataset(tiny_dataset)
    sub = ds.restrict([0, 25])
    assert all(set(t) <= {0, 25} for t in sub.targets)
    assert sub.dropped_unlabelled == 4  # (21,), (23,), (21,), (2,)
    assert len(sub) == len(ds) - 4


def test_folds_deterministic_and_written_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ids = [f"i{k}" for k in range(100)]
    targets = [tuple(sorted({int(c) for c in rng.choice([0, 2, 21, 23, 25], size=rng.integers(1, 3))})) for _ in ids]
    p = tmp_path / "folds.csv"
    f1 = load_or_make_folds(ids, targets, p, k=5, seed=3)
    assert p.exists()
    assert sorted(set(f1.fold_of.values())) == [0, 1, 2, 3, 4]
    sizes = np.bincount(list(f1.fold_of.values()))
    assert sizes.min() >= 18 and sizes.max() <= 22
    p2 = tmp_path / "folds2.csv"
    assert load_or_make_folds(ids, targets, p2, k=5, seed=3).fold_of == f1.fold_of
    assert load_or_make_folds(ids, targets, p, k=5, seed=99).fold_of == f1.fold_of  # read, not re-split
    train, val = f1.split(2, ids)
    assert set(train).isdisjoint(val) and len(train) + len(val) == 100
    with pytest.raises(ProtganError, match="has 5 folds"):
        load_or_make_folds(ids, targets, p, k=4)


def test_cache_matches_png_and_resumes(tiny_dataset: Path) -> None:
    ds = open_dataset(tiny_dataset)
    chans = parse_channels("rgby")
    png = ChannelStackDataset(ds, chans, 16, [0, 25], cache=None)
    assert find_cache(ds, chans, 16) is None
    cache = build_cache(ds, 16, chans, workers=2, chunk=5)
    assert cache.array.shape == (12, 4, 16, 16)
    cached = ChannelStackDataset(ds, parse_channels("rgb"), 16, [0, 25])  # auto finds the rgby cache
    assert cached.cache is not None
    for k in range(len(ds)):
        x_png, y_png = png[k]
        x_c, y_c = cached[k]
        assert x_c.dtype == torch.uint8 and x_c.shape == (3, 16, 16)
        assert torch.equal(x_c, x_png[:3]) and torch.equal(y_c, y_png)
    # a loader over it, with workers (the cache must pickle without its mapping)
    loader = make_loader(cached, batch_size=4, workers=2, seed=0)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 3, 16, 16) and yb.shape == (4, 2)


def test_cache_build_resumes_after_interrupt(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import protgan.data.cache as cache_mod

    ds = open_dataset(tiny_dataset)
    chans = parse_channels("rgb")
    calls = {"n": 0}
    real = cache_mod.read_stack

    def flaky(ds_, id_, channels, size):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(ds_, id_, channels, size)

    monkeypatch.setattr(cache_mod, "read_stack", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_cache(ds, 16, chans, workers=1, chunk=5)
    assert find_cache(ds, chans, 16) is None  # nothing half-written is visible
    monkeypatch.setattr(cache_mod, "read_stack", real)
    done = []
    cache = build_cache(ds, 16, chans, workers=1, chunk=5, progress=lambda d, t: done.append(d))
    assert done[0] == 5  # resumed after the first flushed chunk
    expect = np.stack([real(ds, i, chans, 16) for i in ds.ids])
    assert np.array_equal(np.asarray(cache.array), expect)


def test_cached_loader_gathers_in_a_thread_with_same_batches(tiny_dataset: Path) -> None:
    from protgan.data.loader import PrefetchLoader

    ds = open_dataset(tiny_dataset)
    chans = parse_channels("rgb")
    build_cache(ds, 16, chans)
    cached = ChannelStackDataset(ds, chans, 16, [0, 25])
    assert cached.gathers_batches
    threaded = make_loader(cached, batch_size=5, seed=7)
    assert isinstance(threaded, PrefetchLoader) and len(threaded) == 3
    plain = make_loader(ChannelStackDataset(ds, chans, 16, [0, 25], cache=None), batch_size=5, workers=0, seed=7)
    for (xa, ya), (xb, yb) in zip(threaded, plain, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_prefetch_loader_reraises_errors(tiny_dataset: Path) -> None:
    from protgan.data.loader import PrefetchLoader

    class Broken(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, k: int):
            if k == 2:
                raise ProtganError("bad sample")
            return torch.zeros(1)

    loader = PrefetchLoader(torch.utils.data.DataLoader(Broken(), batch_size=1))
    with pytest.raises(ProtganError, match="bad sample"):
        list(loader)
