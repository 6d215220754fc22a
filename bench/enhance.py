"""Images/s of the full enhance pipeline against a straightforward scikit-image pipeline, same run.

Both do the same work per 512 x 512 single-channel image: read the PNG, HE + AHE + CLAHE, score each
against the original (MSE, PSNR, SSIM with the Gaussian window) plus RMS contrast and entropy of the
original and of each result, and write the CLAHE image as PNG.

- ours: ``run_enhance(apply="clahe", comparison=0)`` end to end (one process, then all cores):
  OpenCV kernels, the float32 SSIM with preallocated buffers, scores.jsonl/scores.csv/summary.csv.
- reference: a plain loop with imageio read/write, ``skimage.exposure.equalize_hist``,
  ``equalize_adapthist`` (clip_limit=1.0 for AHE, 2/256 for CLAHE: the same limit as OpenCV's 2.0),
  ``skimage.metrics`` MSE/PSNR/SSIM(gaussian_weights=True, sigma=1.5, use_sample_covariance=False),
  ``np.std`` and ``skimage.measure.shannon_entropy``; one process (it has no parallel path).

Images: ``../shared/hpa-sample/images`` (200 real 512 x 512 Kaggle channels) when present, else
generated fluorescence-like fields. Rounds alternate the two pipelines and keep each one's best
round, because the machine is shared. Prints one JSON line.

    python bench/enhance.py [--n-ref 16] [--rounds 2] [--workers 0]

CPU only: the enhance stage is OpenCV/numpy work with no GPU path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protgan.data import write_png  # noqa: E402
from protgan.enhance import EnhanceConfig, run_enhance  # noqa: E402

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "hpa-sample" / "images"
KAGGLE_CHANNEL_IMAGES = 124_288  # 31,072 Ids x 4 channels


def generated_images(folder: Path, n: int, size: int = 512, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    chans = ("red", "green", "blue", "yellow")
    for i in range(n):
        img = rng.gamma(1.5, 0.01, (size, size)).astype(np.float32)
        for _ in range(12):
            cy, cx = rng.uniform(0, size, 2)
            r = rng.uniform(size / 40, size / 12)
            img += rng.uniform(0.1, 0.6) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img *= 1 + 0.3 * rng.standard_normal((size, size)).astype(np.float32)
        img = np.clip(img / img.max() * 0.6, 0, 1)
        write_png(folder / f"gen{i:05d}_{chans[i % 4]}.png", np.round(img * 255).astype(np.uint8))


def skimage_pipeline(files: list[Path], out: Path) -> float:
    """Seconds for the straightforward scikit-image version of the same per-image work."""
    import imageio.v3 as iio
    from skimage import exposure, img_as_ubyte
    from skimage.measure import shannon_entropy
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    t = time.perf_counter()
    for f in files:
        img = iio.imread(f)
        results = {
            "he": img_as_ubyte(exposure.equalize_hist(img)),
            "ahe": img_as_ubyte(exposure.equalize_adapthist(img, clip_limit=1.0)),
            "clahe": img_as_ubyte(exposure.equalize_adapthist(img, clip_limit=2.0 / 256)),
        }
        row = {"key": f.name, "contrast": float(np.std(img)) / 255, "entropy": shannon_entropy(img, base=2)}
        for m, enh in results.items():
            row[m] = (mean_squared_error(img, enh), peak_signal_noise_ratio(img, enh, data_range=255),
                      structural_similarity(img, enh, gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=255),
                      float(np.std(enh)) / 255, shannon_entropy(enh, base=2))
        rows.append(row)
        iio.imwrite(out / f.name, results["clahe"])
    (out / "scores.json").write_text(json.dumps(rows))
    return time.perf_counter() - t


def io_floor(files: list[Path], out: Path) -> float:
    """Seconds to only read each PNG and write it back (our encoder settings): the pipeline's floor."""
    from protgan.data import read_channel_raw

    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for f in files:
        write_png(out / f.name, read_channel_raw(f), rle=True)
    return time.perf_counter() - t


def ours(folder: Path, out: Path, workers: int) -> float:
    t = time.perf_counter()
    run_enhance(EnhanceConfig(data=str(folder), out=str(out), apply="clahe", workers=workers, comparison=0))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-ref", type=int, default=16, help="images through the (slow) scikit-image pipeline per round")
    ap.add_argument("--n-gen", type=int, default=120, help="images to generate when the real sample is absent")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="processes for the parallel figure (0 = all cores)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-enhance-"))
    try:
        if SHARED_IMAGES.is_dir() and any(SHARED_IMAGES.glob("*.png")):
            folder, source = SHARED_IMAGES, "hpa-sample (real Kaggle 512x512 8-bit)"
        else:
            folder, source = tmp / "gen", "generated 512x512 8-bit fluorescence-like"
            generated_images(folder, args.n_gen)
        files = sorted(folder.glob("*.png"))
        n = len(files)
        ref_files = files[: args.n_ref]
        cores = os.cpu_count() or 1
        workers = args.workers or cores
        ours(folder, tmp / "warm", 1)  # imports, first-call costs
        shutil.rmtree(tmp / "warm")
        best_ours = best_ref = best_par = best_io = float("inf")
        for r in range(args.rounds):
            best_ours = min(best_ours, ours(folder, tmp / f"ours{r}", 1))
            best_ref = min(best_ref, skimage_pipeline(ref_files, tmp / f"ref{r}"))
            best_io = min(best_io, io_floor(files, tmp / f"io{r}"))
            if workers > 1:
                best_par = min(best_par, ours(folder, tmp / f"par{r}", workers))
            for d in (f"ours{r}", f"ref{r}", f"par{r}", f"io{r}"):
                shutil.rmtree(tmp / d, ignore_errors=True)
        ours_rate = n / best_ours
        ref_rate = len(ref_files) / best_ref
        par_rate = n / best_par if workers > 1 else ours_rate
        res = {
            "bench": "enhance",
            "device": f"cpu ({cores} cores, {platform.processor() or platform.machine()})",
            "images": source,
            "n_ours": n,
            "n_ref": len(ref_files),
            "work_per_image": "read + he/ahe/clahe + mse/psnr/ssim (+contrast, entropy) x3 + write clahe png",
            "ours_images_per_s_1proc": round(ours_rate, 2),
            "skimage_images_per_s_1proc": round(ref_rate, 3),
            "speedup_1proc": round(ours_rate / ref_rate, 1),
            "ours_read_write_only_images_per_s": round(n / best_io, 2),
            "ours_workers": workers,
            "ours_images_per_s_workers": round(par_rate, 2),
            "speedup_workers_vs_skimage_loop": round(par_rate / ref_rate, 1),
            "kaggle_124288_images_minutes_ours_workers": round(KAGGLE_CHANNEL_IMAGES / par_rate / 60, 1),
            "kaggle_124288_images_hours_skimage": round(KAGGLE_CHANNEL_IMAGES / ref_rate / 3600, 1),
            "target_speedup": 20,
        }
        print(json.dumps(res))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
