"""Synthetic images from trained per-class generators, written as a dataset (the paper: 1000 per class).

    SYN/train.csv                   Id,Target  (Target = the class the generator was trained on; a conditional
                                    run's: the label set it was given, see below)
    SYN/train/{Id}_{channel}.png    the channels the GAN was trained on, 8-bit, the GAN's size
    SYN/manifest.json               checkpoints (path, sha256, step), seed, counts, truncation, filter, and per
                                    class the `generator` record: the fold it was trained on (None = every
                                    image), the sha256 and count of the real Ids it saw
    SYN/generator_ids.json          per class, the sorted real Ids its generator saw (checked against the
                                    manifest's sha256 by protgan.data.provenance before a fold uses them)
    SYN/config.json                 the options used

A conditional run (`train-gan --conditional`) is the run of every class of its subset: N images per class,
each generated with `--labels single` (the class alone) or `--labels follow-real` (the label set of a real
training image of the run that carries the class, drawn uniformly from its own stream seeded by (seed,
class): the real co-occurrence); the manifest records the mode ("labels") and train.csv the label sets.

Per-fold runs (RUNS/fold_K/class_C, `train-gan --classes top5 --folds 5`) give one such set per fold,
SYN/fold_K/, plus SYN/manifest.json (layout "per-fold") listing them.

Ids are ``syn-c{class:02d}-s{seed}-{k:06d}`` (k = the candidate's index in the class's noise stream):
Kaggle Ids are UUIDs, so they cannot collide, and an Id says where its image came from.

Determinism: the noise of class c comes from its own CPU generator seeded by (seed, c), drawn for all
candidates up front, so image k depends on (checkpoint, seed, class, k, truncation) only; PNG encoding
is deterministic, so a re-run writes the same bytes (on the same device and batch size: GPU
convolutions may differ in the last bit between batch sizes).

Truncation (``--truncation t``): every |z_i| > t is redrawn until none is left, the truncation trick
for Gaussian noise (Brock et al. 2019): fewer, more typical samples. 0 = off (the paper).

Filtering (beyond the paper, ``--filter-by disc|ckpt:PATH|copies --keep q``): ceil(n / q) candidates
per class are generated and scored, by the run's discriminator logit, a classifier's sigmoid
confidence for the class, or (``copies``) the distance to the nearest training image of the
generator over the near-copy threshold tau (protgan.evaluation.memorisation: below 1 = near-copy, in
efficientnet_lite0 features), and the n best are written: ``copies`` drops the nearest copies first. Scoring uses the quantised 8-bit images that
are written, not the float output. Two passes over the same batches (score, then write) keep memory
flat at 512 px.
"""

from __future__ import annotations

import hashlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
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
from protgan.data.provenance import GENERATOR_IDS_FILE, MANIFEST, fold_dir, per_fold_folders
from protgan.gan import conditional
from protgan.gan.config import LABEL_CHOICES, SYNTH_CHECKPOINT_CHOICES, SynthConfig
from protgan.gan.checkpoint import (
    CONFIG_FILE, best_checkpoint, discriminator_from_config, find_runs, generator_from_config, image_logits, last_checkpoint, load_checkpoint,
    read_run_config, training_set,
)
from protgan.evaluation.distances import nearest_neighbours
from protgan.evaluation.features import dataset_features, make_extractor
from protgan.evaluation.memorisation import copy_threshold

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


def discriminator_scorer(state: dict[str, Any], config: dict[str, Any], device: torch.device, ckpt: Path,
                         labels: torch.Tensor | None = None) -> Scorer:
    """The run's discriminator logit on the image as written (uint8 -> [-1, 1]); a conditional run's D
    also gets each candidate's label vector (`labels`, in candidate order, consumed batch by batch)."""
    d_state = state.get("D")
    if d_state is None:
        raise ProtganError(f"{ckpt}: no discriminator (D) in the checkpoint for --filter-by disc")
    d = discriminator_from_config(config)
    d.load_state_dict(d_state)
    d.eval().to(device)

    done = [0]

    @torch.no_grad()
    def score(images: torch.Tensor) -> torch.Tensor:
        if labels is None:
            return image_logits(d(to_signed_range(images))).float()
        y = labels[done[0]:done[0] + images.shape[0]].to(device)
        done[0] += images.shape[0]
        return image_logits(d(to_signed_range(images), y=y)).float()

    return score


COPIES_FEATURES = "efficientnet_lite0"  # offline: the filter works without any weights file


def copies_scorer(config: dict[str, Any], device: torch.device) -> tuple[Scorer, float]:
    """(distance to the nearest training image of the run / tau, tau): below 1 is a near-copy."""
    ds, ids = training_set(config)
    if len(ids) < 2:
        raise ProtganError(f"--filter-by copies: class {config.get('class_index')} has {len(ids)} training images")
    channels, size = tuple(config["channels"]), int(config["size"])
    extractor = make_extractor(COPIES_FEATURES, device)
    train = dataset_features(ds, ids, channels, size, extractor, workers=0)
    tau = copy_threshold(train, percentile=5.0)
    train_t = torch.from_numpy(train).to(device)

    def score(images: torch.Tensor) -> torch.Tensor:
        dist, _ = nearest_neighbours(extractor(images, channels), train_t)
        return torch.from_numpy(dist / tau if tau > 0 else dist)

    return score, tau


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
        if cfg.filter_by not in ("disc", "copies") and not cfg.filter_by.startswith("ckpt:"):
            raise ProtganError(f"--filter-by {cfg.filter_by!r}: expected disc, copies or ckpt:PATH")
        if cfg.filter_by.startswith("ckpt:") and not Path(cfg.filter_by[5:]).is_file():
            raise ProtganError(f"--filter-by {cfg.filter_by}: checkpoint {cfg.filter_by[5:]} does not exist")
        if not 0.0 < cfg.keep <= 1.0:
            raise ProtganError(f"--keep {cfg.keep}: must be in (0, 1]")
    if cfg.writers < 1:
        raise ProtganError(f"--writers {cfg.writers}: must be at least 1")
    if cfg.labels not in LABEL_CHOICES:
        raise ProtganError(f"--labels {cfg.labels!r}: expected one of {', '.join(LABEL_CHOICES)}")


def _run_batches(g: nn.Module, z: torch.Tensor, batch: int, device: torch.device, amp: bool,
                 y: torch.Tensor | None = None):
    """Yield (start index, uint8 B x C x S x S on the device) for consecutive batches of z (and labels y of
    a conditional generator)."""
    amp_dtype = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() else torch.float16
    for start in range(0, z.shape[0], batch):
        zb = z[start:start + batch].to(device, non_blocking=True)
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            x = g(zb) if y is None else g(zb, y[start:start + batch].to(device))
        yield start, to_uint8_images(x)


# ----------------------------------------------------------------------------------------------
# One synth run, step by step: plan -> (per class: reuse or generate) -> label table + manifest
# ----------------------------------------------------------------------------------------------

@dataclass
class SynthJob:
    """What every class of one synth run shares (checked once by `_prepare_job`)."""

    cfg: SynthConfig
    runs_dir: Path
    out: Path
    plans: list[ClassPlan]
    skipped: list[int]
    configs: dict[int, dict[str, Any]]  # class -> its run's config.json
    channels: tuple[str, ...]
    size: int
    device: torch.device
    n_cand: int  # candidates generated per class (more than per_class when filtering)
    passes: int  # passes over the candidates: 2 with a filter (score, then write), else 1
    progress: Callable[[str, int, int], None]
    classifier_scorer: ScorerFactory | None
    done: int = 0

    @property
    def image_dir(self) -> Path:
        return self.out / "train"

    @property
    def total(self) -> int:
        return len(self.plans) * self.n_cand * self.passes

    def tick(self, label: str, n: int) -> None:
        self.done += n
        self.progress(label, self.done, self.total)


def _common_format(plans: Sequence[ClassPlan], configs: dict[int, dict[str, Any]]) -> tuple[tuple[str, ...], int]:
    """(channels, size) shared by every plan's run: one synthetic set has one format."""
    first = plans[0]
    shape = (tuple(configs[first.class_index]["channels"]), int(configs[first.class_index]["size"]))
    for p in plans[1:]:
        other = (tuple(configs[p.class_index]["channels"]), int(configs[p.class_index]["size"]))
        if other != shape:
            raise ProtganError(f"{p.run}: trained on {','.join(other[0])} at {other[1]} px, but {first.run} on "
                               f"{','.join(shape[0])} at {shape[1]} px; one synthetic set needs one format "
                               f"(pass --classes to split them)")
    return parse_channels(list(shape[0])), shape[1]


def _prepare_job(cfg: SynthConfig, progress: Callable[[str, int, int], None] | None,
                 classifier_scorer: ScorerFactory | None) -> SynthJob:
    """Check the options, find the runs and their classes, refuse a bad --out, agree on one format."""
    validate(cfg)
    if cfg.filter_by and cfg.filter_by.startswith("ckpt:") and classifier_scorer is None:
        raise ProtganError("--filter-by ckpt:PATH needs a classifier scorer (protgan.classify.embedding.classifier_scorer)")
    runs_dir, out = Path(cfg.runs), Path(cfg.out)
    runs = find_runs(runs_dir)
    plans, skipped = plan_classes(cfg, runs)
    configs = {p.class_index: read_run_config(p.run) for p in plans}
    if cfg.labels != "single" and not any(c.get("conditional") for c in configs.values()):
        raise ProtganError(f"--labels {cfg.labels}: needs a conditional run (train-gan --conditional); {runs_dir} holds "
                           f"per-class runs, whose images carry their class alone")
    check_output_folder(out, runs_dir, runs, [Path(c["data"]) for c in configs.values() if c.get("data")])
    channels, size = _common_format(plans, configs)
    n_cand = math.ceil(cfg.per_class / cfg.keep) if cfg.filter_by else cfg.per_class
    return SynthJob(cfg, runs_dir, out, plans, skipped, configs, channels, size, resolve_device(cfg.device), n_cand,
                    2 if cfg.filter_by else 1, progress or (lambda label, done, total: None), classifier_scorer)


class _ProgressFile:
    """OUT/.synth-progress.json: the classes an interrupted run finished, valid for the same options only."""

    def __init__(self, cfg: SynthConfig, out: Path) -> None:
        self.path = out / PROGRESS_FILE
        self.options = {k: v for k, v in asdict(cfg).items() if k not in ("device", "writers")}
        self.classes: dict[str, Any] = {}
        if self.path.is_file():
            try:
                prev = json.loads(self.path.read_text())
                if prev.get("options") == self.options:
                    self.classes = prev.get("classes", {})
            except (OSError, ValueError):
                self.classes = {}
        self.save()

    def save(self) -> None:
        write_json(self.path, {"options": self.options, "classes": self.classes})

    def finished(self, job: SynthJob, c: int, sha: str) -> dict[str, Any] | None:
        """The entry of class c when it was written by this checkpoint and every file is still there."""
        entry = self.classes.get(str(c))
        if not entry or entry.get("sha256") != sha or "generator" not in entry:
            return None
        ok = all((job.image_dir / f"{i}_{ch}.png").is_file() for i in entry["ids"] for ch in job.channels)
        return entry if ok else None

    def record(self, c: int, entry: dict[str, Any]) -> None:
        self.classes[str(c)] = entry
        self.save()


def _load_sampler(job: SynthJob, state: dict[str, Any]) -> tuple[nn.Module, str]:
    """(the generator on the device in eval mode, which weights: G_ema or G)."""
    g = generator_from_config(state["config"])
    use_key = "G_ema" if job.cfg.use_ema and state.get("G_ema") is not None else "G"
    g.load_state_dict(state[use_key])
    g.eval().to(job.device)
    if job.device.type == "cuda":
        g = g.to(memory_format=torch.channels_last)
    return g, use_key


def candidate_labels(job: SynthJob, c: int, n: int) -> tuple[torch.Tensor | None, list[tuple[int, ...]]]:
    """(the label vectors G gets, None for a per-class run; each candidate's label set as class indices).
    --labels single: class c alone; follow-real: real training label sets carrying c (conditional runs)."""
    config = job.configs[c]
    if not config.get("conditional"):
        return None, [(c,)] * n
    subset = [int(k) for k in config["class_subset"]]
    if job.cfg.labels == "single":
        sets = [(subset.index(c),)] * n
    else:
        ds, ids = training_set(config)
        target_of = dict(zip(ds.ids, ds.targets))
        _, real_sets, _ = conditional.subset_label_sets(ids, [target_of[i] for i in ids], subset)
        rng = np.random.default_rng(class_seed(job.cfg.seed, c))  # its own stream: the noise z is unchanged
        sets = conditional.follow_real_sets(real_sets, subset.index(c), n, rng)
    return conditional.multi_hot(sets, len(subset)), [tuple(sorted(subset[k] for k in s)) for s in sets]


def _filter_candidates(job: SynthJob, p: ClassPlan, state: dict[str, Any], g: nn.Module,
                       z: torch.Tensor, y: torch.Tensor | None = None) -> tuple[np.ndarray, dict[str, Any] | None]:
    """(indices of the candidates to write, the filter's record): all of them without --filter-by,
    else the per_class best scored (ties to the lower index), in index order."""
    cfg, c = job.cfg, p.class_index
    if not cfg.filter_by:
        return np.arange(job.n_cand), None
    tau = None
    if cfg.filter_by == "disc":
        scorer = discriminator_scorer(state, job.configs[c], job.device, p.checkpoint, y)
    elif cfg.filter_by == "copies":
        scorer, tau = copies_scorer(job.configs[c], job.device)
    else:
        scorer = job.classifier_scorer(cfg.filter_by[5:], c, job.channels, job.device)
    scores = []
    for _, imgs in _run_batches(g, z, cfg.batch, job.device, cfg.amp, y):
        scores.append(scorer(imgs))
        job.tick(f"class {c} {class_name(c)}: scoring", imgs.shape[0])
    s = torch.cat(scores).cpu().numpy()
    order = np.lexsort((np.arange(job.n_cand), -s))
    keep_idx = np.sort(order[:cfg.per_class])
    dropped = np.setdiff1d(np.arange(job.n_cand), keep_idx)
    info = {"by": cfg.filter_by, "keep": cfg.keep, "candidates": job.n_cand, "kept": int(len(keep_idx)),
            "threshold": float(s[keep_idx].min()), "mean_score_kept": float(s[keep_idx].mean()),
            "mean_score_dropped": float(s[dropped].mean()) if len(dropped) else None}
    if tau is not None:  # scores are distance / tau: below 1 is a near-copy
        info.update(tau=tau, near_copies_candidates=int((s < 1).sum()), near_copies_kept=int((s[keep_idx] < 1).sum()))
    return keep_idx, info


def _write_images(job: SynthJob, c: int, g: nn.Module, z: torch.Tensor, keep_idx: np.ndarray,
                  pool: ThreadPoolExecutor, y: torch.Tensor | None = None) -> None:
    """Generate the candidates again, batch by batch, and write the kept ones (PNG encoding in `pool`)."""
    cfg = job.cfg
    keep_mask = np.zeros(job.n_cand, bool)
    keep_mask[keep_idx] = True
    futures = []
    for start, imgs in _run_batches(g, z, cfg.batch, job.device, cfg.amp, y):
        arr = imgs.cpu().numpy()
        for j in np.flatnonzero(keep_mask[start:start + arr.shape[0]]):
            name = synth_id(c, cfg.seed, start + int(j))
            futures += [pool.submit(write_png, job.image_dir / f"{name}_{ch}.png", arr[j, ci])
                        for ci, ch in enumerate(job.channels)]
        # bound the queue: at most a few batches of encoded-but-unwritten images in memory
        if len(futures) > 4 * cfg.batch * len(job.channels):
            for f in futures:
                f.result()
            futures = []
        job.tick(f"class {c} {class_name(c)}: writing", imgs.shape[0])
    for f in futures:
        f.result()


def generator_record(config: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str] | None]:
    """(the manifest's record of which real images a generator saw, the full sorted Id list), or
    (None, None) for a run made before train-gan recorded them."""
    if not config.get("train_ids_sha256"):
        return None, None
    ids = list(config.get("train_ids", []))
    return {"fold": config.get("fold"), "folds": config.get("folds"), "train_ids_sha256": config["train_ids_sha256"],
            "n_train_ids": len(ids), "data": config.get("data"), "folds_file": config.get("folds_file") or None}, ids


def _generate_class(job: SynthJob, p: ClassPlan, sha: str, pool: ThreadPoolExecutor) -> dict[str, Any]:
    """Generate (and filter) one class's images and write them; returns its manifest entry."""
    c, cfg = p.class_index, job.cfg
    state = load_checkpoint(p.checkpoint, map_location="cpu")
    g, use_key = _load_sampler(job, state)
    z = sample_noise(job.n_cand, int(job.configs[c].get("z_dim", 100)), cfg.seed, c, cfg.truncation)
    y, label_sets = candidate_labels(job, c, job.n_cand)
    keep_idx, filter_info = _filter_candidates(job, p, state, g, z, y)
    _write_images(job, c, g, z, keep_idx, pool, y)
    mode = cfg.labels if y is not None else None
    generator, train_ids = generator_record(state["config"])  # the checkpoint's own record made these images
    return {"class_index": c, "class_name": class_name(c), "run": str(p.run), "checkpoint": str(p.checkpoint),
            "sha256": sha, "step": int(state["step"]), "weights": use_key, "count": int(len(keep_idx)),
            "filter": filter_info, "generator": generator, "ids": [synth_id(c, cfg.seed, int(k)) for k in keep_idx],
            "generator_ids": train_ids, "conditional": y is not None, "labels": mode,
            "targets": [list(label_sets[int(k)]) for k in keep_idx]}


def _remove_orphans(image_dir: Path, ids: Sequence[str], channels: Sequence[str]) -> None:
    """Files of an earlier synth into this folder that this one did not write would be orphans."""
    keep_names = {f"{i}_{ch}.png" for i in ids for ch in channels}
    for f in image_dir.iterdir():
        if f.name.startswith("syn-") and f.name not in keep_names:
            f.unlink()


def _manifest(job: SynthJob, entries: Sequence[dict[str, Any]], total: int) -> dict[str, Any]:
    cfg = job.cfg
    return {
        "tool": TOOL,
        "runs": str(job.runs_dir),
        "seed": cfg.seed,
        "per_class": cfg.per_class,
        "checkpoint": cfg.checkpoint,
        "use_ema": cfg.use_ema,
        "truncation": cfg.truncation,
        "filter": None if not cfg.filter_by else {"by": cfg.filter_by, "keep": cfg.keep},
        "amp": cfg.amp,
        "channels": list(job.channels),
        "size": job.size,
        "id_format": "syn-c{class:02d}-s{seed}-{k:06d}",
        "total": total,
        "skipped_classes": job.skipped,
        "generator_ids": GENERATOR_IDS_FILE,
        # --labels of the conditional runs' images (None: every class from a per-class run, its label alone)
        "labels": cfg.labels if any(e.get("conditional") for e in entries) else None,
        "classes": [{k: v for k, v in e.items() if k not in ("ids", "generator_ids", "targets")} for e in entries],
    }


def run_synth(cfg: SynthConfig, progress: Callable[[str, int, int], None] | None = None,
              classifier_scorer: ScorerFactory | None = None) -> dict[str, Any]:
    """Generate and write the synthetic dataset; returns the manifest. `progress(label, done, total)`;
    `classifier_scorer` builds the scorer of `--filter-by ckpt:PATH`. Per-fold runs (RUNS/fold_K/class_C)
    write one synthetic set per fold, OUT/fold_K (see `run_synth_per_fold`)."""
    if not (Path(cfg.runs) / CONFIG_FILE).is_file() and per_fold_folders(cfg.runs):
        return run_synth_per_fold(cfg, progress, classifier_scorer)
    job = _prepare_job(cfg, progress, classifier_scorer)
    with RunLock(job.out, what="synth"):  # one synth per --out at a time
        return _write_synth(cfg, job)


def _write_synth(cfg: SynthConfig, job: SynthJob) -> dict[str, Any]:
    fresh = not job.image_dir.exists()
    job.image_dir.mkdir(parents=True, exist_ok=True)
    saved = _ProgressFile(cfg, job.out)  # resume: classes finished with the same options are not redone
    entries: list[dict[str, Any]] = []
    try:
        with ThreadPoolExecutor(max_workers=cfg.writers) as pool:
            for p in job.plans:
                sha = file_sha256(p.checkpoint)
                entry = saved.finished(job, p.class_index, sha)
                if entry is not None:
                    job.tick(f"class {p.class_index} (done before)", job.n_cand * job.passes)
                else:
                    entry = _generate_class(job, p, sha, pool)
                    saved.record(p.class_index, entry)
                entries.append(entry)
    except BaseException:
        if not saved.classes:  # nothing finished here: leave no progress file (nor an empty train/) behind
            saved.path.unlink(missing_ok=True)
            if fresh and not any(job.image_dir.iterdir()):
                job.image_dir.rmdir()
        raise
    all_ids = [i for e in entries for i in e["ids"]]
    _remove_orphans(job.image_dir, all_ids, job.channels)
    targets = [tuple(t) for e in entries for t in e.get("targets") or [(e["class_index"],)] * len(e["ids"])]
    write_label_table(job.out / "train.csv", all_ids, targets)
    manifest = _manifest(job, entries, len(all_ids))
    write_json(job.out / GENERATOR_IDS_FILE, {str(e["class_index"]): e["generator_ids"] for e in entries
                                              if e.get("generator_ids") is not None})
    write_json(job.out / "config.json", asdict(cfg))
    write_json(job.out / MANIFEST, manifest)
    saved.path.unlink(missing_ok=True)
    return manifest


def run_synth_per_fold(cfg: SynthConfig, progress: Callable[[str, int, int], None] | None = None,
                       classifier_scorer: ScorerFactory | None = None) -> dict[str, Any]:
    """RUNS/fold_K/ (per-fold generators, `train-gan --folds N` fan-out) -> OUT/fold_K/, one synthetic set
    per fold with the same options, and OUT/manifest.json listing them. classify/compare --synthetic OUT
    give fold K the images of OUT/fold_K only."""
    runs_dir, out = Path(cfg.runs), Path(cfg.out)
    folds = per_fold_folders(runs_dir)
    if out.is_dir() and any(out.iterdir()) and not is_synth_output(out):
        raise ProtganError(f"--out {out}: folder is not empty and is not a protgan synth output")
    sets: dict[str, Any] = {}
    entries: list[dict[str, Any]] = []
    for k, runs in folds.items():
        m = run_synth(replace(cfg, runs=str(runs), out=str(fold_dir(out, k))), progress, classifier_scorer)
        sets[str(k)] = {"folder": fold_dir(out, k).name, "runs": str(runs), "total": m["total"]}
        entries += [{**e, "fold_set": k} for e in m["classes"]]
    manifest = {"tool": TOOL, "layout": "per-fold", "runs": str(runs_dir), "seed": cfg.seed,
                "per_class": cfg.per_class, "labels": m["labels"], "channels": m["channels"], "size": m["size"],
                "folds": sets,
                "total": sum(v["total"] for v in sets.values()),
                "skipped_classes": sorted({c for k in folds for c in json.loads(
                    (fold_dir(out, k) / MANIFEST).read_text())["skipped_classes"]}),
                "classes": entries}
    write_json(out / "config.json", asdict(cfg))
    write_json(out / MANIFEST, manifest)
    return manifest
