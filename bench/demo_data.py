"""Images/s of `protgan demo-data` (render + write 4 PNGs) at 512 and 128 px, one worker.

One JSON line. The reference, measured in the same run, is writing the same number of random
4-channel PNGs of the same size with the same encoder settings: `ratio_vs_random_png` is
demo images/s divided by random-PNG images/s (1.0 = generating costs nothing beyond writing).

    python bench/demo_data.py [--n512 60] [--n128 200] [--classes all]

Runs on the CPU (the generator is numpy/OpenCV; there is no GPU path to measure).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protgan.data import CHANNEL_ORDER, write_png  # noqa: E402
from protgan.data.demo import generate_demo_dataset, render_sample  # noqa: E402


def demo_rate(size: int, n: int, classes: str, tmp: Path) -> float:
    render_sample(0, size, [0], with_masks=False)  # build the noise banks outside the timing
    t = time.perf_counter()
    generate_demo_dataset(tmp / f"demo{size}", n=n, size=size, seed=0, classes=classes, workers=1)
    return n / (time.perf_counter() - t)


def random_png_rate(size: int, n: int, tmp: Path) -> float:
    rng = np.random.default_rng(0)
    out = tmp / f"random{size}"
    out.mkdir()
    t = time.perf_counter()
    for i in range(n):
        for ch in CHANNEL_ORDER:
            write_png(out / f"r{i:06d}_{ch}.png", rng.integers(0, 256, (size, size), dtype=np.uint8), rle=True)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n512", type=int, default=60)
    ap.add_argument("--n128", type=int, default=200)
    ap.add_argument("--classes", default="all")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    try:
        res: dict = {"bench": "demo_data", "device": "cpu", "workers": 1, "classes": args.classes, "cpu": platform.processor() or platform.machine()}
        for size, n in ((512, args.n512), (128, args.n128)):
            demo = demo_rate(size, n, args.classes, tmp)
            ref = random_png_rate(size, n, tmp)
            res[f"images_per_s_{size}"] = round(demo, 1)
            res[f"random_png_images_per_s_{size}"] = round(ref, 1)
            res[f"ratio_vs_random_png_{size}"] = round(demo / ref, 3)
            res[f"n_{size}"] = n
        print(json.dumps(res))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
