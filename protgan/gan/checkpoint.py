"""The run folder and its checkpoints: what `train-gan` writes and `synth` / `fid` read.

    RUN/config.json             TrainGanConfig as a dict (class_index, class_name, channels, size, z_dim, data, ...)
    RUN/checkpoints/last.pt     always the latest state, written atomically (temp file, then rename)
    RUN/checkpoints/best.pt     the state with the lowest eval "score" (only with an eval function)
    RUN/samples/step_XXXXXX.png fixed-noise sample grids
    RUN/metrics.csv, RUN/losses.png, RUN/ada.png (augmentation probability p and r_t, with --augment-p)

A checkpoint is a dict with keys "G", "D", "G_ema" (state_dicts), "opt_G", "opt_D", "scaler", "step",
"rng" (every RNG state: python, numpy, torch CPU and CUDA, as plain lists and tensors), "config" (the
dict; "arch" selects dcgan, fastgan or projected, absent = dcgan; "intensity_gamma", absent = 1), "best_score", "augment" (ADA's p and r_t
accumulator) and "train_seconds": only tensors and plain containers, so `torch.load(weights_only=True)` reads it.
A projected run's "D" holds its heads and fixed random projections, not the frozen EfficientNet-Lite0 trunk
(rebuilt from the package's weights by discriminator_from_config).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from protgan.core.atomic import atomic_path
from protgan.core.errors import ProtganError
from protgan.core.safeload import load_weights
from protgan.data import ImageSet, open_dataset, resolve_subset
from protgan.data.ranges import from_intensity_power, to_intensity_power
from protgan.data.selection import select_class_ids
from protgan.gan.conditional import add_label_strength, num_classes_of, subset_label_sets
from protgan.gan.config import ARCHS, parse_transition
from protgan.gan.fastgan import build_fastgan_discriminator, build_fastgan_generator
from protgan.gan.models import build_discriminator, build_generator
from protgan.gan.projected import build_projected_discriminator, input_side

CONFIG_FILE = "config.json"
CKPT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
SAMPLES_DIR = "samples"
METRICS_FILE = "metrics.csv"
LOSSES_PLOT = "losses.png"
ADA_PLOT = "ada.png"
CHECKPOINT_KEYS = ("G", "D", "G_ema", "opt_G", "opt_D", "scaler", "step", "rng", "config")


def last_checkpoint(run: str | os.PathLike) -> Path:
    return Path(run) / CKPT_DIR / LAST


def best_checkpoint(run: str | os.PathLike) -> Path:
    return Path(run) / CKPT_DIR / BEST


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """torch.save to a temporary file beside `path`, then rename: a crash never leaves a half-written one."""
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    with atomic_path(path, suffix=".pt.tmp") as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A train-gan checkpoint, loaded with weights_only=True (a .pt from anyone never runs code)."""
    path = Path(path)
    state = load_weights(path, map_location, what="train-gan checkpoint")
    if not isinstance(state, dict) or any(k not in state for k in ("G", "config", "step")):
        raise ProtganError(f"{path}: not a protgan train-gan checkpoint (missing G/config/step)")
    return state


def run_arch(config: dict[str, Any]) -> str:
    """The architecture of a run's config ("dcgan" for runs from before --arch existed)."""
    arch = str(config.get("arch", "dcgan"))
    if arch not in ARCHS:
        raise ProtganError(f"config arch {arch!r}: expected one of {', '.join(ARCHS)}")
    return arch


def generator_from_config(config: dict[str, Any]) -> nn.Module:
    """An (untrained) generator with the architecture a run's config describes: the one place that
    rebuilds G (train-gan, synth, fid and the demo all call it). forward(z: B x z_dim) -> images in [-1, 1];
    a conditional run's (config "conditional"): forward(z, y: B x K multi-hot over its class_subset)."""
    size, channels, z_dim = int(config["size"]), len(config["channels"]), int(config.get("z_dim", 100))
    k = num_classes_of(config)
    if run_arch(config) in ("fastgan", "projected"):  # the Projected GAN paper's G is FastGAN's
        g = build_fastgan_generator(size, channels, z_dim, int(config.get("g_width", 256)), k)
    else:
        g = build_generator(size, channels, z_dim, int(config.get("g_width", 1024)),
                            str(config.get("g_upsample", "transposed")), k)
    if k and parse_transition(config.get("cond_transition", "")):  # --cond-transition: y scaled by its lambda
        add_label_strength(g, y_position=1)
    gamma = float(config.get("intensity_gamma", 1.0))
    if gamma != 1.0:  # G's tanh makes intensity**gamma; every caller gets linear images (a hook: no new weights)
        g.register_forward_hook(lambda _module, _args, out: from_intensity_power(out, gamma))
    return g


def discriminator_from_config(config: dict[str, Any]) -> nn.Module:
    """An (untrained) discriminator with the architecture a run's config describes (the one place for D).
    dcgan: forward(x) -> logits (B,); fastgan and projected: a tuple whose first element is the logits (B,).
    A conditional run's D is a projection discriminator: forward(x, y=labels)."""
    size, channels = int(config["size"]), len(config["channels"])
    k = num_classes_of(config)
    arch = run_arch(config)
    if arch == "projected":  # its random projections are drawn from the run's seed (and saved in "D")
        d = build_projected_discriminator(config["channels"], int(config.get("d_width", 256)),
                                          input_side(size, int(config.get("projected_input", 0))),
                                          bool(config.get("projected_csm", True)), int(config.get("seed", 0)), k,
                                          size if config.get("projected_pixel") else 0,
                                          bool(k and float(config.get("class_loss", 0.0)) > 0),
                                          str(config.get("projection", "pooled")))
    elif arch == "fastgan":
        d = build_fastgan_discriminator(size, channels, int(config.get("d_width", 256)), k)
    else:
        d = build_discriminator(size, channels, int(config.get("d_width", 1024)), float(config.get("dropout", 0.25)), k)
    if k and parse_transition(config.get("cond_transition", "")):
        add_label_strength(d, y_position=None)
    gamma = float(config.get("intensity_gamma", 1.0))
    if gamma != 1.0:  # D is handed linear images and sees intensity**gamma (fastgan's decoders still rebuild linear)
        d.register_forward_pre_hook(lambda _module, args: (to_intensity_power(args[0], gamma), *args[1:]))
    return d


def image_logits(output: torch.Tensor | tuple) -> torch.Tensor:
    """The per-image logits (B,) of any discriminator's output (fastgan's and projected's D return a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def load_generator(ckpt_path: str | os.PathLike, use_ema: bool = True,
                   map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(generator in eval mode, the run's config dict) from a checkpoint file (or a RUN folder: its last.pt).

    use_ema: the exponential-moving-average weights (what sampling should use); False: the raw G.
    """
    path = Path(ckpt_path)
    if path.is_dir():
        path = last_checkpoint(path)
    state = load_checkpoint(path, map_location)
    config = dict(state["config"])
    g = generator_from_config(config)
    key = "G_ema" if use_ema and state.get("G_ema") is not None else "G"
    g.load_state_dict(state[key])
    g.to(map_location)
    g.eval()
    return g, config


def read_run_config(run: str | os.PathLike) -> dict[str, Any]:
    path = Path(run) / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProtganError(f"{path}: not a train-gan run (no config.json)") from None
    except json.JSONDecodeError as e:
        raise ProtganError(f"{path}: unreadable JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(config, dict) or "class_index" not in config:
        raise ProtganError(f"{path}: not a train-gan config (no class_index)")
    return config


def training_set(config: dict[str, Any]) -> tuple[ImageSet, list[str]]:
    """The dataset and Ids a run's generator was trained on (its data, class, --classes and --select:
    the rule GanTrainer applies). One-line error when the run's data folder is gone."""
    data = config.get("data")
    if not data or not (Path(data) / "train.csv").is_file():
        raise ProtganError(f"the run of class {config.get('class_index')} was trained on {data}, which is not "
                           f"readable any more (its training images are needed)")
    ds = open_dataset(data)
    if config.get("conditional"):  # every image with a label of the subset (train_ids when recorded)
        ids = list(config.get("train_ids") or subset_label_sets(ds.ids, ds.targets, config["class_subset"])[0])
        return ds, ids
    if config.get("train_ids"):  # recorded by train-gan (per-fold runs: the fold's training part only)
        return ds, list(config["train_ids"])
    subset = resolve_subset(config.get("classes", "all"), ds.targets)
    return ds, select_class_ids(ds.ids, ds.targets, int(config["class_index"]), subset, config.get("select", "only"))


def run_classes(config: dict[str, Any]) -> list[int]:
    """The classes a train-gan run learned: its class, or a conditional run's subset (in its grid's row order)."""
    return [int(c) for c in config["class_subset"]] if config.get("conditional") else [int(config["class_index"])]


def find_runs(runs_dir: str | os.PathLike) -> dict[int, Path]:
    """Class index -> run folder, for every sub-folder of RUNS holding a config.json (RUNS itself if it is a run).

    One-line errors: RUNS missing, no runs in it, two runs for one class.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise ProtganError(f"{root}: runs folder does not exist")
    candidates = [root] if (root / CONFIG_FILE).is_file() else sorted(
        p for p in root.iterdir() if p.is_dir() and (p / CONFIG_FILE).is_file())
    runs: dict[int, Path] = {}
    for run in candidates:
        config = read_run_config(run)
        for index in run_classes(config):  # a conditional run is the run of every class of its subset
            if index in runs:
                raise ProtganError(f"{root}: two runs for class {index}: {runs[index].name} and {run.name} (keep one)")
            runs[index] = run
    if not runs:
        raise ProtganError(f"{root}: no train-gan runs (sub-folders with a config.json)")
    return runs
