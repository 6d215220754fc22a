"""The real sample's four stains as a 4-"class" dataset: the data set of issue 16's and 17's real-image tables.

    python bench/hpa_stains.py --out /tmp/gen/hpa64 [--size 64] [--images ../shared/hpa-sample/images]

Each single-stain 512 px field {Id}_{stain}.png is area-downscaled to --size and written as the green channel of
image {Id}-{stain} (OUT/train/{Id}-{stain}_green.png), labelled by its stain: red 0, green 1, blue 2, yellow 3.
Train with --channels green --classes 0,1,2,3 (blue = the nucleus stain, red = microtubules, yellow = ER).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protgan.data.dataset import write_label_table  # noqa: E402
from protgan.data.imageio import read_channel, write_png  # noqa: E402

STAINS = ("red", "green", "blue", "yellow")
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "hpa-sample" / "images"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--images", default=str(SAMPLE))
    args = ap.parse_args()
    files = sorted(Path(args.images).glob("*.png"))
    if not files:
        raise SystemExit(f"--images {args.images}: no PNG files")
    out = Path(args.out)
    ids, targets = [], []
    for f in files:
        field, _, stain = f.stem.rpartition("_")
        if stain not in STAINS:
            raise SystemExit(f"{f}: the name does not end in _red/_green/_blue/_yellow")
        image_id = f"{field}-{stain}"
        write_png(out / "train" / f"{image_id}_green.png", read_channel(f, args.size))
        ids.append(image_id)
        targets.append((STAINS.index(stain),))
    write_label_table(out / "train.csv", ids, targets)
    counts = {s: sum(t == (k,) for t in targets) for k, s in enumerate(STAINS)}
    print(f"{len(ids)} fields -> {out} ({', '.join(f'{s} {n}' for s, n in counts.items())})")


if __name__ == "__main__":
    main()
