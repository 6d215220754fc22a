"""How fibrous one channel is, real against synthetic, per class: the structure-tensor coherence of
protgan.evaluation.texture (1 = every gradient in a few-px window shares one direction, as along thin lines;
low for dots, rims and haze). Issue 17 puts a number on the all-classes grid's "actin without fibres" with it.

    python bench/fibre_coherence.py --data /tmp/gen/demoall --classes 12,11,14,6 \\
        --synth patch=SYNTH_A --synth patch+cl=SYNTH_B [--channel green] [--out coherence.json]

Real side: the images of DATA whose only label is the class (--select only, the default: like synth --labels single's
images) or every image carrying it (--select any); synthetic side: every image of a `protgan synth` folder labelled
with the class. Prints one JSON line per class and source. The measure does not single fibres out among real classes
(edges of nuclei and cells are coherent too), so compare a class's synthetic images with its own real ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protgan.data import ImageSet, open_dataset, resolve_subset  # noqa: E402
from protgan.data.classes import NUM_CLASSES  # noqa: E402
from protgan.data.imageio import read_channel  # noqa: E402
from protgan.data.selection import SELECT_CHOICES, select_class_ids  # noqa: E402
from protgan.evaluation.texture import mean_coherence  # noqa: E402


def class_coherence(ds: ImageSet, class_index: int, channel: str, select: str = "any") -> tuple[float, float, int]:
    """(mean, std, n) coherence of `channel` over the images standing for the class in the dataset's label table."""
    ids = select_class_ids(ds.ids, ds.targets, class_index, list(range(NUM_CLASSES)), select)
    return mean_coherence(read_channel(ds.files[i][channel]) for i in ids)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--classes", required=True, help="comma list of class indices or names")
    ap.add_argument("--synth", action="append", default=[], help="NAME=FOLDER of a protgan synth output (repeatable)")
    ap.add_argument("--channel", default="green")
    ap.add_argument("--select", default="only", choices=SELECT_CHOICES, help="real images: only the class, or any")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    folders = [("real", args.data)]
    for spec in args.synth:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            ap.error(f"--synth {spec!r}: expected NAME=FOLDER")
        folders.append((name, folder))
    sources = [(name, open_dataset(folder)) for name, folder in folders]  # one folder scan each
    rows = []
    for c in resolve_subset(args.classes, sources[0][1].targets):
        for name, ds in sources:
            mean, std, n = class_coherence(ds, c, args.channel, args.select if name == "real" else "any")
            rows.append({"class": c, "source": name, "coherence": round(mean, 4), "std": round(std, 4), "n": n})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
