"""protgan.enhance: HE / AHE / CLAHE against references, the metrics against scikit-image, the
pipeline's outputs, resume and refusal to write into its input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import exposure
from skimage.measure import shannon_entropy
from skimage.metrics import structural_similarity

from protgan.data import read_channel_raw, write_png
from protgan.enhance import (
    EnhanceConfig, SSIMScorer, ahe, clahe, entropy, equalize_lut, he, mse, psnr, rms_contrast, run_enhance,
    select_best, ssim, ssim_many, summarize,
)
from protgan.core.errors import ProtganError
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset


def cells(size: int = 64, rng: np.random.Generator | None = None, bits: int = 8, n: int = 6) -> np.ndarray:
    """A fluorescence-like field: dark noisy background, a few bright blurred blobs with texture."""
    rng = rng or np.random.default_rng(0)
    top = 255 if bits == 8 else 65535
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    img = rng.gamma(1.5, 0.01, (size, size))
    for _ in range(n):
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(size / 16, size / 6)
        img += rng.uniform(0.2, 0.8) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    img *= 1 + 0.3 * rng.standard_normal((size, size))
    img = np.clip(img / max(img.max(), 1e-9) * 0.7, 0, 1)
    return np.round(img * top).astype(np.uint8 if bits == 8 else np.uint16)


def sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    rng = 255 if a.dtype == np.uint8 else 65535
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=rng)


def sk_he(img: np.ndarray) -> np.ndarray:
    """skimage's equalize_hist mapped to OpenCV's convention.

    skimage returns cdf(v) / N in [0, 1]; OpenCV (and we) return (cdf(v) - cdf_min) / (N - cdf_min)
    scaled to the full range and rounded, i.e. the darkest level present maps to 0. The affine map
    below removes that offset, after which the two differ only by our rounding to integers (<= 0.5)
    and float32 arithmetic (~65535 * 1e-7 for 16-bit).
    """
    top = 255 if img.dtype == np.uint8 else 65535
    sk = exposure.equalize_hist(img, nbins=top + 1)
    return (sk - sk.min()) / (1.0 - sk.min()) * top


def real_like(seed: int, n: int = 4, size: int = 96, bits: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [cells(size, rng, bits) for _ in range(n)]


# ------------------------------------------------------------------ methods


def test_he_lut_matches_opencv_bit_exact():
    rng = np.random.default_rng(1)
    imgs = real_like(1) + [rng.integers(0, 256, (40, 56), dtype=np.uint8),
                           (rng.gamma(0.3, 20, (33, 47))).clip(0, 255).astype(np.uint8)]
    for img in imgs:
        np.testing.assert_array_equal(equalize_lut(img), cv2.equalizeHist(img))
        np.testing.assert_array_equal(he(img), cv2.equalizeHist(img))


@pytest.mark.parametrize("bits", [8, 16])
def test_he_matches_skimage_equalize_hist(bits):
    tol = 0.5 + 1e-9 if bits == 8 else 0.5 + 65535 * 2e-7  # rounding; float32 LUT arithmetic at 16 bit
    for img in real_like(2, bits=bits, size=64):
        out = he(img)
        assert out.dtype == img.dtype and out.shape == img.shape
        assert np.abs(out.astype(np.float64) - sk_he(img)).max() <= tol


def test_he_16bit_is_equalised_in_16bit_not_truncated():
    img8 = cells(64, np.random.default_rng(3))
    img16 = img8.astype(np.uint16) * 257 + np.random.default_rng(4).integers(0, 257, img8.shape).astype(np.uint16)
    out16 = he(img16)
    assert out16.dtype == np.uint16
    assert len(np.unique(out16)) > 256  # more levels than any 8-bit path could produce
    coarse = img8.astype(np.uint16) * 257  # same histogram shape as img8, on the 16-bit scale
    assert np.abs(he(coarse).astype(np.int64) - he(img8).astype(np.int64) * 257).max() <= 129


def test_he_constant_image_unchanged():
    for dtype, v in ((np.uint8, 17), (np.uint16, 4000)):
        img = np.full((20, 20), v, dtype)
        np.testing.assert_array_equal(he(img), img)


@pytest.mark.parametrize("bits", [8, 16])
def test_clahe_is_opencv_clahe(bits):
    for img in real_like(5, n=2, bits=bits):
        for clip, grid in ((2.0, 8), (3.5, 4)):
            ref = cv2.createCLAHE(clipLimit=clip, tileGridSize=(grid, grid)).apply(img)
            out = clahe(img, clip, grid)
            assert out.dtype == img.dtype
            np.testing.assert_array_equal(out, ref)


def test_ahe_is_clahe_with_a_limit_that_never_clips():
    for img in real_like(6, n=3):
        # a limit of 256 x the mean bin height is the whole tile: no bin can exceed it
        np.testing.assert_array_equal(ahe(img), clahe(img, clip_limit=256.0))
        assert not np.array_equal(ahe(img), clahe(img, clip_limit=2.0))
    img16 = real_like(6, n=1, bits=16, size=64)[0]
    np.testing.assert_array_equal(ahe(img16), clahe(img16, clip_limit=65536.0))


def test_adaptive_methods_agree_with_skimage_equalize_adapthist():
    # skimage differs in padding, interpolation and output scaling, so this is a sanity check of the
    # mapping (strong correlation), not an equality. skimage's clip_limit is a fraction of the tile's
    # pixels: OpenCV's 2.0 x mean bin height = 2/256 of the tile; 1.0 = never clips (AHE).
    for img in real_like(7, n=2, size=128):
        for ours, sk_clip in ((clahe(img, 2.0, 8), 2.0 / 256), (ahe(img, 8), 1.0)):
            sk = exposure.equalize_adapthist(img, kernel_size=16, clip_limit=sk_clip, nbins=256) * 255
            r = np.corrcoef(ours.ravel().astype(np.float64), sk.ravel())[0, 1]
            assert r > 0.97, r


def test_methods_reject_bad_input():
    with pytest.raises(ProtganError):
        he(np.zeros((8, 8), np.float32))
    with pytest.raises(ProtganError):
        clahe(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ProtganError, match="tile grid"):
        clahe(np.zeros((4, 4), np.uint8), tile_grid=8)


# ------------------------------------------------------------------ metrics


@pytest.mark.parametrize("bits", [8, 16])
def test_ssim_matches_skimage_on_synthetic_and_real_like(bits):
    rng = np.random.default_rng(8)
    top = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    for img in real_like(8, n=3, size=80, bits=bits):
        noisy = np.clip(img.astype(np.float64) + rng.normal(0, 0.05 * top, img.shape), 0, top).astype(dtype)
        blurred = cv2.GaussianBlur(img, (7, 7), 2.0)
        uniform = rng.integers(0, top + 1, img.shape).astype(dtype)
        for other in (he(img), ahe(img), clahe(img), noisy, blurred, uniform, img):
            assert abs(ssim(img, other) - sk_ssim(img, other)) < 1e-4
    # non-square, odd sizes
    a = rng.integers(0, 256, (37, 23), dtype=np.uint8)
    b = cv2.GaussianBlur(a, (3, 3), 1.0)
    assert abs(ssim(a, b) - sk_ssim(a, b)) < 1e-4


def test_ssim_matches_skimage_on_real_images(shared_dir):
    files = sorted((shared_dir / "hpa-sample" / "images").glob("*.png"))[:6]
    if not files:
        pytest.skip("no real images")
    for f in files:
        img = read_channel_raw(f)
        others = [he(img), ahe(img), clahe(img)]
        for other, ours in zip(others, ssim_many(img, others)):
            assert abs(ours - sk_ssim(img, other)) < 1e-4


def test_scorer_reuse_gives_same_scores():
    imgs = real_like(9, n=3, size=48)
    scorer = SSIMScorer((48, 48))
    for a in imgs:
        scorer.set_reference(a)
        for b in imgs:
            assert scorer.score(b) == pytest.approx(ssim(a, b), abs=1e-7)


def test_metric_edge_cases():
    img = cells(48)
    assert mse(img, img) == 0.0
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    # constant images: SSIM reduces to the luminance/contrast constants, as in skimage
    zero, five, hundred = (np.full((32, 32), v, np.uint8) for v in (0, 5, 100))
    assert ssim(zero, zero) == pytest.approx(1.0, abs=1e-6)
    for a, b in ((zero, hundred), (five, hundred), (zero, img[:32, :32]), (hundred, img[:32, :32])):
        assert abs(ssim(a, b) - sk_ssim(a, b)) < 1e-4
    assert mse(zero, hundred) == 10000.0
    assert psnr(zero, hundred) == pytest.approx(10 * math.log10(255**2 / 10000.0))
    # 16-bit: the data range is 65535
    a16 = cells(48, bits=16)
    b16 = clahe(a16)
    err = float(np.mean((a16.astype(np.float64) - b16) ** 2))
    assert mse(a16, b16) == pytest.approx(err, rel=1e-12)
    assert psnr(a16, b16) == pytest.approx(10 * math.log10(65535**2 / err))
    assert abs(ssim(a16, b16) - sk_ssim(a16, b16)) < 1e-4
    assert psnr(a16, a16) == math.inf
    with pytest.raises(ProtganError, match="shape"):
        mse(img, img[:10])
    with pytest.raises(ProtganError, match="bit depth"):
        ssim(img, img.astype(np.uint16))
    with pytest.raises(ProtganError, match="smaller"):
        ssim(img[:8, :8], img[:8, :8])


def test_no_reference_scores():
    for img in (cells(48), cells(48, bits=16), np.full((16, 16), 9, np.uint8)):
        top = 255 if img.dtype == np.uint8 else 65535
        assert rms_contrast(img) == pytest.approx(img.std() / top, rel=1e-6, abs=1e-12)
        assert entropy(img) == pytest.approx(shannon_entropy(img, base=2), abs=1e-9)
    assert entropy(np.full((16, 16), 9, np.uint8)) == 0.0


# ------------------------------------------------------------------ report


def _rec(key, ch, **per_method):
    base = {"key": key, "id": key, "channel": ch, "bits": 8, "original": {"contrast": 0.1, "entropy": 3.0}}
    for m, (m_mse, m_psnr, m_ssim, m_con, m_ent) in per_method.items():
        base[m] = {"mse": m_mse, "psnr": m_psnr, "ssim": m_ssim, "contrast": m_con, "entropy": m_ent}
    return base


def test_summary_handles_inf_psnr_and_best_follows_the_criterion():
    recs = [
        _rec("a", "green", he=(100.0, 28.0, 0.5, 0.30, 5.0), clahe=(0.0, math.inf, 1.0, 0.10, 3.0)),
        _rec("b", "green", he=(200.0, 25.0, 0.4, 0.28, 5.5), clahe=(50.0, 31.0, 0.8, 0.12, 3.5)),
        _rec("c", "blue", he=(300.0, 23.0, 0.3, 0.26, 4.5), clahe=(10.0, 38.0, 0.9, 0.11, 3.2)),
    ]
    summary = summarize(recs, ("he", "clahe"), ("green", "blue"))
    row = next(r for r in summary if r["method"] == "clahe" and r["channel"] == "all")
    assert row["n"] == 3 and row["psnr_inf"] == 1
    assert row["psnr_mean"] == pytest.approx((31.0 + 38.0) / 2)  # inf left out of the mean, counted
    assert row["ssim_mean"] == pytest.approx(0.9) and row["ssim_std"] == pytest.approx(0.1)
    green = next(r for r in summary if r["method"] == "he" and r["channel"] == "green")
    assert green["n"] == 2 and green["mse_mean"] == pytest.approx(150.0)
    orig = next(r for r in summary if r["method"] == "original" and r["channel"] == "all")
    assert orig["ssim_mean"] is None and orig["contrast_mean"] == pytest.approx(0.1)
    # full-reference criteria reward the least-changed image; no-reference ones the most contrast
    assert select_best(summary, ("he", "clahe"), "ssim") == "clahe"
    assert select_best(summary, ("he", "clahe"), "mse") == "clahe"
    assert select_best(summary, ("he", "clahe"), "psnr") == "clahe"
    assert select_best(summary, ("he", "clahe"), "contrast") == "he"
    assert select_best(summary, ("he", "clahe"), "entropy") == "he"


# ------------------------------------------------------------------ pipeline and CLI


def make_real_like_dataset(root: Path, n: int = 4, size: int = 48, bits: int = 8,
                           channels=("red", "green", "blue", "yellow")) -> Path:
    make_dataset(root, [(i % 3,) for i in range(n)], size=size, channels=channels)
    rng = np.random.default_rng(11)
    for p in sorted((root / "train").glob("*.png")):
        write_png(p, cells(size, rng, bits))
    return root


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_cli_writes_enhanced_dataset_and_reports(tmp_path, capsys):
    data = make_real_like_dataset(tmp_path / "data")
    out = tmp_path / "enh"
    code, stdout, err = run_cli(["enhance", str(data), "--out", str(out), "--workers", "1", "--compare", "1"], capsys)
    assert code == 0, err
    assert "SSIM" in stdout and "clahe" in stdout
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["status"] == "complete" and cfg["options"]["clip_limit"] == 2.0
    chosen = cfg["chosen_method"]
    summary = read_csv(out / "summary.csv")
    all_rows = {r["method"]: r for r in summary if r["channel"] == "all"}
    assert chosen == max(("he", "ahe", "clahe"), key=lambda m: float(all_rows[m]["ssim_mean"]))
    scores = read_csv(out / "scores.csv")
    assert len(scores) == 4 * 4 * 4  # images x channels x (original + 3 methods)
    assert (out / "train.csv").read_bytes() == (data / "train.csv").read_bytes()
    src_files = sorted(p.name for p in (data / "train").glob("*.png"))
    assert sorted(p.name for p in (out / "train").glob("*.png")) == src_files
    from protgan.enhance import get_method

    for name in src_files:
        orig = read_channel_raw(data / "train" / name)
        np.testing.assert_array_equal(read_channel_raw(out / "train" / name), get_method(chosen)(orig))
    # the scores in the table are the scores of the images
    row = next(r for r in scores if r["method"] == "he")
    orig = read_channel_raw(data / "train" / row["key"])
    assert float(row["ssim"]) == pytest.approx(sk_ssim(orig, he(orig)), abs=1e-4)
    assert float(row["mse"]) == pytest.approx(mse(orig, he(orig)), rel=1e-5)
    png = cv2.imread(str(out / "comparison.png"))
    assert png is not None and png.shape[0] > 300 and png.std() > 10


def test_refuses_to_write_into_data(tmp_path, capsys):
    data = make_real_like_dataset(tmp_path / "data", n=2)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    for target in (data, data / "enhanced", data / "train" / "x"):
        code, _, err = run_cli(["enhance", str(data), "--out", str(target)], capsys)
        assert_one_line_error(code, err, "--out", "input")
    # an --out whose images/ folder is the input folder
    code, _, err = run_cli(["enhance", str(data / "train"), "--out", str(data), "--apply", "none"], capsys)
    assert_one_line_error(code, err, "--out")
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    data = make_real_like_dataset(tmp_path / "data", n=2)
    out = str(tmp_path / "o")
    for args, needle in ((["--clip-limit", "0"], "--clip-limit"), (["--methods", "he,foo"], "--methods"),
                         (["--methods", "he", "--apply", "clahe"], "--apply"), (["--select-by", "fun"], "--select-by"),
                         (["--sample", "-1"], "--sample"), (["--channels", "purple"], "--channels"),
                         (["--tile-grid", "0"], "--tile-grid")):
        code, _, err = run_cli(["enhance", str(data), "--out", out, *args], capsys)
        assert_one_line_error(code, err, needle)
    assert not Path(out).exists()
    # a truncated image names the file
    victim = data / "train" / "img0001_green.png"
    victim.write_bytes(victim.read_bytes()[:100])
    code, _, err = run_cli(["enhance", str(data), "--out", out, "--workers", "1"], capsys)
    assert_one_line_error(code, err, "img0001_green.png")


def test_resume_skips_done_work(tmp_path):
    data = make_real_like_dataset(tmp_path / "data", n=3)
    out = tmp_path / "enh"
    cfg = dict(data=str(data), out=str(out), apply="clahe", workers=1, comparison=0)
    first = run_enhance(EnhanceConfig(**cfg))
    assert first.written == 12 and first.resumed == 0
    csv1 = (out / "scores.csv").read_text()
    # simulate a run killed mid-way: one output missing, the last score line torn, a temp file left
    (out / "train" / "img0002_blue.png").unlink()
    lines = (out / "scores.jsonl").read_text().splitlines()
    (out / "scores.jsonl").write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:30])
    (out / "train" / ".img0002_red.png.abc.tmp").write_bytes(b"partial")
    calls = []
    second = run_enhance(EnhanceConfig(**cfg), progress=lambda phase, done, total: calls.append(phase))
    assert second.resumed == 10  # 12 - the torn line - the line before it
    assert second.written == 1 and second.skipped == 11
    assert (out / "scores.csv").read_text() == csv1
    assert not list((out / "train").glob(".*.tmp"))
    assert "score" in calls and "apply" in calls
    # nothing left to do
    third = run_enhance(EnhanceConfig(**cfg))
    assert third.resumed == 12 and third.written == 0
    # different options cannot resume into the same folder
    with pytest.raises(ProtganError, match="clip_limit"):
        run_enhance(EnhanceConfig(**{**cfg, "clip_limit": 3.0}))


def test_sample_scores_k_images_but_applies_to_all(tmp_path):
    data = make_real_like_dataset(tmp_path / "data", n=5, channels=("green", "blue"))
    out = tmp_path / "enh"
    res = run_enhance(EnhanceConfig(data=str(data), out=str(out), channels="green,blue", sample=2, apply="best",
                                    select_by="contrast", workers=1, comparison=0))
    scored_ids = {r["id"] for r in read_csv(out / "scores.csv")}
    assert len(scored_ids) == 2 and res.scored == 4
    assert res.written == 10 and len(list((out / "train").glob("*.png"))) == 10
    best = max(("he", "ahe", "clahe"),
               key=lambda m: next(r["contrast_mean"] for r in res.summary if r["method"] == m and r["channel"] == "all"))
    assert res.chosen == best


def test_unselected_channels_are_copied_and_folds_kept(tmp_path):
    data = make_real_like_dataset(tmp_path / "data", n=2)
    (data / "folds.csv").write_text("Id,fold\nimg0000,0\nimg0001,1\n")
    out = tmp_path / "enh"
    res = run_enhance(EnhanceConfig(data=str(data), out=str(out), channels="green", apply="he", workers=1, comparison=0))
    assert res.written == 2 and res.copied == 6
    assert (out / "train" / "img0000_red.png").read_bytes() == (data / "train" / "img0000_red.png").read_bytes()
    assert (out / "folds.csv").read_text() == (data / "folds.csv").read_text()
    g = read_channel_raw(data / "train" / "img0000_green.png")
    np.testing.assert_array_equal(read_channel_raw(out / "train" / "img0000_green.png"), he(g))


def test_16bit_dataset_stays_16bit(tmp_path):
    data = make_real_like_dataset(tmp_path / "data", n=2, bits=16, channels=("green",))
    out = tmp_path / "enh"
    res = run_enhance(EnhanceConfig(data=str(data), out=str(out), channels="green", apply="clahe", workers=1, comparison=0))
    assert res.bit_depths == [16]
    img = read_channel_raw(out / "train" / "img0000_green.png")
    orig = read_channel_raw(data / "train" / "img0000_green.png")
    assert img.dtype == np.uint16
    np.testing.assert_array_equal(img, clahe(orig))
    rows = [r for r in read_csv(out / "scores.csv") if r["method"] == "clahe" and r["key"] == "img0000_green.png"]
    assert float(rows[0]["psnr"]) == pytest.approx(psnr(orig, clahe(orig)), rel=1e-6)
    assert rows[0]["bits"] == "16"


def test_plain_folder_of_images_is_scored(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(12)
    for name in ("a_green.png", "b_blue.png", "c_red.png", "loose.png"):
        write_png(folder / name, cells(48, rng))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "enh"
    code, stdout, err = run_cli(["enhance", str(folder), "--out", str(out), "--apply", "none", "--workers", "1",
                                 "--compare", "1"], capsys)
    assert code == 0, err
    scores = read_csv(out / "scores.csv")
    assert {r["key"] for r in scores} == {"a_green.png", "b_blue.png", "c_red.png", "loose.png"}
    assert {r["channel"] for r in scores} == {"green", "blue", "red", "-"}
    assert not (out / "images").exists() and not (out / "train").exists()
    assert json.loads((out / "config.json").read_text())["mode"] == "folder"
    # channel filter, and writing the images too
    res = run_enhance(EnhanceConfig(data=str(folder), out=str(tmp_path / "g"), channels="green", apply="ahe",
                                    workers=1, comparison=0))
    assert sorted(p.name for p in (tmp_path / "g" / "images").iterdir()) == ["a_green.png", "loose.png"]
    assert res.chosen == "ahe"


def test_workers_give_the_same_scores(tmp_path):
    data = make_real_like_dataset(tmp_path / "data", n=4, channels=("green",))
    one = run_enhance(EnhanceConfig(data=str(data), out=str(tmp_path / "w1"), channels="green", apply="none",
                                    workers=1, comparison=0))
    two = run_enhance(EnhanceConfig(data=str(data), out=str(tmp_path / "w2"), channels="green", apply="none",
                                    workers=2, comparison=0))
    assert (tmp_path / "w1" / "scores.csv").read_text() == (tmp_path / "w2" / "scores.csv").read_text()
    assert one.summary == two.summary
