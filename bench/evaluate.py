"""`protgan evaluate` with all five measures (fid, kid, pr, copies, cas) against FID alone (fid,kid, what
`protgan fid` computes) in the same run, on 5 classes x N synthetic images at 64 px. Prints ONE JSON line.

    python bench/evaluate.py [--per-class 256] [--real 600] [--size 64] [--device auto] [--cas-epochs 3]

The data: a demo dataset (`protgan demo-data`, made once in --work) is the real set; the synthetic set
is made of real images of each class, flipped and with a little noise (no GAN needed to time the
measures; the synthetic Ids are synth's). Both runs read the same files in the same feature space
(efficientnet_lite0, offline). The target (issue 18): all five under 3 minutes on 2 CPU cores.
Wall and CPU seconds (time.process_time: this process and its threads) of each run, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protgan.core.atomic import write_json  # noqa: E402
from protgan.core.device import resolve_device  # noqa: E402
from protgan.data import open_dataset, read_channel, resolve_subset, write_label_table, write_png  # noqa: E402
from protgan.data.demo import generate_demo_dataset  # noqa: E402
from protgan.data.selection import select_class_ids  # noqa: E402
from protgan.experiments.evaluate import EvaluateConfig, run_evaluate  # noqa: E402

CHANNELS = ("red", "green", "blue")


def make_synthetic(real: Path, out: Path, per_class: int, seed: int = 0) -> list[int]:
    """per_class flipped, noisy copies of real images per top-5 class, in synth's layout."""
    ds = open_dataset(real)
    classes = resolve_subset("top5", ds.targets)
    rng = np.random.default_rng(seed)
    (out / "train").mkdir(parents=True)
    ids, targets = [], []
    for c in classes:
        pool = select_class_ids(ds.ids, ds.targets, c, classes, "any")
        for k in range(per_class):
            src = pool[int(rng.integers(len(pool)))]
            id_ = f"syn-c{c:02d}-s0-{k:06d}"
            flip = bool(rng.integers(2))
            for ch in CHANNELS:
                img = read_channel(ds.path(src, ch)).astype(np.float32)
                img = (img[:, ::-1] if flip else img) + rng.normal(0, 8, img.shape)
                write_png(out / "train" / f"{id_}_{ch}.png", np.clip(img, 0, 255).astype(np.uint8))
            ids.append(id_)
            targets.append((c,))
    write_label_table(out / "train.csv", ids, targets)
    write_json(out / "manifest.json", {"tool": "bench", "channels": list(CHANNELS)})
    return classes


def timed(cfg: EvaluateConfig) -> tuple[float, float, dict]:
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_evaluate(cfg, log=lambda m: None)
    return time.perf_counter() - t0, time.process_time() - c0, {"cas": result.cas, "rows": result.rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=256)
    ap.add_argument("--real", type=int, default=600, help="demo images (the real set)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--cas-epochs", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", default=None, help="folder for the data (kept; default: a temporary folder)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    real, fake = work / "real", work / f"syn{args.per_class}"
    if not (real / "train.csv").is_file():
        generate_demo_dataset(real, n=args.real, size=args.size, seed=0, classes="top5", workers=1)
    if not (fake / "train.csv").is_file():
        make_synthetic(real, fake, args.per_class)
    common = dict(real=str(real), fake=str(fake), classes="top5", features="efficientnet_lite0", select="any",
                  kid_subsets=100, workers=0, device=str(device), cas_epochs=args.cas_epochs)
    runs = {}
    for name, metrics in (("fid", "fid,kid"), ("all", "fid,kid,pr,copies,cas")):
        out = work / f"out-{name}"
        shutil.rmtree(out, ignore_errors=True)  # CAS resumes: a timed run starts from nothing
        (real / "folds.csv").unlink(missing_ok=True)
        runs[name] = timed(EvaluateConfig(out=str(out), metrics=metrics, **common))
    (fw, fc, _), (aw, ac, res) = runs["fid"], runs["all"]
    print(json.dumps({
        "bench": "evaluate", "device": str(device), "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "classes": 5, "per_class": args.per_class,
        "size": args.size, "real_images": args.real, "cas_epochs": args.cas_epochs,
        "fid_only_wall_s": round(fw, 1), "fid_only_cpu_s": round(fc, 1),
        "all_five_wall_s": round(aw, 1), "all_five_cpu_s": round(ac, 1),
        "ratio_wall_all_over_fid": round(aw / fw, 2), "target_wall_s": 180, "under_target": aw < 180,
        "cas_macro_f1": res["cas"],
    }))


if __name__ == "__main__":
    main()
