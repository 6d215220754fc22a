"""Writing the demo dataset: OUT/config.json, OUT/train/{Id}_{channel}.png, then OUT/train.csv last.

Each image has its own random streams derived from (seed, index), one for its labels and one for its
pixels, so the files do not depend on the number of workers or on which images were already written.
An interrupted run leaves only whole files (atomic writes); running the same command again finishes
it. A folder holding anything else (other data, or demo-data made with other options) is refused.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from protgan.core.atomic import write_json
from protgan.data.channels import CHANNEL_ORDER
from protgan.data.dataset import IMAGE_SUBDIR, LABEL_FILE, write_label_table
from protgan.data.demo.labels import resolve_demo_classes, sample_labels
from protgan.data.demo.render import MAX_SIZE, MIN_SIZE, render_sample
from protgan.data.imageio import write_png
from protgan.core.runfolder import check_out_path
from protgan.core.errors import ProtganError
from protgan.core.jobs import cpu_jobs

GENERATOR_VERSION = "protgan-demo-1"  # bump when the pictures change: old folders are then refused
CONFIG_FILE = "config.json"
MAX_N = 10_000_000
_IDENTITY = ("generator", "n", "size", "seed", "classes")  # what makes two outputs the same


@dataclass
class DemoDataConfig:
    """The options of one demo-data output (written to OUT/config.json)."""

    out: str
    n: int = 2000
    size: int = 512
    seed: int = 0
    classes: list[int] = field(default_factory=list)
    workers: int = 1
    generator: str = GENERATOR_VERSION

    def identity(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k in _IDENTITY}


def image_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(labels stream, pixels stream) of image `index`: independent of workers and of other images."""
    return np.random.default_rng([seed, index, 0]), np.random.default_rng([seed, index, 1])


def image_id(index: int) -> str:
    return f"demo-{index:06d}"


def demo_labels(n: int, seed: int, classes: Sequence[int]) -> list[tuple[int, ...]]:
    """The label sets of images 0..n-1 (cheap: no rendering)."""
    return [sample_labels(image_rngs(seed, i)[0], classes) for i in range(n)]


def validate_options(n: int, size: int, seed: int, workers: int) -> None:
    if not 1 <= n <= MAX_N:
        raise ProtganError(f"--n {n}: the number of images must be 1..{MAX_N}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ProtganError(f"--size {size}: image size must be {MIN_SIZE}..{MAX_SIZE} pixels")
    if not 0 <= seed < 2**63:
        raise ProtganError(f"--seed {seed}: must be a non-negative integer")
    if workers < 0:
        raise ProtganError(f"--workers {workers}: must be >= 0 (0 = all cores)")


def _claim(out: Path, cfg: DemoDataConfig) -> bool:
    """Make `out` ours: new/empty folder, or a previous output of the same options (returns True: resume)."""
    check_out_path(out)  # a file there, under a file, or read-only: one line (core.runfolder)
    if not out.exists() or not any(out.iterdir()):
        return False
    cfg_path = out / CONFIG_FILE
    try:
        old = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        old = None
    if not isinstance(old, dict) or old.get("generator", "").split("-")[:2] != ["protgan", "demo"]:
        raise ProtganError(f"{out}: folder is not empty and is not a demo-data output; choose a new or empty folder")
    want = cfg.identity()
    diff = [k for k in _IDENTITY if old.get(k) != want[k]]
    if diff:
        what = ", ".join(f"{k} {old.get(k)!r} (asked {want[k]!r})" for k in diff)
        raise ProtganError(f"{out}: holds demo-data made with other options: {what}; choose a new or empty folder")
    return True


def _write_one(job: tuple[str, str, int, int, int, tuple[int, ...]]) -> int:
    image_dir, id_, size, seed, index, labels = job
    _, rng = image_rngs(seed, index)
    stack, _ = render_sample(rng, size, labels, with_masks=False)
    for ch, plane in zip(CHANNEL_ORDER, stack):
        write_png(Path(image_dir) / f"{id_}_{ch}.png", plane, rle=True)
    return index


def _pool_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already


def generate_demo_dataset(
    out: Path,
    n: int = 2000,
    size: int = 512,
    seed: int = 0,
    classes: str | list[int] = "top5",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write an HPA-like synthetic dataset to `out` (train.csv + train/{Id}_{channel}.png); returns `out`.

    classes: `top5` (Nucleoplasm, Cytosol, Plasma membrane, Nucleoli, Mitochondria), `topK`, `all`
    (every class the generator draws) or a list of indices/names. workers: processes (0 = all cores).
    progress(done, total) is called after each image. Same options -> byte-identical files.
    """
    validate_options(n, size, seed, workers)
    cls = resolve_demo_classes(classes)
    out = Path(out)
    workers = cpu_jobs(workers)
    cfg = DemoDataConfig(out=str(out), n=n, size=size, seed=seed, classes=cls, workers=workers)
    resuming = _claim(out, cfg)
    image_dir = out / IMAGE_SUBDIR
    image_dir.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG_FILE, asdict(cfg))
    if resuming:  # temp files of an interrupted run (a killed worker cannot clean up after itself)
        for stale in image_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    labels = demo_labels(n, seed, cls)
    ids = [image_id(i) for i in range(n)]
    existing = {e.name for e in os.scandir(image_dir)} if resuming else set()
    todo = [
        (str(image_dir), ids[i], size, seed, i, labels[i])
        for i in range(n)
        if not all(f"{ids[i]}_{ch}.png" in existing for ch in CHANNEL_ORDER)
    ]
    done = n - len(todo)
    if progress:
        progress(done, n)
    if workers == 1 or len(todo) < 2:
        for job in todo:
            _write_one(job)
            done += 1
            if progress:
                progress(done, n)
    else:
        pool = mp.get_context().Pool(min(workers, len(todo)), initializer=_pool_init)
        try:
            for _ in pool.imap_unordered(_write_one, todo, chunksize=max(1, min(16, len(todo) // (workers * 8)))):
                done += 1
                if progress:
                    progress(done, n)
            pool.close()
        except BaseException:
            pool.terminate()
            raise
        finally:
            pool.join()
    write_label_table(out / LABEL_FILE, ids, labels)  # last: the dataset is complete when it appears
    return out
