"""Synthetic images from trained per-class generators, written as a dataset (the paper: 1000 per class).

    SYN/train.csv                   Id,Target  (Target = the class the generator was trained on)
    SYN/train/{Id}_{channel}.png    the channels the GAN was trained on, 8-bit, the GAN's size
    SYN/manifest.json               checkpoints (path, sha256, step), seed, counts, truncation, filter
    SYN/config.json                 the options used

Ids are ``syn-c{class:02d}-s{seed}-{k:06d}`` (k = the candidate's index in the class's noise stream):
Kaggle Ids are UUIDs, so they cannot collide, and an Id says where its image came from.

Determinism: the noise of class c comes from its own CPU generator seeded by (seed, c), drawn for all
candidates up front, so image k depends on (checkpoint, seed, class, k, truncation) only; PNG encoding
is deterministic, so a re-run writes the same bytes (on the same device and batch size: GPU
convolutions may differ in the last bit between batch sizes).

Truncation (``--truncation t``): every |z_i| > t is redrawn until none is left, the truncation trick
for Gaussian noise (Brock et al. 2019): fewer, more typical samples. 0 = off (the paper).

Filtering (beyond the paper, ``--filter-by disc|ckpt:PATH --keep q``): ceil(n / q) candidates per
class are generated and scored, by the run's discriminator logit or a classifier's sigmoid
confidence for the class, and the n best are written. Scoring uses the quantised 8-bit images that
are written, not the float output. Two passes over the same batches (score, then write) keep memory
flat at 512 px.
"""

from __future__ import annotations

import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from protgan.core.atomic import write_json
from protgan.core.device import resolve_device
from protgan.core.errors import ProtganError
from protgan.core.runfolder import RunLock, check_inputs, check_out_path
from protgan.data import (
    class_name, open_dataset, parse_channels, resolve_subset, to_signed_range, to_uint8_images, write_label_table,
    write_png,
)
from protgan.gan.config import SYNTH_CHECKPOINT_CHOICES, SynthConfig  # noqa: F401  (re-exported)
from protgan.gan.checkpoint import (
    best_checkpoint, discriminator_from_config, find_runs, generator_from_config, last_checkpoint, load_checkpoint,
    read_run_config,
)

MANIFEST = "manifest.json"
PROGRESS_FILE = ".synth-progress.json"
TOOL = "protgan synth"
CHECKPOINT_CHOICES = SYNTH_CHECKPOINT_CHOICES


def synth_id(class_index: int, seed: int, k: int) -> str:
    return f"syn-c{class_index:02d}-s{seed}-{k:06d}"


def class_seed(seed: int, class_index: int) -> int:
    """The noise stream of one class: independent of which other classes are generated."""
    return (seed * 1_000_003 + class_index) % (2 ** 63)


def sample_noise(n: int, z_dim: int, seed: int, class_index: int, truncation: float = 0.0) -> torch.Tensor:
    """n x z_dim standard-normal noise for a class, with |z_i| > truncation redrawn (0 = off)."""
    if truncation < 0:
        raise ProtganError(f"--truncation {truncation}: must be >= 0 (0 = off)")
    g = torch.Generator().manual_seed(class_seed(seed, class_index))
    z = torch.randn(n, z_dim, generator=g)
    if truncation > 0:
        if truncation < 0.05:
            raise ProtganError(f"--truncation {truncation}: too small to sample from (use 0 for off, or >= 0.05)")
        while True:
            bad = z.abs() > truncation
            count = int(bad.sum())
            if count == 0:
                break
            z[bad] = torch.randn(count, generator=g)
    return z


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Where we may write
# ----------------------------------------------------------------------------------------------

def is_synth_output(folder: Path) -> bool:
    """A folder a previous `protgan synth` wrote (finished or interrupted)."""
    if (folder / PROGRESS_FILE).is_file():
        return True
    try:
        return json.loads((folder / MANIFEST).read_text()).get("tool") == TOOL
    except (OSError, ValueError, AttributeError):
        return False


def check_output_folder(out: Path, runs_dir: Path, runs: dict[int, Path], data_dirs: Sequence[Path]) -> None:
    """Refuse real dataset folders (a train.csv that no synth wrote), RUNS and its runs, and the GANs' data."""
    check_out_path(out)  # a file there, under a file, or read-only: one line
    out_r = out.resolve()
    # never inside (or around) RUNS, a run, or the data the GANs were trained on (core.runfolder's rule)
    check_inputs(out, [("runs folder --runs", runs_dir), *[("train-gan run", r) for r in runs.values()],
                       *[("real dataset (the runs' --data)", d) for d in data_dirs]], writes=None)
    for folder in [out_r, *out_r.parents]:
        if (folder / "train.csv").is_file() and not is_synth_output(folder):
            raise ProtganError(f"--out {out}: {folder / 'train.csv'} belongs to a real dataset; "
                               f"synthetic images go to their own folder")
    if out_r.exists():
        if not out_r.is_dir():
            raise ProtganError(f"--out {out}: exists and is not a folder")
        if any(out_r.iterdir()) and not is_synth_output(out_r):
            raise ProtganError(f"--out {out}: folder is not empty and is not a protgan synth output")


# ----------------------------------------------------------------------------------------------
# Scorers for --filter-by
# ----------------------------------------------------------------------------------------------

Scorer = Callable[[torch.Tensor], torch.Tensor]  # uint8 B x C x S x S on the device -> B scores (higher = keep)
# (classifier checkpoint path, class index, channels, device) -> Scorer: given by the caller (the CLI passes
# protgan.classify.embedding.classifier_scorer), so gan never imports classify.
ScorerFactory = Callable[[str, int, Sequence[str], torch.device], Scorer]


def discriminator_scorer(state: dict[str, Any], config: dict[str, Any], device: torch.device, ckpt: Path) -> Scorer:
    """The run's discriminator logit on the image as written (uint8 -> [-1, 1])."""
    d_state = state.get("D")
    if d_state is None:
        raise ProtganError(f"{ckpt}: no discriminator (D) in the checkpoint for --filter-by disc")
    d = discriminator_from_config(config)
    d.load_state_dict(d_state)
    d.eval().to(device)

    @torch.no_grad()
    def score(images: torch.Tensor) -> torch.Tensor:
        return d(to_signed_range(images)).float()

    return score


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------

@dataclass
class ClassPlan:
    class_index: int
    run: Path
    checkpoint: Path


def _run_label_table(spec: str, runs: dict[int, Path]) -> list[tuple[int, ...]] | None:
    """The label table `topK` is counted on: the generators' training data (read only when needed)."""
    low = spec.strip().lower()
    if not (low.startswith("top") and low[3:].isdigit()):
        return None
    data = read_run_config(next(iter(runs.values()))).get("data")
    if not data or not Path(data, "train.csv").is_file():
        raise ProtganError(f"--classes {spec}: counted on the generators' training data, but {data}/train.csv "
                           f"is not readable (give the classes as a list)")
    return open_dataset(data).targets


def plan_classes(cfg: SynthConfig, runs: dict[int, Path]) -> tuple[list[ClassPlan], list[int]]:
    """(what to generate, the requested classes skipped because they have no generator)."""

    if cfg.classes is None or cfg.classes.strip().lower() == "all":
        wanted = sorted(runs)
    else:
        wanted = resolve_subset(cfg.classes, _run_label_table(cfg.classes, runs))
    plans, skipped = [], []
    for c in wanted:
        run = runs.get(c)
        ckpt = None if run is None else (best_checkpoint(run) if cfg.checkpoint == "best" else last_checkpoint(run))
        if run is None or not ckpt.is_file():
            what = (f"no train-gan run for class {c} in {cfg.runs}" if run is None
                    else f"{ckpt}: no {cfg.checkpoint} checkpoint for class {c}")
            if cfg.skip_missing:
                skipped.append(c)
                continue
            raise ProtganError(f"{what} (train it, or pass --skip-missing)")
        plans.append(ClassPlan(c, run, ckpt))
    if not plans:
        raise ProtganError(f"--classes {cfg.classes or 'all'}: no class with a trained generator in {cfg.runs}")
    return plans, skipped


def validate(cfg: SynthConfig) -> None:
    if cfg.per_class < 1:
        raise ProtganError(f"--per-class {cfg.per_class}: must be at least 1")
    if cfg.batch < 1:
        raise ProtganError(f"--batch {cfg.batch}: must be at least 1")
    if cfg.checkpoint not in CHECKPOINT_CHOICES:
        raise ProtganError(f"--checkpoint {cfg.checkpoint!r}: expected last or best")
    if cfg.truncation < 0:
        raise ProtganError(f"--truncation {cfg.truncation}: must be >= 0 (0 = off)")
    if cfg.filter_by is not None:
        if cfg.filter_by != "disc" and not cfg.filter_by.startswith("ckpt:"):
            raise ProtganError(f"--filter-by {cfg.filter_by!r}: expected disc or ckpt:PATH")
        if cfg.filter_by.startswith("ckpt:") and not Path(cfg.filter_by[5:]).is_file():
            raise ProtganError(f"--filter-by {cfg.filter_by}: checkpoint {cfg.filter_by[5:]} does not exist")
        if not 0.0 < cfg.keep <= 1.0:
            raise ProtganError(f"--keep {cfg.keep}: must be in (0, 1]")
    if cfg.writers < 1:
        raise ProtganError(f"--writers {cfg.writers}: must be at least 1")


def _run_batches(g: nn.Module, z: torch.Tensor, batch: int, device: torch.device, amp: bool):
    """Yield (start index, uint8 B x C x S x S on the device) for consecutive batches of z."""
    amp_dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    for start in range(0, z.shape[0], batch):
        zb = z[start:start + batch].to(device, non_blocking=True)
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            x = g(zb)
        yield start, to_uint8_images(x)


def run_synth(cfg: SynthConfig, progress: Callable[[str, int, int], None] | None = None,
              classifier_scorer: ScorerFactory | None = None) -> dict[str, Any]:
    """Generate and write the synthetic dataset; returns the manifest. `progress(label, done, total)`;
    `classifier_scorer` builds the scorer of `--filter-by ckpt:PATH`."""

    validate(cfg)
    if cfg.filter_by and cfg.filter_by.startswith("ckpt:") and classifier_scorer is None:
        raise ProtganError("--filter-by ckpt:PATH needs a classifier scorer (protgan.classify.embedding.classifier_scorer)")
    runs_dir, out = Path(cfg.runs), Path(cfg.out)
    runs = find_runs(runs_dir)
    plans, skipped = plan_classes(cfg, runs)
    configs = {}
    for p in plans:
        configs[p.class_index] = read_run_config(p.run)
    data_dirs = [Path(c["data"]) for c in configs.values() if c.get("data")]
    check_output_folder(out, runs_dir, runs, data_dirs)
    first = plans[0]
    shape = (tuple(configs[first.class_index]["channels"]), int(configs[first.class_index]["size"]))
    for p in plans[1:]:
        other = (tuple(configs[p.class_index]["channels"]), int(configs[p.class_index]["size"]))
        if other != shape:
            raise ProtganError(f"{p.run}: trained on {','.join(other[0])} at {other[1]} px, but {first.run} on "
                               f"{','.join(shape[0])} at {shape[1]} px; one synthetic set needs one format "
                               f"(pass --classes to split them)")
    channels = parse_channels(list(shape[0]))
    size = shape[1]
    with RunLock(out, what="synth"):  # one synth per --out at a time
        device = resolve_device(cfg.device)
        image_dir = out / "train"
        fresh = not image_dir.exists()
        image_dir.mkdir(parents=True, exist_ok=True)

        # Resume: classes finished by an interrupted run with the same options are not redone.
        stable_options = {k: v for k, v in asdict(cfg).items() if k not in ("device", "writers")}
        progress_path = out / PROGRESS_FILE
        finished: dict[str, Any] = {}
        if progress_path.is_file():
            try:
                prev = json.loads(progress_path.read_text())
                if prev.get("options") == stable_options:
                    finished = prev.get("classes", {})
            except (OSError, ValueError):
                finished = {}
        write_json(progress_path, {"options": stable_options, "classes": finished})

        try:
            n_cand = math.ceil(cfg.per_class / cfg.keep) if cfg.filter_by else cfg.per_class
            total = len(plans) * n_cand * (2 if cfg.filter_by else 1)
            done = 0
            entries: list[dict[str, Any]] = []
            all_ids: list[str] = []
            all_targets: list[tuple[int, ...]] = []
            with ThreadPoolExecutor(max_workers=cfg.writers) as pool:
                for p in plans:
                    c = p.class_index
                    config = configs[c]
                    sha = file_sha256(p.checkpoint)
                    key = str(c)
                    if key in finished and finished[key].get("sha256") == sha and all(
                            (image_dir / f"{i}_{ch}.png").is_file() for i in finished[key]["ids"] for ch in channels):
                        entry = finished[key]
                        done += n_cand * (2 if cfg.filter_by else 1)
                        if progress is not None:
                            progress(f"class {c} (done before)", done, total)
                    else:
                        state = load_checkpoint(p.checkpoint, map_location="cpu")
                        g = generator_from_config(state["config"])
                        use_key = "G_ema" if cfg.use_ema and state.get("G_ema") is not None else "G"
                        g.load_state_dict(state[use_key])
                        g.eval().to(device)
                        if device.type == "cuda":
                            g = g.to(memory_format=torch.channels_last)
                        z = sample_noise(n_cand, int(config.get("z_dim", 100)), cfg.seed, c, cfg.truncation)
                        label = f"class {c} {class_name(c)}"
                        keep_idx = np.arange(n_cand)
                        filter_info: dict[str, Any] | None = None
                        if cfg.filter_by:
                            scorer = (discriminator_scorer(state, config, device, p.checkpoint) if cfg.filter_by == "disc"
                                      else classifier_scorer(cfg.filter_by[5:], c, channels, device))
                            scores = []
                            for start, imgs in _run_batches(g, z, cfg.batch, device, cfg.amp):
                                scores.append(scorer(imgs))
                                done += imgs.shape[0]
                                if progress is not None:
                                    progress(f"{label}: scoring", done, total)
                            s = torch.cat(scores).cpu().numpy()
                            # the n best, ties to the lower index; kept in index order
                            order = np.lexsort((np.arange(n_cand), -s))
                            keep_idx = np.sort(order[:cfg.per_class])
                            dropped = np.setdiff1d(np.arange(n_cand), keep_idx)
                            filter_info = {"by": cfg.filter_by, "keep": cfg.keep, "candidates": n_cand,
                                           "kept": int(len(keep_idx)),
                                           "threshold": float(s[keep_idx].min()),
                                           "mean_score_kept": float(s[keep_idx].mean()),
                                           "mean_score_dropped": float(s[dropped].mean()) if len(dropped) else None}
                        keep_mask = np.zeros(n_cand, bool)
                        keep_mask[keep_idx] = True
                        ids = [synth_id(c, cfg.seed, int(k)) for k in keep_idx]
                        futures = []
                        for start, imgs in _run_batches(g, z, cfg.batch, device, cfg.amp):
                            arr = imgs.cpu().numpy()
                            for j in range(arr.shape[0]):
                                k = start + j
                                if keep_mask[k]:
                                    for ci, ch in enumerate(channels):
                                        futures.append(pool.submit(write_png, image_dir / f"{synth_id(c, cfg.seed, k)}_{ch}.png",
                                                                   arr[j, ci]))
                            # bound the queue: at most a few batches of encoded-but-unwritten images in memory
                            if len(futures) > 4 * cfg.batch * len(channels):
                                for f in futures:
                                    f.result()
                                futures = []
                            done += imgs.shape[0]
                            if progress is not None:
                                progress(f"{label}: writing", done, total)
                        for f in futures:
                            f.result()
                        entry = {"class_index": c, "class_name": class_name(c), "run": str(p.run),
                                 "checkpoint": str(p.checkpoint), "sha256": sha, "step": int(state["step"]),
                                 "weights": use_key, "count": len(ids), "filter": filter_info, "ids": ids}
                        finished[key] = entry
                        write_json(progress_path, {"options": stable_options, "classes": finished})
                    entries.append(entry)
                    all_ids.extend(entry["ids"])
                    all_targets.extend([(c,)] * len(entry["ids"]))

            # Files of an earlier synth into this folder that this one did not write would be orphans.
            keep_names = {f"{i}_{ch}.png" for i in all_ids for ch in channels}
            for f in image_dir.iterdir():
                if f.name.startswith("syn-") and f.name not in keep_names:
                    f.unlink()
            write_label_table(out / "train.csv", all_ids, all_targets)
            manifest = {
                "tool": TOOL,
                "runs": str(runs_dir),
                "seed": cfg.seed,
                "per_class": cfg.per_class,
                "checkpoint": cfg.checkpoint,
                "use_ema": cfg.use_ema,
                "truncation": cfg.truncation,
                "filter": None if not cfg.filter_by else {"by": cfg.filter_by, "keep": cfg.keep},
                "amp": cfg.amp,
                "channels": list(channels),
                "size": size,
                "id_format": "syn-c{class:02d}-s{seed}-{k:06d}",
                "total": len(all_ids),
                "skipped_classes": skipped,
                "classes": [{k: v for k, v in e.items() if k != "ids"} for e in entries],
            }
            write_json(out / "config.json", asdict(cfg))
            write_json(out / MANIFEST, manifest)
            progress_path.unlink(missing_ok=True)
            return manifest
        except BaseException:
            if not finished:  # nothing finished here: leave no progress file (nor an empty train/) behind
                progress_path.unlink(missing_ok=True)
                if fresh and not any(image_dir.iterdir()):
                    image_dir.rmdir()
            raise
