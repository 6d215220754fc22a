"""Precision / recall, near-copies and the metric registry against direct implementations of their
definitions; train-on-synthetic-test-on-real (CAS) against a plain classify run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from protgan.core.errors import ProtganError
from protgan.evaluation import distances as D
from protgan.evaluation import memorisation as M
from protgan.evaluation.metrics import COLUMNS, MetricInputs, compute_metrics, metric_names, parse_metrics


def brute_force_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkaanniemi et al. 2019, eq. 1-2, with Python loops: f(phi, Phi) = 1 if phi is within the
    k-NN radius of some phi' in Phi (the radius: distance from phi' to its k-th nearest other member)."""

    def radii(s):
        out = []
        for i in range(len(s)):
            d = sorted(float(np.sqrt(((s[i] - s[j]) ** 2).sum())) for j in range(len(s)) if j != i)
            out.append(d[k - 1])
        return out

    def f(phi, s, r):
        return any(np.sqrt(((phi - s[j]) ** 2).sum()) <= r[j] for j in range(len(s)))

    rr, rf = radii(real), radii(fake)
    precision = sum(f(x, real, rr) for x in fake) / len(fake)
    recall = sum(f(x, fake, rf) for x in real) / len(real)
    return precision, recall


def test_precision_recall_equal_brute_force_definition():
    rng = np.random.default_rng(0)
    for n_real, n_fake, d, shift in ((40, 30, 5, 0.5), (25, 60, 3, 1.5), (50, 50, 8, 0.0)):
        real = rng.normal(size=(n_real, d))
        fake = rng.normal(size=(n_fake, d)) * 0.7 + shift
        expected = brute_force_precision_recall(real, fake)
        assert 0 < expected[0] < 1 or 0 < expected[1] < 1  # a case where the manifolds partly overlap
        assert D.precision_recall(real, fake) == pytest.approx(expected, abs=1e-12)
        # small row blocks give the same answer as one block
        radii = D.knn_radii(real, 3, block=7)
        assert D.manifold_coverage(fake, real, radii, block=4) == pytest.approx(expected[0], abs=1e-12)


def test_precision_recall_of_a_set_against_itself_and_of_disjoint_clusters():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(80, 16))
    assert D.precision_recall(x, x) == (1.0, 1.0)
    far = rng.normal(size=(80, 16)) + 50.0
    assert D.precision_recall(x, far) == (0.0, 0.0)
    with pytest.raises(ProtganError, match="k=3"):
        D.knn_radii(x[:3])


def test_knn_radii_and_nearest_neighbours_equal_direct_computation():
    rng = np.random.default_rng(2)
    x, q = rng.normal(size=(33, 4)), rng.normal(size=(21, 4))
    full = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(D.knn_radii(x, 3, block=5).numpy(), np.sort(full, axis=1)[:, 2], rtol=1e-10)
    dq = np.sqrt(((q[:, None] - x[None]) ** 2).sum(-1))
    dist, idx = D.nearest_neighbours(q, x, block=4)
    np.testing.assert_array_equal(idx, dq.argmin(1))
    np.testing.assert_allclose(dist, dq.min(1), rtol=1e-10)
    loo, loo_idx = D.nearest_neighbours(x, x, exclude_self=True, block=6)
    np.testing.assert_array_equal(loo_idx, full.argmin(1))


def test_near_copies_flag_noisy_copies_of_training_images_and_not_fresh_real_images():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(10, 12)) * 3.0
    population = lambda n: centres[rng.integers(0, 10, n)] + rng.normal(size=(n, 12))  # noqa: E731
    train, fresh = population(200), population(200)
    copies = train[rng.integers(0, 200, 150)] + rng.normal(size=(150, 12)) * 0.01
    tau = M.copy_threshold(train)
    loo = D.nearest_neighbours(train, train, exclude_self=True)[0]
    assert tau == pytest.approx(np.percentile(loo, 5))
    st_copy = M.copy_stats(copies, train)
    st_fresh = M.copy_stats(fresh, train)
    assert st_copy.share > 0.95
    assert st_fresh.share < 0.15  # about the 5% of the definition
    assert 0 <= st_copy.share_real < 0.15 and st_copy.share_real == st_fresh.share_real
    # the nearest training image of a copy is the image it was copied from
    src = np.argmin(((copies[:, None] - train[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(st_copy.nearest, src)
    assert st_copy.flagged[st_copy.most_copied(5)].all()


def test_registry_entries_and_floors():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(60, 6)), rng.normal(size=(40, 6)) + 0.3
    names = parse_metrics("fid,kid,pr,copies")
    assert set(names) <= set(metric_names())
    inputs = MetricInputs(real, fake, seed=0, kid_subsets=5)
    values = compute_metrics(names, inputs)
    assert set(values) == {c for n in names for c in COLUMNS[n]}
    a, b, fake_sub = inputs.halves()
    assert (values["precision_real_real"], values["recall_real_real"]) == D.precision_recall(a, b)
    assert (values["precision_half"], values["recall_half"]) == D.precision_recall(a, fake_sub)
    assert values["fid_real_real"] == pytest.approx(D.fid_from_features(a, b))
    assert values["near_copies"] == M.copy_stats(fake, real).share
    assert parse_metrics("pr,cas,pr") == ["pr", "cas"]
    with pytest.raises(ProtganError, match="--metrics"):
        parse_metrics("fid,is")


def test_plot_copies_writes_a_png(tmp_path):
    rng = np.random.default_rng(5)
    stacks = [rng.integers(0, 255, (3, 16, 16), dtype=np.uint8) for _ in range(3)]
    path = M.plot_copies(tmp_path / "copies.png", [("class 0", stacks, stacks[::-1], [0.1, 0.5, 2.0])],
                         ("red", "green", "blue"), [1.0])
    assert path.is_file() and path.stat().st_size > 1000


def _cas_sets(tmp_path, n_syn: int = 12):
    """A real dataset (classes 0 and 2, 32 px, rgb) and a synthetic one with n_syn images per class."""
    from tests.conftest import make_dataset

    targets = [(0,)] * 10 + [(2,)] * 8 + [(0, 2)] * 2 + [(5,)] * 2
    real = make_dataset(tmp_path / "real", targets, channels=("red", "green", "blue"), seed=1)
    syn = make_dataset(tmp_path / "syn_tmp", [(0,)] * n_syn + [(2,)] * n_syn, channels=("red", "green", "blue"), seed=2)
    # synthetic Ids as synth writes them (they must not collide with the real ones)
    fake = tmp_path / "syn"
    (fake / "train").mkdir(parents=True)
    for f in sorted((syn / "train").iterdir()):
        new = f.name.replace("img", "syn-")
        f.rename(fake / "train" / new)
    from protgan.data import open_dataset, write_label_table

    ds = open_dataset(syn)
    ids = [i.replace("img", "syn-") for i in ds.ids]
    write_label_table(fake / "train.csv", ids, ds.targets)
    return real, fake


def test_cas_real_on_real_equals_a_plain_classify_run(tmp_path):
    """The real arm of CAS, when it takes every real training image (n_c = all), trains exactly the
    classify run on the shared folds: same images, order, fold and seed -> the same validation metrics."""
    from protgan.classify.train import ClassifyConfig, run_classify
    from protgan.experiments.cas import CasConfig, run_cas

    real, fake = _cas_sets(tmp_path, n_syn=12)
    common = dict(classes="0,2", channels="red,green,blue", size=32, folds=2, fold=0, epochs=1, batch_size=8,
                  augment="none", pretrained=True, seed=0, workers=0, device="cpu")
    cfg = CasConfig(real=str(real), fake=str(fake), out=str(tmp_path / "cas"), classes=[0, 2],
                    channels=("red", "green", "blue"), size=32, select="any", epochs=1, batch_size=8, folds=2,
                    fold=0, device="cpu")
    res = run_cas(cfg, log=lambda m: None)
    plain = tmp_path / "plain"
    run_classify(ClassifyConfig(data=str(real), out=str(plain), model="efficientnet_lite0", **common), log=lambda m: None)
    ours = json.loads((tmp_path / "cas" / "real" / "run" / "fold_0" / "result.json").read_text())
    theirs = json.loads((plain / "fold_0" / "result.json").read_text())
    assert ours["n_train_real"] == theirs["n_train_real"] and ours["n_val"] == theirs["n_val"]
    assert ours["val"] == theirs["val"] and ours["thresholds"] == theirs["thresholds"]
    assert res.macro_f1["real"] == theirs["val"]["tuned"]["macro_f1"]
    assert res.f1["real"] == theirs["val"]["tuned"]["per_class"]["f1"]
    # the synthetic arm: as many images per class, only synthetic ones, validated on the same real fold
    syn_ids = json.loads((tmp_path / "cas" / "synthetic" / "run" / "fold_0" / "ids.json").read_text())
    real_ids = json.loads((tmp_path / "cas" / "real" / "run" / "fold_0" / "ids.json").read_text())
    assert all(i.startswith("syn-") for i in syn_ids["train"]) and syn_ids["val"] == real_ids["val"]
    assert not any(i.startswith("syn-") for i in real_ids["train"])
    # resumable: a second call trains nothing and reads the same numbers
    again = run_cas(cfg, log=lambda m: None)
    assert again.f1 == res.f1


def test_synth_filter_by_copies_drops_the_generators_copies_of_training_images(tmp_path):
    """Training images that are exact copies of candidates 1, 4 and 6: `--filter-by copies` drops those three."""
    from protgan.data import open_dataset, read_channel, write_label_table, write_png
    from protgan.gan.synth import SynthConfig, run_synth, synth_id
    from tests.conftest import make_dataset
    from tests.test_synth import make_run

    data = make_dataset(tmp_path / "data", [(0,)] * 10, channels=("red", "green", "blue"), seed=4)
    runs = tmp_path / "runs"
    make_run(runs, 0, 0, data=data)
    run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "all"), per_class=8, device="cpu"))
    ids, targets = open_dataset(data).ids, [(0,)] * 10
    for k in (1, 4, 6):  # the generator's candidates 1, 4, 6 become training images
        for ch in ("red", "green", "blue"):
            img = read_channel(tmp_path / "all" / "train" / f"{synth_id(0, 0, k)}_{ch}.png")
            write_png(data / "train" / f"copy{k}_{ch}.png", img)
        ids.append(f"copy{k}")
        targets.append((0,))
    write_label_table(data / "train.csv", ids, targets)
    man = run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "f"), per_class=5, keep=0.625,
                                filter_by="copies", device="cpu"))
    info = man["classes"][0]["filter"]
    assert info["candidates"] == 8 and info["kept"] == 5
    # (an untrained G's candidates look alike, so the others may fall under tau too: they are kept)
    assert info["near_copies_candidates"] >= 3 and info["near_copies_kept"] == info["near_copies_candidates"] - 3
    assert open_dataset(tmp_path / "f").ids == [synth_id(0, 0, k) for k in (0, 2, 3, 5, 7)]
