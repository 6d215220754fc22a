"""One conditional GAN (train-gan --conditional) against one GAN per class at the same TOTAL CPU seconds: per class,
KID x1e3 of 256 EMA samples (the conditional one given the class's label alone) against the class's real images
(those whose only label within the subset is the class: what both models are asked to make), in the
EfficientNet-Lite0 space (or --eval-features ckpt:PATH, a classifier's embedding: the one for --arch projected),
beside the real-vs-real floor (two halves of those images).

    OMP_NUM_THREADS=1 python bench/gan_conditional_kid.py --data DIR --subset top5 --cpu-seconds 120 \\
        --out RUNS [--arch fastgan] [--balance uniform] [--grid assets/conditional_demo_grid.png] [--conditional-only]

Per-class runs get --cpu-seconds each (gan_arch_kid.run_one: the same settings and CPU clock); the conditional
run gets K x --cpu-seconds (K = the subset's size). --conditional-only skips the per-class runs (e.g. --subset
all). Prints one JSON line per class and writes RUNS/conditional_kid.json; --grid: one row per class,
real | per-class | conditional (or real | conditional). --labels follow-real (with --conditional-only): per class
also the KID against every training image carrying it, of the class alone and of synth --labels follow-real's
label sets (does the model write the real label combinations?).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gan_arch_kid import ARCH_SETTINGS, add_run_arguments, image_grid_row, run_one, score_row  # noqa: E402

from protgan.data import ChannelStackDataset, open_dataset, resolve_subset, to_uint8_images, write_png  # noqa: E402
from protgan.data.selection import select_class_ids  # noqa: E402
from protgan.evaluation.fid import TrainingEval  # noqa: E402
from protgan.gan.conditional import ProxyTrainer, carrying_images, follow_real_conditions  # noqa: E402
from protgan.gan.train import GanTrainer, TrainGanConfig  # noqa: E402


def train_conditional(args: argparse.Namespace, k: int) -> GanTrainer:
    settings = dict(ARCH_SETTINGS[args.arch])
    settings.update(json.loads(args.override).get(args.arch, {}))
    cfg = TrainGanConfig(
        data=args.data, class_index=None, conditional=True, balance=args.balance, classes=args.subset,
        out=str(Path(args.out) / f"conditional_{args.arch}"), size=args.size, channels=args.channels.split(","),
        steps=1_000_000, batch_size=args.batch, arch=args.arch, max_minutes=k * args.cpu_seconds / 60,
        time_clock="cpu", log_every=10, sample_every=0, ckpt_every=0, workers=0, device="cpu",
        resume="auto" if args.resume else "never",
        seed=args.seed, **settings)
    trainer = GanTrainer(cfg)
    trainer.fit()
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    add_run_arguments(ap, cpu_seconds_help="per class; the conditional run: K x this")
    ap.add_argument("--arch", default="fastgan")
    ap.add_argument("--balance", default="uniform")
    ap.add_argument("--conditional-only", action="store_true")
    ap.add_argument("--no-kid", action="store_true", help="only the grid (with --conditional-only)")
    ap.add_argument("--labels", default="single", choices=["single", "follow-real"],
                    help="follow-real (with --conditional-only): also score the conditional run against every training "
                         "image carrying the class, once with the class alone and once with synth --labels follow-real's "
                         "label sets (the same real images both times)")
    ap.add_argument("--resume", action="store_true",
                    help="continue RUNS/conditional_ARCH (a finished run is only loaded: grid/KID again)")
    args = ap.parse_args()
    if args.labels == "follow-real" and not args.conditional_only:
        ap.error("--labels follow-real: only with --conditional-only (a per-class run writes its class alone)")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(args.data)
    subset = resolve_subset(args.subset, ds.targets)
    channels = args.channels.split(",")
    only = {c: select_class_ids(ds.ids, ds.targets, c, subset, "only") for c in subset}
    rows: dict[int, dict] = {}
    panels: dict[int, list[np.ndarray]] = {}
    evaluators = {c: TrainingEval(args.eval_features, n_fake=256, seed=args.seed) for c in subset if len(only[c]) >= 4}
    if args.no_kid:  # the grid of every class with an image of its own
        args.conditional_only = True
        evaluators = {c: None for c in subset if only[c]}
    for c in evaluators:
        real = ChannelStackDataset(ds, channels, args.size, [c], ids=only[c][:args.grid_n], cache=None)
        panels[c] = [np.stack([real.image(k) for k in range(len(real))])]
        if args.conditional_only:
            continue
        row, samples = run_one(args, c, args.arch, evaluators[c])
        rows[c] = {"class": c, "seed": row["seed"], "n_only": len(only[c]), "per_class_steps": row["steps"],
                   "per_class_cpu_s": row["train_cpu_s"], "per_class_kid_x1e3": row["kid_x1e3"],
                   "per_class_kid_std_x1e3": row["kid_std_x1e3"], "floor_kid_x1e3": row["floor_kid_x1e3"]}
        panels[c].append(samples)
        print(json.dumps(rows[c]), flush=True)
    trainer = train_conditional(args, len(subset))
    z = torch.randn(args.grid_n, trainer.cfg.z_dim, generator=torch.Generator().manual_seed(7))
    # the label vector holds the classes present (trainer.cfg.class_subset), not every class of --subset
    for position, c in enumerate(trainer.cfg.class_subset):
        if c not in evaluators:
            continue
        class_set = ChannelStackDataset(ds, channels, args.size, [c], ids=only[c], cache=None)
        proxy = ProxyTrainer(trainer, position, class_set)
        panels[c].append(to_uint8_images(proxy.generate(z=z)).cpu().numpy())
        if args.no_kid:
            continue
        scores = score_row(proxy, trainer.step, evaluators[c], args.eval_features)
        row = rows.setdefault(c, {"class": c, "seed": trainer.cfg.seed, "n_only": len(only[c]),
                                  "floor_kid_x1e3": scores["floor_kid_x1e3"]})
        row.update(conditional_steps=trainer.step, conditional_cpu_s=round(trainer.train_seconds, 1),
                   n_conditional_images=trainer.cfg.n_images, conditional_kid_x1e3=scores["kid_x1e3"],
                   conditional_kid_std_x1e3=scores["kid_std_x1e3"], features=args.eval_features)
        if args.labels == "follow-real":
            row.update(carrying_scores(args, trainer, position))
        print(json.dumps(row), flush=True)
    (out / "conditional_kid.json").write_text(json.dumps(list(rows.values()), indent=1))
    if args.grid:
        write_grid(Path(args.grid), [panels[c] for c in evaluators], channels)


def carrying_scores(args: argparse.Namespace, trainer: GanTrainer, position: int) -> dict:
    """KID x1e3 against every training image carrying class `position` (other labels included): of samples of
    the class alone, then of the same noise with follow-real label sets (drawn from those images' label sets);
    one evaluator, so the real features are extracted once."""
    proxy = ProxyTrainer(trainer, position, carrying_images(trainer.dataset, position))
    evaluator = TrainingEval(args.eval_features, n_fake=256, seed=args.seed)
    out: dict = {"n_carrying": len(proxy.dataset)}
    for labels in ("single", "follow_real"):
        if labels == "follow_real":
            evaluator.conditions = follow_real_conditions(trainer.dataset.labels, position, evaluator.n_fake, args.seed)
        scores = score_row(proxy, trainer.step, evaluator, args.eval_features)
        out.update({f"{labels}_vs_carrying_kid_x1e3": scores["kid_x1e3"],
                    f"{labels}_vs_carrying_kid_std_x1e3": scores["kid_std_x1e3"]})
    out["carrying_floor_kid_x1e3"] = scores["floor_kid_x1e3"]
    return out


def write_grid(path: Path, lines_of_panels: list[list[np.ndarray]], channels: list[str]) -> None:
    """One row per class: its panels (real | per-class | conditional) side by side, white gaps between; each
    panel padded to its column's width (a class with fewer real images than --grid-n keeps the columns aligned)."""
    lines = []
    strips_of_lines = [[image_grid_row(p, channels) for p in panels] for panels in lines_of_panels]
    widths = [max(strips[k].shape[1] for strips in strips_of_lines if len(strips) > k)
              for k in range(max(map(len, strips_of_lines)))]
    for strips in strips_of_lines:
        strips = [np.pad(x, ((0, 0), (0, widths[k] - x.shape[1]), (0, 0)), constant_values=255)
                  for k, x in enumerate(strips)]
        line = strips[0]
        for s in strips[1:]:
            line = np.concatenate([line, np.full((line.shape[0], 12, 3), 255, np.uint8), s], axis=1)
        lines.append(line)
    width = max(x.shape[1] for x in lines)
    lines = [np.pad(x, ((0, 0), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines]
    write_png(path, np.concatenate(lines, axis=0))


if __name__ == "__main__":
    main()
