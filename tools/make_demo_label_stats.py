"""Derive the label statistics the demo generator samples from, from the real Kaggle HPA 2018 table.

    python tools/make_demo_label_stats.py [../shared/hpa-sample/train.csv]

Writes protgan/data/demo_label_stats.json: per-class image counts, pair co-occurrence counts, the
labels-per-image histogram and every distinct label set with its count (numbers are facts, counted,
not tuned). The generator projects the label sets onto the classes it is asked for, so class
frequencies and pair co-occurrence follow the real table restricted to those classes.
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protgan.core.atomic import write_json  # noqa: E402
from protgan.data import NUM_CLASSES, read_label_table  # noqa: E402

OUT = ROOT / "protgan" / "data" / "demo_label_stats.json"


def main(argv: list[str]) -> None:
    src = Path(argv[0]) if argv else ROOT.parent / "shared" / "hpa-sample" / "train.csv"
    ids, targets = read_label_table(src)
    class_counts = Counter(c for t in targets for c in t)
    pairs = [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
    for t in targets:
        for a in t:
            for b in t:
                if a != b:
                    pairs[a][b] += 1
    cardinality = Counter(len(t) for t in targets)
    label_sets = Counter(tuple(sorted(t)) for t in targets)
    stats = {
        "source": "Kaggle Human Protein Atlas Image Classification 2018, train.csv",
        "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "images": len(ids),
        "class_counts": [class_counts.get(c, 0) for c in range(NUM_CLASSES)],
        "pair_counts": pairs,
        "cardinality": {str(k): v for k, v in sorted(cardinality.items())},
        "label_sets": [[list(s), n] for s, n in sorted(label_sets.items(), key=lambda kv: (-kv[1], kv[0]))],
    }
    write_json(OUT, stats)
    print(f"{OUT}: {len(ids)} images, {len(label_sets)} distinct label sets")


if __name__ == "__main__":
    main(sys.argv[1:])
