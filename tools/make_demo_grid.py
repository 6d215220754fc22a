"""assets/demo_grid.png: one demo-data field per drawable class, RGB composite above the green channel.

    python tools/make_demo_grid.py [--size 256] [--seed 0]

Each tile is a 512 x 512 field (labelled with only that class) shown at --size, titled with the class
index and name; the composite is red (microtubules), green (the protein), blue (nuclei).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protgan.data import CLASS_NAMES, composite_rgb, resize, write_png  # noqa: E402
from protgan.data.demo import DRAWABLE_CLASSES, label_stats, render_sample  # noqa: E402

PER_ROW = 6
TITLE = 22


def tile(img: np.ndarray, text: str) -> np.ndarray:
    """HxWx3 with a black title band above."""
    band = np.zeros((TITLE, img.shape[1], 3), np.uint8)
    cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([band, img])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "assets" / "demo_grid.png"))
    args = ap.parse_args()
    counts = label_stats()["class_counts"]
    classes = sorted(DRAWABLE_CLASSES, key=lambda c: (-counts[c], c))
    cells = []
    for i, c in enumerate(classes):
        # the brightest of a few fields: the grid shows the pattern, weak stainings exist in the data
        stacks = [render_sample(np.random.default_rng([args.seed, c, k]), 512, [c], with_masks=False)[0] for k in range(3)]
        stack = max(stacks, key=lambda st: float(np.percentile(st[1], 99.5)))
        small = np.stack([resize(p, args.size) for p in stack])
        rgb = composite_rgb(small[:3], ("red", "green", "blue"))
        green = np.repeat(small[1][..., None], 3, axis=2)
        name = f"{c} {CLASS_NAMES[c]}"
        cells.append(np.vstack([tile(rgb, name), tile(green, "green only")]))
    while len(cells) % PER_ROW:
        cells.append(np.zeros_like(cells[0]))
    gap = lambda h: np.full((h, 4, 3), 40, np.uint8)
    rows = []
    for r in range(0, len(cells), PER_ROW):
        parts = []
        for cell in cells[r : r + PER_ROW]:
            parts += [cell, gap(cell.shape[0])]
        rows.append(np.hstack(parts[:-1]))
        rows.append(np.full((6, rows[-1].shape[1], 3), 40, np.uint8))
    write_png(args.out, np.vstack(rows[:-1]))
    print(args.out)


if __name__ == "__main__":
    main()
