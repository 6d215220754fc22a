"""`--balance median:N`: over/undersampling around a target count (Al-joudi & Arif 2023, 3.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protgan.classify.balance import (
    BalanceSpec, ResampledDataset, balance_indices, dihedral, parse_balance,
)
from protgan.core.errors import ProtganError


def label_table() -> np.ndarray:
    """12 images {0}, 3 images {1}, 1 image {0, 2}: class counts 13, 3, 1."""
    rows = [[1, 0, 0]] * 12 + [[0, 1, 0]] * 3 + [[1, 0, 1]]
    return np.array(rows, dtype=np.uint8)


def test_counts_on_a_constructed_table():
    y = label_table()
    for seed in range(5):  # the counts are fixed by the rules, whatever images the seed picks
        r = balance_indices(y, BalanceSpec(target=5), seed=seed)
        # undersampling: class 0 has 8 too many; the {0,2} image carries a minority class, so only
        # single-{0} images go: 12 - 8 = 4 left (+ the {0,2} one) -> 5.
        # oversampling, rarest first: class 2 needs 4 more -> the {0,2} image 4 times (class 0 -> 9);
        # class 1 needs 2 more -> two {1} images duplicated.
        assert r.removed == 8 and r.added == 6
        assert r.counts_before.tolist() == [13, 3, 1]
        assert r.counts_after.tolist() == [9, 5, 5]
        assert len(r.indices) == 16 - 8 + 6
        assert (y[r.indices].sum(axis=0) == r.counts_after).all()
        assert r.duplicate.sum() == 6
        assert np.count_nonzero(r.indices == 15) == 5  # the {0,2} image: original + 4 copies
        kept_singles = {int(i) for i in r.indices if i < 12}
        assert len(kept_singles) == 4 and not r.duplicate[r.indices < 12].any()


def test_rare_class_images_repeated_evenly_and_median_target():
    y = np.zeros((30, 2), np.uint8)
    y[:27, 0] = 1
    y[27:, 1] = 1  # 3 images of class 1
    r = balance_indices(y, BalanceSpec(target=None))  # median of (27, 3) = 15
    assert r.target == 15
    assert r.counts_after.tolist() == [15, 15]
    reps = [np.count_nonzero(r.indices == i) for i in (27, 28, 29)]
    assert sorted(reps) == [5, 5, 5]


def test_same_seed_same_result_and_counts_logged():
    y = (np.random.default_rng(1).random((200, 6)) < [0.6, 0.2, 0.05, 0.3, 0.02, 0.1]).astype(np.uint8)
    a = balance_indices(y, BalanceSpec(50), seed=3)
    b = balance_indices(y, BalanceSpec(50), seed=3)
    assert np.array_equal(a.indices, b.indices)
    assert "removed" in a.summary() and "duplicated" in a.summary()
    rows = a.table(["a", "b", "c", "d", "e", "f"])
    assert rows[0][0] == "a" and rows[0][1] == int(y[:, 0].sum()) and rows[0][2] == int(a.counts_after[0])
    spread_before = a.counts_before.max() / a.counts_before.min()
    spread_after = a.counts_after.max() / a.counts_after.min()
    assert spread_after < spread_before / 3


def test_parse_balance():
    assert parse_balance("none") is None and parse_balance(None) is None
    assert parse_balance("median:500") == BalanceSpec(500)
    assert parse_balance("median") == BalanceSpec(None)
    for bad in ("mean:5", "median:", "median:-1", "median:0", "500"):
        with pytest.raises(ProtganError, match="--balance"):
            parse_balance(bad)


def test_duplicates_get_one_geometric_transform():
    img = torch.arange(2 * 4 * 4, dtype=torch.uint8).view(2, 4, 4)
    variants = [dihedral(img, op) for op in range(6)]
    assert torch.equal(variants[0], img)
    assert torch.equal(variants[4], img.flip(-1)) and torch.equal(variants[5], img.flip(-2))
    assert len({v.numpy().tobytes() for v in variants}) == 6

    class Base(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, k):
            return img + k, torch.tensor([k])

    y = np.array([[1, 0], [1, 0], [0, 1]])
    r = balance_indices(y, BalanceSpec(4), seed=0)
    torch.manual_seed(0)
    ds = ResampledDataset(Base(), r)
    allowed = lambda k: {dihedral(img + k, op).numpy().tobytes() for op in range(6)}
    seen_ops = set()
    for pos in range(len(ds)):
        x, lab = ds[pos]
        k = int(r.indices[pos])
        assert lab.item() == k
        if not r.duplicate[pos]:
            assert torch.equal(x, img + k)
        else:
            assert x.numpy().tobytes() in allowed(k)
            seen_ops.add(x.numpy().tobytes())
    assert r.duplicate.sum() == 2 + 3 and len(seen_ops) >= 2  # class 0: 2 -> 4, class 1: 1 -> 4


def test_gapnet_run_with_balance_logs_counts_and_heatmaps_need_an_fcn(tmp_path, capsys):
    import json

    from tests.cli_helpers import assert_one_line_error, run_cli
    from tests.conftest import make_dataset

    targets = [(0,)] * 10 + [(25,)] * 4 + [(0, 25)] * 2 + [(21,)] * 2 + [(23,)] * 2
    data = make_dataset(tmp_path / "data", targets, size=32)
    run = tmp_path / "run"
    code, out, err = run_cli(["classify", "--data", str(data), "--model", "gapnet-pl", "--out", str(run), "--size", "32",
                              "--folds", "2", "--fold", "0", "--epochs", "1", "--batch-size", "8", "--workers", "0",
                              "--device", "cpu", "--classes", "0,21,23,25", "--balance", "median:4",
                              "--threshold-split", "0"], capsys)  # the whole training part is balanced
    assert code == 0, err
    assert "balance to 4 per class" in out and "class counts (before -> after)" in out
    bal = json.loads((run / "fold_0" / "balance.json").read_text())
    assert bal["target"] == 4 and bal["classes"] == [0, 21, 23, 25]
    assert min(bal["counts_after"]) >= 4 and bal["counts_after"][0] < bal["counts_before"][0]
    ids = json.loads((run / "fold_0" / "ids.json").read_text())
    assert len(ids["train"]) == sum(1 for _ in ids["train"]) and len(set(ids["train"])) < len(ids["train"])
    assert not set(ids["train"]) & set(ids["val"])  # resampling never touches validation
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["optimizer"], cfg["lr"], cfg["momentum"], cfg["lr_schedule"], cfg["plateau_factor"]) == (
        "sgd", 0.1, 0.9, "plateau", 0.5)
    code, _, err = run_cli(["predict", str(data), "--checkpoint", str(run / "fold_0" / "best_macro_f1.pt"),
                            "--heatmaps", str(tmp_path / "hm"), "--device", "cpu"], capsys)
    assert_one_line_error(code, err, "--heatmaps", "fcn13")
    assert not (tmp_path / "hm").exists()
