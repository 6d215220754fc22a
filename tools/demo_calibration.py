"""Per-channel intensity of the real HPA sample next to the demo generator's (the README's table).

    python tools/demo_calibration.py [--n 60] [--classes all]

Real: every PNG in ../shared/hpa-sample/images (512 x 512, one channel per file). Generated: --n
fields at 512 with labels drawn as `protgan demo-data` draws them. Prints one JSON line per channel:
mean, the median over images of the per-image 99th percentile, the pooled 99th percentile and the
fraction of exactly-zero pixels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protgan.data import CHANNEL_ORDER, read_channel  # noqa: E402
from protgan.data.demo import render_sample, resolve_demo_classes, sample_labels  # noqa: E402
from protgan.data.demo.dataset import image_rngs  # noqa: E402


def summary(images: list[np.ndarray]) -> dict[str, float]:
    a = np.stack(images).astype(np.float32)
    flat = a.reshape(len(a), -1)
    return {
        "images": len(a),
        "mean": round(float(a.mean()), 1),
        "p99_median_per_image": round(float(np.median(np.percentile(flat, 99, axis=1))), 1),
        "p99_pooled": round(float(np.percentile(a, 99)), 1),
        "zero_fraction": round(float((a == 0).mean()), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--classes", default="all")
    ap.add_argument("--real", default=str(ROOT.parent / "shared" / "hpa-sample" / "images"))
    args = ap.parse_args()
    classes = resolve_demo_classes(args.classes)
    fake: dict[str, list[np.ndarray]] = {c: [] for c in CHANNEL_ORDER}
    for i in range(args.n):
        label_rng, render_rng = image_rngs(0, i)
        stack, _ = render_sample(render_rng, 512, sample_labels(label_rng, classes), with_masks=False)
        for j, ch in enumerate(CHANNEL_ORDER):
            fake[ch].append(stack[j])
    real_dir = Path(args.real)
    for ch in CHANNEL_ORDER:
        real = [read_channel(p) for p in sorted(real_dir.glob(f"*_{ch}.png"))]
        row = {"channel": ch, "real": summary(real) if real else None, "demo": summary(fake[ch])}
        print(json.dumps(row))


if __name__ == "__main__":
    main()
