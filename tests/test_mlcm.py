"""The multi-label confusion matrix (Heydarian et al. 2022) and accuracy by labels per image."""

from __future__ import annotations

import numpy as np

from protgan.classify.mlcm import accuracy_by_label_count, mlcm, normalized, write_label_reports


def multi_hot(sets, c):
    y = np.zeros((len(sets), c), np.uint8)
    for i, s in enumerate(sets):
        y[i, list(s)] = 1
    return y


def test_hand_worked_example():
    # 4 classes; index 4 is the NTL row / NPL column
    true = [{0}, {0}, {1}, set(), set(), {0, 1}, {0, 1}, {0, 1}, {0, 1}, {0, 1}]
    pred = [{0}, {0, 1}, set(), {2}, set(), {0}, {0, 2}, {2}, {0, 1, 2}, {0, 2, 3}]
    # 1 [0,0]   2 [0,0] [0,1]   3 [1,NPL]   4 [NTL,2]   5 [NTL,NPL]   6 [0,0] [1,NPL]
    # 7 [0,0] [1,2] (missed 1 paired with FP 2)   8 [0,2] [1,2] (both missed, one FP)
    # 9 [0,0] [1,1] [0,2] [1,2] (FP with nothing missed: against every true label)
    # 10 [0,0]; FP 2 takes the missed 1 -> [1,2]; FP 3, nothing left missed -> [0,3] [1,3]
    expected = np.array([
        [6, 1, 2, 1, 0],
        [0, 1, 4, 1, 2],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 1, 0, 1],
    ])
    cm = mlcm(multi_hot(true, 4), multi_hot(pred, 4))
    assert cm.tolist() == expected.tolist()
    pct = normalized(cm)
    assert np.allclose(pct[0], 100 * expected[0] / 10) and np.allclose(pct[1], 100 * expected[1] / 8)
    assert pct[2].sum() == 0  # an empty row stays zero


def reference_mlcm(lt: np.ndarray, lp: np.ndarray) -> np.ndarray:
    """Index-by-index transliteration of the published algorithm (true/pred 'checked' flags)."""
    n, c = lt.shape
    cm = np.zeros((c + 1, c + 1), int)
    for i in range(n):
        nt, npd = lt[i].sum(), lp[i].sum()
        if nt == 0:
            if npd == 0:
                cm[c, c] += 1
            for k in range(c):
                if lp[i, k]:
                    cm[c, k] += 1
        elif nt == 1 or npd == 0:
            for j in range(c):
                if lt[i, j]:
                    if npd == 0:
                        cm[j, c] += 1
                    else:
                        for k in range(c):
                            if lp[i, k]:
                                cm[j, k] += 1
        else:
            tc, pc = np.zeros(c, bool), np.zeros(c, bool)
            for j in range(c):
                if lt[i, j] and lp[i, j]:
                    cm[j, j] += 1
                    tc[j] = pc[j] = True
            for k in range(c):
                if lp[i, k] and not pc[k]:
                    for j in range(c):
                        if lt[i, j] and not tc[j]:
                            cm[j, k] += 1
                            pc[k] = tc[j] = True
            for k in range(c):
                if lp[i, k] and not pc[k]:
                    for j in range(c):
                        if lt[i, j]:
                            cm[j, k] += 1
                            pc[k] = tc[j] = True
            for j in range(c):
                if lt[i, j] and not tc[j]:
                    cm[j, c] += 1
    return cm


def test_matches_the_published_algorithm_on_random_labels():
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = (rng.random((150, 5)) < 0.3).astype(np.uint8)
        p = (rng.random((150, 5)) < 0.3).astype(np.uint8)
        assert np.array_equal(mlcm(t, p), reference_mlcm(t, p))


def test_perfect_prediction_is_diagonal():
    t = multi_hot([{0}, {1, 2}, {2}, set()], 3)
    cm = mlcm(t, t)
    assert np.array_equal(cm, np.diag([1, 1, 2, 1]))


def test_accuracy_by_label_count():
    true = [{0}, {1}, {0, 1}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}]
    pred = [{0}, {2}, {0, 1}, {0}, {0, 1, 2}, {0, 1, 2}, {0}]
    rows = {r.n_labels: r for r in accuracy_by_label_count(multi_hot(true, 5), multi_hot(pred, 5))}
    assert list(rows) == ["1", "2", "3", "4", "5+"]
    assert rows["1"].images == 2 and rows["1"].exact_match == 0.5 and rows["1"].mean_dice == 0.5
    assert rows["2"].exact_match == 0.5 and np.isclose(rows["2"].mean_dice, (1 + 2 / 3) / 2)
    assert rows["3"].exact_match == 1.0
    assert rows["4"].exact_match == 0.0 and np.isclose(rows["4"].mean_dice, 6 / 7)
    assert np.isclose(rows["1"].share, 2 / 7)


def test_reports_written(tmp_path):
    rng = np.random.default_rng(1)
    t = (rng.random((60, 4)) < 0.35).astype(np.uint8)
    p = np.where(rng.random((60, 4)) < 0.8, t, 1 - t)
    rep = write_label_reports(tmp_path, t, p, ["Nucleoplasm", "Cytosol", "Golgi, apparatus", "Mito"], prefix="val_")
    paths = {k: tmp_path / v for k, v in rep["files"].items()}
    assert rep["mlcm"] == mlcm(t, p).tolist()
    for key, path in paths.items():
        assert path.exists() and path.stat().st_size > 0, key
    lines = paths["mlcm_csv"].read_text().splitlines()
    assert lines[0].endswith("NPL (no predicted label)") and '"Golgi, apparatus"' in lines[3]
    body = np.array([[int(v) for v in ln.rsplit(",", 5)[1:]] for ln in lines[1:]])
    assert np.array_equal(body, mlcm(t, p))
    assert paths["by_label_count_csv"].read_text().startswith("labels_per_image,images,share,exact_match,mean_dice")
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind


def test_fold_reports_merge_to_the_whole_set(tmp_path):
    from protgan.classify.mlcm import merge_label_reports

    rng = np.random.default_rng(2)
    t = (rng.random((90, 3)) < 0.4).astype(np.uint8)
    p = np.where(rng.random((90, 3)) < 0.75, t, 1 - t)
    names = ["A", "B", "C"]
    parts = [write_label_reports(tmp_path / f"f{k}", t[k::3], p[k::3], names) for k in range(3)]
    md = merge_label_reports(tmp_path, parts, names)
    whole = mlcm(t, p)
    merged = np.array([[int(v) for v in ln.split(",")[1:]] for ln in (tmp_path / "val_mlcm.csv").read_text().splitlines()[1:]])
    assert np.array_equal(merged, whole)
    rows = {r.n_labels: r for r in accuracy_by_label_count(t, p)}
    lines = (tmp_path / "val_by_label_count.csv").read_text().splitlines()[1:]
    for ln in lines:
        k, n, share, exact, dice = ln.split(",")
        assert int(n) == rows[k].images and np.isclose(float(exact), rows[k].exact_match, atol=1e-4, equal_nan=True)
        assert np.isclose(float(dice), rows[k].mean_dice, atol=1e-4, equal_nan=True)
    assert "| Labels per image |" in md and "NPL column" in md
