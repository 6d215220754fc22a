"""Evaluation the HPA 2018 winners would trust: thresholds and checkpoint choice on a held-out part of the
training fold, positive-proportion thresholds, TTA, weight averaging, the Lovasz hinge; and the
near-duplicate groups (perceptual hash), duplicate-aware folds and refused synthetic copies."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from protgan.classify import thresholds as thresholds_mod, train as train_mod
from protgan.classify.averaging import Ema, mean_state, parse_average, recompute_bn
from protgan.classify.losses import lovasz_hinge, make_loss
from protgan.classify.thresholds import positive_proportion_thresholds, thresholds_by_kind
from protgan.classify.train import Accel
from protgan.classify.tta import predict_probs, tta_probs
from protgan.core.errors import ProtganError
from protgan.data import make_folds, read_folds, write_folds, write_label_table, write_png
from protgan.data.duplicates import Fingerprints, fingerprint, group_duplicates, phash, hamming
from protgan.data.folds import holdout_split
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset, register_tiny_classifier

TINY = register_tiny_classifier("test_tiny_eval")
TARGETS = [(0,), (25,), (0, 25), (21,), (2, 0), (23,), (0, 21), (25, 2), (2,), (23, 0), (21, 25), (0,)] * 3



def _base(data: Path, run: Path, *extra: str) -> list[str]:
    return ["classify", "--data", str(data), "--model", TINY, "--out", str(run), "--size", "32", "--folds", "2",
            "--epochs", "3", "--batch-size", "8", "--no-pretrained", "--workers", "0", "--device", "cpu",
            "--head", "linear", *extra]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", TARGETS, size=32, channels=("red", "green", "blue"))


# ------------------------------------------------------------------------------------------- thresholds
def test_thresholds_are_tuned_on_the_held_out_ids_only(data, tmp_path, capsys, monkeypatch):
    seen_by_tuner: list[np.ndarray] = []
    predicted: dict[tuple[str, ...], np.ndarray] = {}
    real_predict, real_tuner = train_mod.predict_probs, train_mod.thresholds_by_kind

    def recording_predict(model, loader, accel, kind="none", on_batch=None):
        p, y = real_predict(model, loader, accel, kind, on_batch)
        predicted[tuple(loader.dataset.ids)] = p.numpy().copy()
        return p, y

    def recording_tuner(y, p, train_prevalence):
        seen_by_tuner.append(np.array(p, copy=True))
        return real_tuner(y, p, train_prevalence)

    monkeypatch.setattr(train_mod, "predict_probs", recording_predict)
    monkeypatch.setattr(train_mod, "thresholds_by_kind", recording_tuner)
    run = tmp_path / "run"
    code, out, err = run_cli(_base(data, run, "--fold", "0", "--threshold-split", "0.25", "--keep-checkpoints", "all"), capsys)
    assert code == 0, err
    ids = json.loads((run / "fold_0" / "ids.json").read_text())
    held, train, val = ids["held"], ids["train"], ids["val"]
    assert held and not set(held) & set(train) and not set(held) & set(val)
    assert abs(len(held) - 0.25 * (len(held) + len(train))) <= 1.5  # iterstrat rounds per class
    assert len(seen_by_tuner) == 1
    assert np.array_equal(seen_by_tuner[0], predicted[tuple(held)])  # exactly the held-out predictions
    assert seen_by_tuner[0].shape[0] != len(train)

    # the checkpoint is chosen on the held-out part too: best_loss.pt is the epoch of lowest held-out loss
    hist = json.loads((run / "fold_0" / "history.json").read_text())
    best = min(hist, key=lambda h: h["held_loss"])["epoch"]
    assert torch.load(run / "fold_0" / "best_loss.pt", weights_only=True)["epoch"] == best
    res = json.loads((run / "fold_0" / "result.json").read_text())
    assert res["selected_on"] == "held" and res["n_held"] == len(held)
    assert set(res["val"]) == {"tuned", "0.5", "positive-proportion"}
    ckpt = torch.load(run / "fold_0" / "best_macro_f1.pt", weights_only=True)
    assert ckpt["thresholds_by_kind"] == res["thresholds_by_kind"]

    # --threshold-split 0: the old way, tuned on the training part's own predictions
    seen_by_tuner.clear()
    run0 = tmp_path / "run0"
    code, out, err = run_cli(_base(data, run0, "--fold", "0", "--threshold-split", "0"), capsys)
    assert code == 0, err
    ids0 = json.loads((run0 / "fold_0" / "ids.json").read_text())
    assert ids0["held"] == [] and np.array_equal(seen_by_tuner[0], predicted[tuple(ids0["train"])])
    assert json.loads((run0 / "fold_0" / "result.json").read_text())["selected_on"] == "val"


def test_positive_proportion_thresholds_hit_the_prevalence():
    rng = np.random.default_rng(0)
    probs = rng.uniform(size=(200, 5))
    prevalence = np.array([0.0, 0.1, 0.337, 0.5, 1.0])
    th = positive_proportion_thresholds(probs, prevalence)
    rate = (probs >= th).mean(0)
    assert np.array_equal(rate, np.round(prevalence * 200) / 200)
    # the tuned kind of thresholds_by_kind is the per-class F1 optimum; 0.5 is flat
    y = (rng.uniform(size=(200, 5)) < probs).astype(int)
    kinds = thresholds_by_kind(y, probs, prevalence)
    assert np.array_equal(kinds["tuned"], thresholds_mod.tune_thresholds(y, probs))
    assert np.all(kinds["0.5"] == 0.5)


def test_holdout_split_is_stratified_and_keeps_groups_whole():
    rng = np.random.default_rng(3)
    ids = [f"i{k}" for k in range(200)]
    targets = [tuple(sorted({int(c) for c in rng.choice([0, 2, 21, 23, 25], size=rng.integers(1, 3))})) for _ in ids]
    group_of = {i: f"i{(k // 3) * 3}" if k < 60 else i for k, i in enumerate(ids)}  # 20 triplets
    fit, held = holdout_split(ids, targets, 0.1, seed=0, group_of=group_of)
    assert sorted(fit + held) == sorted(ids) and not set(fit) & set(held)
    assert abs(len(held) - 20) <= 3
    for g in set(group_of.values()):
        members = {i for i in ids if group_of[i] == g}
        assert members <= set(held) or members <= set(fit)
    for c in (0, 2, 21, 23, 25):  # every class about 10% held out
        n = sum(c in t for t in targets)
        n_held = sum(c in targets[ids.index(i)] for i in held)
        assert abs(n_held - 0.1 * n) <= 3, c


# ------------------------------------------------------------------------------------------------ TTA
class _Invariant(nn.Module):
    """1x1 convolution + global average pooling: invariant to every flip and rotation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


class _Flat(nn.Module):
    """A linear map of the flattened pixels: changes under every flip and rotation."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * 8 * 8, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))


class _Loader(list):
    pass


def _accel() -> Accel:
    return Accel.for_device(torch.device("cpu"), False)


def test_tta_of_a_flip_invariant_model_changes_nothing():
    torch.manual_seed(0)
    model = _Invariant().eval()
    x = torch.rand(5, 2, 8, 8)
    with torch.no_grad():
        plain = tta_probs(model, x, "none")
        for kind in ("flips", "d4"):
            assert torch.allclose(tta_probs(model, x, kind), plain, atol=1e-6)


def test_d4_tta_of_a_non_invariant_model_is_the_manual_average():
    torch.manual_seed(1)
    model = _Flat().eval()
    u8 = torch.randint(0, 256, (4, 2, 8, 8), dtype=torch.uint8)
    loader = _Loader([(u8, torch.zeros(4, 3))])
    got, _ = predict_probs(model, loader, _accel(), "d4")
    x = u8.numpy().astype(np.float32) / 255.0
    views = [np.rot90(v, k, axes=(2, 3)) for v in (x, x[..., ::-1]) for k in range(4)]
    assert len({v.tobytes() for v in views}) == 8
    with torch.no_grad():
        manual = np.mean([torch.sigmoid(model(torch.from_numpy(v.copy()))).numpy() for v in views], 0)
        plain = torch.sigmoid(model(torch.from_numpy(x))).numpy()
    assert np.allclose(got.numpy(), manual, atol=1e-6)
    assert not np.allclose(got.numpy(), plain, atol=1e-3)  # the test can fail: d4 does change this model
    flips, _ = predict_probs(model, loader, _accel(), "flips")
    fviews = [x, x[..., ::-1], x[..., ::-1, :], x[..., ::-1, ::-1]]
    with torch.no_grad():
        fmanual = np.mean([torch.sigmoid(model(torch.from_numpy(v.copy()))).numpy() for v in fviews], 0)
    assert np.allclose(flips.numpy(), fmanual, atol=1e-6)


# ----------------------------------------------------------------------------------- weight averaging
def test_averaged_weights_are_the_mean_of_the_saved_epochs(data, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(_base(data, run, "--fold", "1", "--average", "last:2", "--keep-checkpoints", "all"), capsys)
    assert code == 0, err
    fold = run / "fold_1"
    assert sorted(p.name for p in fold.glob("epoch_*.pt")) == ["epoch_2.pt", "epoch_3.pt"]
    e2 = torch.load(fold / "epoch_2.pt", weights_only=True)
    e3 = torch.load(fold / "epoch_3.pt", weights_only=True)
    avg = torch.load(fold / "averaged.pt", weights_only=True)
    assert set(avg["model"]) == set(e3)
    for k in e3:
        assert torch.allclose(avg["model"][k], (e2[k] + e3[k]) / 2, atol=1e-7), k
    assert any(not torch.equal(e2[k], e3[k]) for k in e3)  # two different epochs
    last = torch.load(fold / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(last[k], e3[k]) for k in e3)
    res = json.loads((fold / "result.json").read_text())
    assert res["selected"].startswith("mean of epochs 2-3") and avg["thresholds"] == res["thresholds"]
    # predict with the averaged checkpoint and TTA
    code, out, err = run_cli(["predict", "--checkpoint", str(fold / "averaged.pt"), str(data), "--device", "cpu",
                              "--tta", "flips", "--threshold", "positive-proportion", "--show", "0"], capsys)
    assert code == 0, err
    assert "positive-proportion" in out and "TTA flips" in out


def test_ema_follows_its_formula_and_batch_norm_is_recomputed():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = Ema(model, decay=0.9)
    w0 = model.weight.detach().clone()
    expected = w0.clone()
    for t in range(5):
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
        ema.update(model)
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * model.weight.detach()
    assert torch.allclose(ema.averaged_state(model)["weight"], expected, atol=1e-6)
    assert parse_average("ema").decay == 0.999 and parse_average("last:3").k == 3
    for bad in ("last:0", "last", "ema:1.5", "swa"):
        with pytest.raises(ProtganError, match="--average"):
            parse_average(bad)
    assert torch.equal(mean_state([{"a": torch.tensor([1.0]), "n": torch.tensor(3)},
                                   {"a": torch.tensor([3.0]), "n": torch.tensor(5)}])["a"], torch.tensor([2.0]))

    bn = nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 1, 1)).eval()
    bn[0].running_mean.fill_(7.0)
    batches = [torch.randint(0, 256, (4, 2, 3, 3), dtype=torch.uint8) for _ in range(3)]
    assert recompute_bn(bn, _Loader([(b, None) for b in batches]), _accel())
    x = torch.cat(batches).float() / 255.0
    assert torch.allclose(bn[0].running_mean, x.mean((0, 2, 3)), atol=1e-6)  # equal batches: the data mean
    assert not bn.training and bn[0].momentum == 0.1


# ------------------------------------------------------------------------------------------- Lovasz
def _jaccard_loss(mistakes: set[int], positives: set[int]) -> float:
    union = positives | mistakes
    return 1.0 - len(positives - mistakes) / len(union) if union else 0.0


def _lovasz_extension_brute_force(m: np.ndarray, positives: set[int]) -> float:
    """Lovasz extension of the Jaccard set loss at m >= 0 as the integral over levels t of
    Delta({i: m_i >= t}) (a layer-cake sum over the sorted distinct values)."""
    levels = np.unique(np.concatenate([[0.0], m]))
    total = 0.0
    for lo, hi in zip(levels[:-1], levels[1:]):
        total += (hi - lo) * _jaccard_loss({i for i in range(len(m)) if m[i] >= hi}, positives)
    return total


def test_lovasz_hinge_matches_the_brute_force_extension():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, c = 6, 3
        logits = rng.normal(0, 1.5, (n, c))
        y = (rng.uniform(size=(n, c)) < 0.4).astype(float)
        got = float(lovasz_hinge(torch.tensor(logits), torch.tensor(y)))
        ref = np.mean([_lovasz_extension_brute_force(np.maximum(0, 1 - logits[:, j] * (2 * y[:, j] - 1)),
                                                     set(np.flatnonzero(y[:, j]))) for j in range(c)])
        assert got == pytest.approx(ref, abs=1e-6)  # float32 inside
    # on 0/1 hinge errors the extension equals the Jaccard loss of that set of mistakes (every subset)
    y = np.array([1, 0, 1, 1, 0], float)
    sign = 2 * y - 1
    for r in range(6):
        for mistakes in itertools.combinations(range(5), r):
            m = np.zeros(5)
            m[list(mistakes)] = 1.0
            got = float(lovasz_hinge(torch.tensor((sign * (1 - m))[:, None]), torch.tensor(y[:, None])))
            assert got == pytest.approx(_jaccard_loss(set(mistakes), {0, 2, 3}), abs=1e-6)
    logits, y = torch.randn(8, 4, requires_grad=True), (torch.rand(8, 4) < 0.3).float()
    combo = make_loss("focal+lovasz")(logits, y)
    assert float(combo.detach()) == pytest.approx(float((make_loss("focal")(logits, y) + lovasz_hinge(logits, y)).detach()))
    combo.backward()
    assert torch.isfinite(logits.grad).all()


def test_focal_lovasz_trains_through_the_cli(data, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(_base(data, run, "--fold", "0", "--loss", "focal+lovasz", "--epochs", "1",
                                   "--tta", "d4", "--average", "ema:0.9"), capsys)
    assert code == 0, err
    res = json.loads((run / "fold_0" / "result.json").read_text())
    assert res["tta"] == "d4" and res["selected"].startswith("EMA (decay 0.9")


# ---------------------------------------------------------------------------------------- duplicates
def _demo_field(seed: int, size: int = 160) -> np.ndarray:
    from protgan.data.demo import TOP5, render_sample

    stack, _ = render_sample(seed, size, [TOP5[seed % 5]], with_masks=False)
    return stack  # red, green, blue, yellow


def _planted_set(root: Path, n_distinct: int = 14) -> tuple[Path, list[set[str]]]:
    """n distinct demo fields + near-copies: resized, re-encoded as JPEG, shifted by 3 px (2%), and a
    chain copy (shifted copy of the resized copy)."""
    img_dir = root / "train"
    img_dir.mkdir(parents=True)
    ids, targets, planted = [], [], []

    def put(id_: str, stack: np.ndarray, jpg: bool = False) -> None:
        for ch, a in zip(("red", "green", "blue", "yellow"), stack):
            if jpg:
                cv2.imwrite(str(img_dir / f"{id_}_{ch}.jpg"), a, [cv2.IMWRITE_JPEG_QUALITY, 70])
            else:
                write_png(img_dir / f"{id_}_{ch}.png", a)
        ids.append(id_)
        targets.append((0,))

    for k in range(n_distinct):
        s = _demo_field(k)
        put(f"d{k:02d}", s)
        if k % 3 == 0:
            put(f"d{k:02d}-resized", np.stack([cv2.resize(a, (112, 112), interpolation=cv2.INTER_AREA) for a in s]))
            put(f"d{k:02d}-shifted", np.roll(s, (3, -3), axis=(1, 2)))
            planted.append({f"d{k:02d}", f"d{k:02d}-resized", f"d{k:02d}-shifted"})
        elif k % 3 == 1:
            put(f"d{k:02d}-jpeg", s, jpg=True)
            planted.append({f"d{k:02d}", f"d{k:02d}-jpeg"})
    write_label_table(root / "train.csv", ids, targets)
    return root, planted


def test_info_duplicates_finds_every_planted_copy_and_no_false_group(tmp_path, capsys):
    root, planted = _planted_set(tmp_path / "dups")
    code, out, err = run_cli(["info", str(root), "--duplicates", "--channels", "green"], capsys)
    assert code == 0, err
    flat = " ".join(out.split())
    assert f"{len(planted)} groups" in flat
    found = [set(line.split(": ", 1)[1].split()) for line in out.splitlines() if line.strip().startswith("group ")]
    assert sorted(map(sorted, found)) == sorted(map(sorted, planted))


def test_hash_survives_copies_and_separates_distinct_fields():
    fields = [_demo_field(k, 128)[1] for k in range(10)]
    hashes = np.array([phash(f) for f in fields], np.uint64)
    d = hamming(hashes[:, None], hashes[None, :])
    assert d[np.triu_indices(10, 1)].min() > 16  # distinct demo fields: far apart
    g = fields[0]
    ok, buf = cv2.imencode(".jpg", g, [cv2.IMWRITE_JPEG_QUALITY, 60])
    for copy in (cv2.resize(g, (96, 96), interpolation=cv2.INTER_AREA), cv2.imdecode(buf, 0)):
        assert int(hamming(phash(g), phash(copy))) <= 6
    fps = [fingerprint(a) for a in (g, np.roll(g, 3, axis=0), fields[1])]
    groups = group_duplicates(Fingerprints(["a", "b", "c"], np.array([h for h, _ in fps], np.uint64),
                                           np.stack([t for _, t in fps])))
    assert groups.groups == [["a", "b"]] and groups.group_of == {"a": "a", "b": "a", "c": "c"}


def test_folds_keep_duplicate_groups_together_and_record_them(tmp_path):
    rng = np.random.default_rng(5)
    ids = [f"i{k:03d}" for k in range(150)]
    targets = [tuple(sorted({int(c) for c in rng.choice([0, 2, 21, 23, 25], size=rng.integers(1, 3))})) for _ in ids]
    plain = make_folds(ids, targets, k=5, seed=0)
    assert make_folds(ids, targets, k=5, seed=0, group_of={i: i for i in ids}).fold_of == plain.fold_of
    group_of = {i: ids[(k // 4) * 4] if k < 80 else i for k, i in enumerate(ids)}  # 20 groups of 4
    folds = make_folds(ids, targets, k=5, seed=0, group_of=group_of)
    for g in set(group_of.values()):
        assert len({folds.fold_of[i] for i in ids if group_of[i] == g}) == 1
    sizes = np.bincount(list(folds.fold_of.values()))
    assert sizes.min() >= 22 and sizes.max() <= 38
    path = tmp_path / "folds.csv"
    write_folds(path, folds)
    assert path.read_text().splitlines()[0] == "Id,fold,group"
    back = read_folds(path)
    assert back.fold_of == folds.fold_of and back.group_of == group_of
    old = tmp_path / "old.csv"
    old.write_text("Id,fold\na,0\nb,1\n")
    assert read_folds(old).group_of == {"a": "a", "b": "b"}


def test_classify_makes_duplicate_aware_folds_and_refuses_synthetic_copies(tmp_path, capsys):
    root, planted = _planted_set(tmp_path / "dups", n_distinct=8)
    code, out, err = run_cli(["classify", "--data", str(root), "--model", TINY, "--out", str(tmp_path / "r"),
                              "--classes", "0", "--size", "32", "--folds", "2", "--epochs", "1", "--no-pretrained",
                              "--workers", "0", "--device", "cpu", "--head", "linear", "--channels", "green",
                              "--fold", "0"], capsys)
    assert code == 0, err
    assert f"duplicates: {len(planted)} groups" in " ".join(out.split())
    folds = read_folds(root / "folds.csv")
    for group in planted:
        assert len({folds.fold_of[i] for i in group}) == 1
        assert len({folds.group_of[i] for i in group}) == 1

    # a synthetic "image" that is a re-encoded copy of a real one is refused, naming both
    syn = tmp_path / "syn"
    make_dataset(syn, [(0,), (0,)], size=160, channels=("green",), seed=3)
    real = cv2.imread(str(root / "train" / "d05_green.png"), cv2.IMREAD_UNCHANGED)
    write_png(syn / "train" / "img0001_green.png", cv2.resize(real, (128, 128), interpolation=cv2.INTER_AREA))
    for f in (syn / "train").iterdir():
        f.rename(f.with_name(f.name.replace("img", "syn")))
    write_label_table(syn / "train.csv", ["syn0000", "syn0001"], [(0,), (0,)])
    code, out, err = run_cli(["classify", "--data", str(root), "--model", TINY, "--out", str(tmp_path / "r2"),
                              "--classes", "0", "--size", "32", "--folds", "2", "--epochs", "1", "--no-pretrained",
                              "--workers", "0", "--device", "cpu", "--channels", "green", "--augment", "gan",
                              "--synthetic", str(syn), "--allow-leakage"], capsys)  # provenance aside: a copy
    assert_one_line_error(code, err, "--synthetic", "'syn0001'", "'d05'", "near-copy")
