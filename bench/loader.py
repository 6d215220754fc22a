"""Samples/s of 4-channel 512x512 samples through ChannelStackDataset: PNG decoding vs the packed cache.

One JSON line: {"png_samples_per_s", "cache_samples_per_s", "ratio", ...}. Real HPA PNGs from
../shared/hpa-sample/images are used when present (their compression is what decoding costs),
otherwise textured synthetic fields.

    python bench/loader.py [--n 96] [--workers 2] [--batch 16]

The PNG path uses --workers decoding processes; the cache path uses make_loader's default for a
cached dataset (a background gather thread, see protgan.data.loader.PrefetchLoader).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from protgan.data import ChannelStackDataset, build_cache, make_loader, open_dataset, write_label_table, write_png

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "hpa-sample" / "images"
CHANNELS = ("red", "green", "blue", "yellow")


def make_data(root: Path, n: int) -> Path:
    img_dir = root / "train"
    img_dir.mkdir(parents=True)
    real = sorted(SAMPLE.glob("*.png")) if SAMPLE.is_dir() else []
    rng = np.random.default_rng(0)
    ids = [f"bench{i:05d}" for i in range(n)]
    for i, id_ in enumerate(ids):
        for c, ch in enumerate(CHANNELS):
            dst = img_dir / f"{id_}_{ch}.png"
            if real:
                shutil.copyfile(real[(4 * i + c) % len(real)], dst)
            else:
                import cv2

                field = cv2.GaussianBlur(rng.integers(0, 60, (512, 512), dtype=np.uint8), (0, 0), 3)
                write_png(dst, field)
    write_label_table(root / "train.csv", ids, [(i % 28,) for i in range(n)])
    return root


def throughput(dataset: ChannelStackDataset, batch: int, workers: int | None, epochs: int) -> float:
    loader = make_loader(dataset, batch_size=batch, shuffle=True, workers=workers, pin_memory=torch.cuda.is_available())
    it = iter(loader)
    next(it)  # start the workers before timing
    count, t0 = 0, time.perf_counter()
    for epoch in range(epochs):
        for x, _ in (it if epoch == 0 else loader):
            count += x.shape[0]
    return count / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--workers", type=int, default=2, help="loader workers for the PNG path")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_data(Path(tmp) / "data", args.n)
        ds = open_dataset(root)
        png = ChannelStackDataset(ds, CHANNELS, 512, list(range(28)), cache=None)
        png_rate = throughput(png, args.batch, args.workers, epochs=1)
        t0 = time.perf_counter()
        build_cache(ds, 512, CHANNELS)
        cache_build_s = time.perf_counter() - t0
        cached = ChannelStackDataset(ds, CHANNELS, 512, list(range(28)))
        assert cached.cache is not None
        cache_rate = throughput(cached, args.batch, None, epochs=5)  # make_loader's own choice
    print(json.dumps({
        "bench": "loader",
        "device": "cpu",
        "cores": os.cpu_count(),
        "workers": args.workers,
        "samples": args.n,
        "sample_shape": [4, 512, 512],
        "real_pngs": SAMPLE.is_dir(),
        "png_samples_per_s": round(png_rate, 1),
        "cache_samples_per_s": round(cache_rate, 1),
        "ratio_cache_vs_png": round(cache_rate / png_rate, 1),
        "cache_build_s": round(cache_build_s, 2),
    }))


if __name__ == "__main__":
    main()
