"""dcgan vs fastgan (vs projected) at equal CPU seconds: one run per (class, arch), KID x1e3 of 256 EMA samples
against the class's real images in a feature space (--eval-features: EfficientNet-Lite0 by default), beside the
real-vs-real floor (two halves of the class).

    OMP_NUM_THREADS=1 python bench/gan_arch_kid.py --data DIR --classes 0,25,21,2,23 --cpu-seconds 120 \\
        --out RUNS [--channels rgb] [--archs dcgan,fastgan] [--grid assets/fastgan_demo_grid.png] \\
        [--eval-features ckpt:CLASSIFIER.pt]

    python bench/gan_arch_kid.py --data DIR --classes 0,1,3 --grid-from RUNS1,RUNS2 --grid assets/X.png

    python bench/gan_arch_kid.py --data DIR --classes 2 --archs dcgan,projected --score-from RUNS1,RUNS2 \
        --eval-features ckpt:CLASSIFIER.pt --out RESCORED

--grid-from: no training, only the grid, from the last checkpoints of runs this script wrote before
(RUNS/{arch}_class_{c} in any of the folders), with the same fixed noise. --score-from: no training, the KID of
such runs in --eval-features (another feature space than the one they were scored in while training).
Each run stops by --max-minutes on the process CPU clock (train-gan --time-clock cpu), so both archs get
the same compute whatever else the machine is doing. Prints one JSON line per run and writes RUNS/kid.json.
Settings: dcgan = the demo's CPU recipe (width 64, lr 1e-3 / 2e-3, EMA 0.99, resize upsampling);
fastgan = --g-width/--d-width 32, lr 1e-3 (G and D), --augment-p ada:0.6 (its default); projected = FastGAN's G
at width 32, heads of width 32 on EfficientNet-Lite0 features of the image resized to 128 (its default), lr 1e-3
(G and D; the paper's 2e-4 learns too little in ~150 CPU steps), ada:0.6. projected's D is trained on EfficientNet-Lite0 features, so its KID in that space is
gamed: compare it with --eval-features ckpt:PATH (a protgan classify checkpoint's embedding).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protgan.classify import embedding as _embedding  # noqa: E402,F401  (registers --eval-features ckpt:PATH)
from protgan.data import to_uint8_images, write_png  # noqa: E402
from protgan.evaluation.fid import TrainingEval, kernel_inception_distance  # noqa: E402
from protgan.gan.train import GanTrainer, TrainGanConfig, image_grid  # noqa: E402

ARCH_SETTINGS = {
    "dcgan": dict(g_width=64, d_width=64, lr_g=1e-3, lr_d=2e-3, ema_decay=0.99, g_upsample="resize"),
    "fastgan": dict(g_width=32, d_width=32, lr_g=1e-3, lr_d=1e-3, ema_decay=0.99),
    # lr 1e-3: at 120 CPU s on the green stain, KID x1e3 (EfficientNet-Lite0, comparable only between these)
    # 50 +- 14 vs 246 +- 16 at the paper's 2e-4 (ada:0.6), 280 +- 17 at 2e-4 with fixed:1
    "projected": dict(g_width=32, d_width=32, lr_g=1e-3, lr_d=1e-3, ema_decay=0.99),
}


def run_one(args: argparse.Namespace, class_index: int, arch: str, evaluator: TrainingEval) -> tuple[dict, np.ndarray]:
    settings = dict(ARCH_SETTINGS[arch])
    settings.update(json.loads(args.override).get(arch, {}))
    cfg = TrainGanConfig(
        data=args.data, class_index=class_index, out=str(Path(args.out) / f"{arch}_class_{class_index}"), size=args.size,
        channels=args.channels.split(","), classes=args.subset, select="only", steps=100_000, batch_size=args.batch,
        arch=arch, max_minutes=args.cpu_seconds / 60, time_clock="cpu", log_every=10, sample_every=0,
        ckpt_every=0, workers=0, device="cpu", resume="never", seed=args.seed, **settings)
    t0 = time.process_time()
    trainer = GanTrainer(cfg)
    result = trainer.fit()
    train_cpu = trainer.train_seconds
    scores = score_row(trainer, result.step, evaluator, args.eval_features)
    row = {"class": class_index, "arch": arch, "seed": cfg.seed, "n_images": cfg.n_images, "steps": result.step,
           "train_cpu_s": round(train_cpu, 1), "total_cpu_s": round(time.process_time() - t0, 1), **scores,
           "settings": settings}
    return row, grid_samples(trainer, args.grid_n)


def grid_samples(trainer: GanTrainer, n: int) -> np.ndarray:
    """n EMA samples of fixed noise (seed 7), uint8: the grid's panel of a run."""
    z = torch.randn(n, trainer.cfg.z_dim, generator=torch.Generator().manual_seed(7))
    return to_uint8_images(trainer.generate(z=z)).cpu().numpy()


def finished_run(folders: list[Path], arch: str, class_index: int, option: str) -> GanTrainer:
    """The finished run {arch}_class_{class_index} found in one of the folders, loaded from its last checkpoint
    (not resumed: the run folder is left as it is). arch "ARCH@TAG": only folders whose path contains TAG (two
    variants of one arch side by side, e.g. projected@runs_ppix)."""
    arch, _, tag = arch.partition("@")
    name = f"{arch}_class_{class_index}"
    run = next((f / name for f in folders if (f / name).is_dir() and tag in str(f)), None)
    if run is None:
        where = [str(f) for f in folders if tag in str(f)]
        raise SystemExit(f"{option}: no {name} in {', '.join(where) or f'a folder whose path contains {tag!r}'}")
    cfg = TrainGanConfig.from_dict({**json.loads((run / "config.json").read_text()), "workers": 0, "device": "cpu"})
    trainer = GanTrainer(cfg)
    trainer.load(run / "checkpoints" / "last.pt")
    return trainer


def score_row(trainer: Any, step: int, evaluator: TrainingEval, features: str) -> dict:
    """KID x1e3 of the run's EMA samples and the real-vs-real floor (two halves of the class) in one space
    (trainer: a GanTrainer, or a conditional run's ProxyTrainer of one class)."""
    scores = evaluator(trainer, step)
    real = evaluator.real
    half = np.arange(len(real)) % 2 == 0
    floor, _ = kernel_inception_distance(real[half], real[~half], 50, 1000, 0)
    return {"kid_x1e3": round(1e3 * scores["kid"], 2), "kid_std_x1e3": round(1e3 * scores["kid_std"], 2),
            "floor_kid_x1e3": round(1e3 * floor, 2), "fid": round(scores["fid"], 1), "features": features}


def rescore(args: argparse.Namespace, folders: list[Path]) -> None:
    """--score-from: KID of finished runs in --eval-features (e.g. a classifier embedding), one JSON line each,
    then per class the KID of the nearest other class's real images (arch "real_other"): the scale of the
    space, what a generator of real-looking cells of the wrong class would score."""
    rows, reals = [], {}
    for c in [int(x) for x in args.classes.split(",")]:
        evaluator = TrainingEval(args.eval_features, n_fake=256, seed=args.seed)
        for arch in args.archs.split(","):
            trainer = finished_run(folders, arch, c, "--score-from")
            step = int(trainer.step)
            rows.append({"class": c, "arch": arch, "seed": trainer.cfg.seed, "steps": step,
                         "train_cpu_s": round(trainer.train_seconds, 1),
                         **score_row(trainer, step, evaluator, args.eval_features)})
            print(json.dumps(rows[-1]), flush=True)
        reals[c] = evaluator.real
    for c, real in reals.items():
        others = {o: kernel_inception_distance(reals[o], real, 50, 1000, 0) for o in reals if o != c}
        if others:
            o = min(others, key=lambda k: others[k][0])
            rows.append({"class": c, "arch": "real_other", "other_class": o, "kid_x1e3": round(1e3 * others[o][0], 2),
                         "kid_std_x1e3": round(1e3 * others[o][1], 2), "features": args.eval_features})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "kid_rescored.json").write_text(json.dumps(rows, indent=1))


def add_run_arguments(ap: argparse.ArgumentParser, cpu_seconds_help: str = "per run") -> None:
    """The options run_one reads (also bench/gan_conditional_kid.py's, which calls it)."""
    ap.add_argument("--data", required=True)
    ap.add_argument("--subset", default="top5")
    ap.add_argument("--channels", default="red,green,blue")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--cpu-seconds", type=float, default=120, help=cpu_seconds_help)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--grid", default="")
    ap.add_argument("--grid-n", type=int, default=6)
    ap.add_argument("--override", default="{}", help='JSON {"fastgan": {"lr_g": ...}} over the settings')
    ap.add_argument("--eval-features", default="efficientnet_lite0",
                    help="KID's feature space: efficientnet_lite0, efficientnet_lite1, inception or ckpt:PATH (a "
                         "protgan classifier's embedding); lite1 or ckpt: for projected, whose D sees Lite0")


def main() -> None:
    ap = argparse.ArgumentParser()
    add_run_arguments(ap)
    ap.add_argument("--classes", default="0,25,21,2,23")
    ap.add_argument("--archs", default="dcgan,fastgan",
                    help="comma list of dcgan, fastgan, projected; with --score-from / --grid-from also ARCH@TAG: "
                         "that arch's run in the folders whose path contains TAG")
    ap.add_argument("--grid-from", default="", help="comma list of folders of earlier runs: only the --grid")
    ap.add_argument("--score-from", default="",
                    help="comma list of folders of earlier runs: no training, their KID in --eval-features "
                         "(written to OUT/kid_rescored.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.score_from:
        rescore(args, [Path(f) for f in args.score_from.split(",")])
        return
    if args.grid_from:
        folders = [Path(f) for f in args.grid_from.split(",")]
        write_comparison_grid(args, [[grid_samples(finished_run(folders, a, int(c), "--grid-from"), args.grid_n)
                                      for a in args.archs.split(",")] for c in args.classes.split(",")])
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, grid_rows = [], []
    for c in [int(x) for x in args.classes.split(",")]:
        evaluator = TrainingEval(args.eval_features, n_fake=256, seed=args.seed)
        panels = []
        for arch in args.archs.split(","):
            row, samples = run_one(args, c, arch, evaluator)
            rows.append(row)
            print(json.dumps(row), flush=True)
            panels.append(samples)
            (out / "kid.json").write_text(json.dumps(rows, indent=1))
        grid_rows.append(panels)
    if args.grid:
        write_comparison_grid(args, grid_rows)


def write_comparison_grid(args: argparse.Namespace, grid_rows: list[list[np.ndarray]]) -> None:
    """One row per class: real | arch 1 | arch 2 (grid_n images each, a white gap between panels)."""
    from protgan.data import ChannelStackDataset, open_dataset, resolve_subset  # noqa: E402
    from protgan.data.selection import select_class_ids  # noqa: E402

    ds = open_dataset(args.data)
    subset = resolve_subset(args.subset, ds.targets)
    channels = args.channels.split(",")
    lines = []
    for c, panels in zip([int(x) for x in args.classes.split(",")], grid_rows):
        ids = select_class_ids(ds.ids, ds.targets, c, subset, "only")
        real_ds = ChannelStackDataset(ds, channels, args.size, [c], ids=ids[:args.grid_n], cache=None)
        real = np.stack([real_ds.image(k) for k in range(len(real_ds))])
        strips = [image_grid_row(real, channels)] + [image_grid_row(p, channels) for p in panels]
        gap = np.full((strips[0].shape[0], 12, 3), 255, np.uint8)
        line = strips[0]
        for s in strips[1:]:
            line = np.concatenate([line, gap, s], axis=1)
        lines.append(line)
    width = max(x.shape[1] for x in lines)
    lines = [np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines]
    write_png(Path(args.grid), np.concatenate(lines, axis=0))


def image_grid_row(images: np.ndarray, channels: list[str]) -> np.ndarray:
    """N images in one row (image_grid with N columns)."""
    n = images.shape[0]
    rows = [image_grid(images[k:k + 1], channels) for k in range(n)]
    return np.concatenate([r[:, :-2] if k < n - 1 else r for k, r in enumerate(rows)], axis=1)


if __name__ == "__main__":
    main()
