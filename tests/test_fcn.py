"""FCN training targets (Liimatainen et al. 2021, section 2.2) and the FCN loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from protgan.classify.fcn_targets import FcnTargetSpec, fcn_map_loss, fcn_targets, gaussian_blur, protein_masks


def square_image(size: int, lo: int, hi: int, value: int = 200) -> torch.Tensor:
    img = torch.zeros(1, size, size, dtype=torch.uint8)
    img[0, lo:hi, lo:hi] = value
    return img


def test_bright_square_becomes_its_map_pixels_at_256():
    # 256 px (the paper's size), square over rows/cols 64..127 -> map pixels 4..7 of the 16 x 16 map.
    # Around it: the blurred edge (sigma 2) stays >= 0.3 one pixel out, the 5 x 5 dilation adds 2 more,
    # so 3 of the 16 rows of each neighbouring map pixel are foreground; the rounded corners less.
    mask = protein_masks(square_image(256, 64, 128), map_size=16)[0]
    expected = torch.zeros(16, 16)
    expected[4:8, 4:8] = 1
    expected[3, 4:8] = expected[8, 4:8] = expected[4:8, 3] = expected[4:8, 8] = 3 / 16
    corners = [(3, 3), (3, 8), (8, 3), (8, 8)]
    for r, c in corners:
        assert 0 < mask[r, c] < (3 / 16) ** 2 + 1e-6
        expected[r, c] = mask[r, c]
    assert torch.allclose(mask, expected)
    binary = protein_masks(square_image(256, 64, 128), 16, FcnTargetSpec(binary_cut=0.5))[0]
    assert torch.equal(binary, (expected >= 0.5).float())


def test_bright_square_at_64px_gives_one_map_pixel():
    mask = protein_masks(square_image(64, 16, 32), map_size=4)[0]
    assert mask[1, 1] == 1 and mask.sum() < 1 + 4 * 1 / 16 + 4 / 256 + 1e-6  # 1 px of dilation spills over


def test_small_structures_survive_as_soft_targets():
    # a 6 x 6 spot (a nucleus at 64 px) in a 16 x 16 block: below half the block, still a target
    img = square_image(64, 21, 27)
    soft = protein_masks(img, 4)[0]
    assert 0 < soft[1, 1] < 0.5 and soft.argmax() == 5
    assert protein_masks(img, 4, FcnTargetSpec(binary_cut=0.5)).sum() == 0


def test_dim_or_blank_images():
    # normalisation is per image: a faint square is as much a target as a bright one
    assert torch.equal(protein_masks(square_image(64, 16, 32, value=3), 4), protein_masks(square_image(64, 16, 32), 4))
    assert protein_masks(torch.zeros(2, 64, 64), 4).sum() == 0  # nothing to segment -> all background


def test_gaussian_blur_equals_scipy_including_borders():
    x = np.random.default_rng(0).random((2, 30, 41))
    for sigma in (0.5, 1.3, 3.0):
        ours = gaussian_blur(torch.from_numpy(x), sigma).numpy()
        ref = np.stack([ndimage.gaussian_filter(i, sigma, mode="reflect", truncate=4.0) for i in x])
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def reference_mask(img: np.ndarray, map_size: int, spec: FcnTargetSpec) -> np.ndarray:
    """The paper's steps with scipy: normalise, Gaussian, >= 0.3, dilate (square), area resize, >= 0.5."""
    size = img.shape[-1]
    x = img.astype(np.float64)
    x = (x - x.min()) / (x.max() - x.min())
    x = ndimage.gaussian_filter(x, spec.sigma(size), mode="reflect", truncate=spec.truncate)
    b = x >= spec.threshold
    r = spec.dilation_radius(size)
    b = ndimage.binary_dilation(b, structure=np.ones((2 * r + 1, 2 * r + 1), bool))
    f = size // map_size
    return b.reshape(map_size, f, map_size, f).mean(axis=(1, 3)).astype(np.float32)


@pytest.mark.parametrize("size,map_size", [(256, 16), (64, 4), (128, 8)])
def test_masks_match_a_scipy_reference_on_cell_like_images(size, map_size):
    rng = np.random.default_rng(size)
    img = np.zeros((size, size))
    for _ in range(6):  # blobs of different brightness, like cells with more or less protein
        cy, cx = rng.integers(0, size, 2)
        r = rng.integers(size // 16, size // 6)
        yy, xx = np.ogrid[:size, :size]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += rng.uniform(40, 200)
    img = np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    spec = FcnTargetSpec()
    ours = protein_masks(torch.from_numpy(img)[None], map_size, spec)[0].numpy()
    np.testing.assert_allclose(ours, reference_mask(img, map_size, spec), atol=1e-6)
    assert 0 < ours.sum() < ours.size


def test_targets_same_mask_for_present_classes_zero_for_absent():
    protein = torch.cat([square_image(64, 16, 32), square_image(64, 32, 64)])
    labels = torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.float32)
    t = fcn_targets(protein, labels, map_size=4)
    assert t.shape == (2, 3, 4, 4)
    masks = protein_masks(protein, 4)
    assert torch.equal(t[0, 0], masks[0]) and torch.equal(t[0, 2], masks[0])
    assert t[0, 1].sum() == 0 and t[1, 0].sum() == 0 and t[1, 2].sum() == 0
    assert torch.equal(t[1, 1], masks[1]) and torch.all(masks[1][2:, 2:] == 1)


def test_map_loss_is_pixelwise_bce():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    targets = (torch.rand(2, 3, 4, 4) > 0.5).float()
    p = torch.sigmoid(logits)
    manual = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
    assert torch.allclose(fcn_map_loss(logits, targets), manual, atol=1e-6)
    assert torch.allclose(fcn_map_loss(logits, targets), F.binary_cross_entropy(p, targets), atol=1e-6)


def test_heatmap_png_one_panel_per_predicted_class(tmp_path):
    from protgan.classify.heatmaps import panel_classes, upsample_maps, write_heatmaps
    from protgan.data import read_channel_raw

    assert panel_classes(np.array([0.9, 0.2, 0.6]), np.array([0.5, 0.5, 0.5])) == ([0, 2], False)
    assert panel_classes(np.array([0.1, 0.3, 0.2]), np.array([0.5, 0.5, 0.5])) == ([1], True)
    maps = np.zeros((1, 3, 4, 4), np.float32)
    maps[0, 0, 0, 0] = 1.0
    up = upsample_maps(maps[0], 64)
    assert up.shape == (3, 64, 64) and up[0, :8, :8].mean() > 0.9 and up[0, 40:, 40:].max() == 0
    stack = np.zeros((3, 64, 64), np.uint8)
    stack[1, :16, :16] = 200
    probs = np.array([[0.9, 0.1, 0.7]])
    paths = write_heatmaps(tmp_path / "hm", ["img0"], [stack], ("red", "green", "blue"), maps, probs,
                           np.array([0.5, 0.5, 0.5]), ["Nucleoplasm", "Cytosol", "Golgi apparatus"],
                           true_names=[["Nucleoplasm"]])
    assert [p.name for p in paths] == ["img0_heatmaps.png"]
    img = read_channel_raw(paths[0])  # decodes (grey view of the RGB figure)
    assert img.shape[1] > 2.5 * img.shape[0]  # image panel + two class panels side by side


# ------------------------------------------------------------------ end to end: classify + predict
TARGETS = [(0,), (25,), (0, 25), (21,), (2, 0), (23,), (0, 21), (25, 2), (2,), (23, 0), (21, 25), (0,)] * 2


def _fcn_cli(data, run):
    return ["classify", "--data", str(data), "--model", "fcn13", "--out", str(run), "--size", "32", "--folds", "2",
            "--epochs", "1", "--batch-size", "8", "--workers", "0", "--device", "cpu", "--classes", "0,2,21,23,25"]


def test_fcn13_trains_on_heat_maps_and_predict_writes_heatmaps(tmp_path, capsys):
    import json

    from protgan.classify.train import load_checkpoint
    from tests.cli_helpers import run_cli
    from tests.conftest import make_dataset

    data = make_dataset(tmp_path / "data", TARGETS, size=32)
    run = tmp_path / "run"
    code, out, err = run_cli(_fcn_cli(data, run) + ["--fold", "0"], capsys)
    assert code == 0, err
    cfg = json.loads((run / "config.json").read_text())
    # the liimatainen recipe without a preset: Adam 1e-3, lr / 3 after 8 epochs, rgby, BCE, from scratch
    assert (cfg["optimizer"], cfg["lr"], cfg["lr_schedule"], cfg["plateau_patience"], cfg["channels"], cfg["loss"],
            cfg["pretrained"], cfg["select"]) == ("adam", 1e-3, "plateau", 8, "rgby", "bce", False, "loss")
    assert abs(cfg["plateau_factor"] - 1 / 3) < 1e-12
    fold = run / "fold_0"
    for f in ("val_mlcm.csv", "val_mlcm.png", "val_mlcm_percent.csv", "val_by_label_count.csv"):
        assert (fold / f).exists(), f
    result = json.loads((fold / "result.json").read_text())
    assert result["selected"] == "best loss"  # the paper's criterion
    assert sum(map(sum, result["val_labels"]["mlcm"])) >= result["n_val"]
    hist = json.loads((fold / "history.json").read_text())
    # the FCN's loss is the pixelwise BCE of its maps, not the image-level BCE of its confidences
    assert 0 < hist[0]["val_loss"] < 1.0 and hist[0]["train_loss"] > 0
    ckpt_path = fold / "best_loss.pt"
    assert load_checkpoint(ckpt_path)["meta"]["model"] == "fcn13"
    hm = tmp_path / "hm"
    files = [str(p) for p in sorted((data / "train").glob("img000[01]_*.png"))]
    code, out, err = run_cli(["predict", *files, "--checkpoint", str(ckpt_path), "--heatmaps", str(hm),
                              "--show", "0", "--device", "cpu"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in hm.iterdir()) == ["img0000_heatmaps.png", "img0001_heatmaps.png"]


@pytest.mark.slow
def test_fcn13_all_folds_merge_label_reports_into_summary(tmp_path, capsys):
    from tests.cli_helpers import run_cli
    from tests.conftest import make_dataset

    data = make_dataset(tmp_path / "data", TARGETS, size=32)
    run = tmp_path / "run"
    code, out, err = run_cli(_fcn_cli(data, run), capsys)
    assert code == 0, err
    for f in ("val_mlcm.csv", "val_mlcm.png", "val_by_label_count.csv"):
        assert (run / f).exists(), f
    summary = (run / "summary.md").read_text()
    assert "labels per image" in summary and "Multi-label confusion matrix" in summary
    assert "lr 0.001 (x 0.333 after 8 epochs without a lower validation loss)" in summary


def test_fcn_bad_options_are_one_line_errors(tmp_path, capsys):
    from tests.cli_helpers import assert_one_line_error, run_cli
    from tests.conftest import make_dataset

    data = make_dataset(tmp_path / "data", TARGETS, size=32)
    code, _, err = run_cli(_fcn_cli(data, tmp_path / "r1") + ["--channels", "red,blue"], capsys)
    assert_one_line_error(code, err, "--channels", "green")
    code, _, err = run_cli(_fcn_cli(data, tmp_path / "r2") + ["--size", "40"], capsys)  # the last --size wins
    assert_one_line_error(code, err, "--size 40", "multiple of 16")
    code, _, err = run_cli(_fcn_cli(data, tmp_path / "r3") + ["--activation", "prelu"], capsys)
    assert_one_line_error(code, err, "--activation", "gapnet-pl")
    code, _, err = run_cli(_fcn_cli(data, tmp_path / "r4") + ["--balance", "mean:3"], capsys)
    assert_one_line_error(code, err, "--balance")
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3", "r4"))
