"""A packed uint8 cache: one `.npy` array N x C x S x S (memory-mapped on read) plus a JSON index.

Decoding PNG costs ~3 ms per 512x512 channel; a training epoch over 31k x 4 channels would spend most
of its time there. The cache decodes once. It lives in `DATA/cache/{channels}-{size}.npy` so every
loader finds it; it is written under a temporary name and renamed when complete, and an interrupted
build resumes from its last flushed chunk.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from protgan.core.atomic import write_json
from protgan.data.channels import channel_set_name
from protgan.data.dataset import ImageSet
from protgan.data.imageio import read_channel
from protgan.core.errors import ProtganError
from protgan.core.runfolder import check_out_path
from protgan.core.jobs import cpu_jobs

CACHE_SUBDIR = "cache"


def cache_paths(cache_dir: Path, channels: Sequence[str], size: int) -> tuple[Path, Path]:
    stem = f"{channel_set_name(tuple(channels)).replace(',', '+')}-{size}"
    return cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"


def read_stack(ds: ImageSet, id_: str, channels: Sequence[str], size: int) -> np.ndarray:
    """C x S x S uint8 of one id, decoded from its channel files."""
    return np.stack([read_channel(ds.path(id_, c), size) for c in channels])


@dataclass
class PackedCache:
    path: Path
    ids: list[str]
    channels: tuple[str, ...]
    size: int
    _array: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.row = {i: k for k, i in enumerate(self.ids)}

    @property
    def array(self) -> np.ndarray:
        # Opened lazily so a Dataset pickled into loader workers carries no mapping, each worker maps its own.
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def covers(self, ids: Sequence[str], channels: Sequence[str], size: int) -> bool:
        return size == self.size and set(channels) <= set(self.channels) and all(i in self.row for i in ids)

    def channel_index(self, channels: Sequence[str]) -> list[int]:
        return [self.channels.index(c) for c in channels]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_array"] = None
        return state


def open_cache(npy: Path) -> PackedCache:
    meta_path = npy.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    return PackedCache(npy, meta["ids"], tuple(meta["channels"]), int(meta["size"]))


def find_cache(ds: ImageSet, channels: Sequence[str], size: int, ids: Sequence[str] | None = None,
               cache_dir: Path | None = None) -> PackedCache | None:
    """A complete cache under `cache_dir` (default DATA/cache) that holds `ids` x `channels` at `size`."""
    cache_dir = cache_dir or ds.root / CACHE_SUBDIR
    if not cache_dir.is_dir():
        return None
    ids = ds.ids if ids is None else ids
    for meta_path in sorted(cache_dir.glob("*.json")):
        npy = meta_path.with_suffix(".npy")
        if not npy.exists():
            continue
        try:
            cache = open_cache(npy)
        except (ValueError, KeyError, OSError):
            continue
        if cache.covers(ids, channels, size):
            return cache
    return None


def build_cache(
    ds: ImageSet,
    size: int,
    channels: Sequence[str],
    cache_dir: Path | None = None,
    workers: int | None = None,
    chunk: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> PackedCache:
    """Decode every id's channels once into the packed array. Resumes an interrupted build."""
    if size < 8 or size > 4096:
        raise ProtganError(f"--size {size}: must be 8..4096")
    ds.require_channels(channels)
    cache_dir = check_out_path(cache_dir or ds.root / CACHE_SUBDIR)  # a file there, or read-only: one line
    cache_dir.mkdir(parents=True, exist_ok=True)
    npy, meta_path = cache_paths(cache_dir, channels, size)
    partial = npy.with_name(npy.name + ".partial")
    progress_file = npy.with_name(npy.name + ".progress.json")
    shape = (len(ds.ids), len(channels), size, size)
    done = 0
    if partial.exists() and progress_file.exists():
        state = json.loads(progress_file.read_text())
        if state.get("ids_hash") == _ids_hash(ds.ids) and tuple(state.get("shape", ())) == shape:
            done = int(state["done"])
    if done:
        arr = np.load(partial, mmap_mode="r+")
    else:
        arr = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
    workers = cpu_jobs(workers, cap=8)
    if progress:
        progress(done, len(ds.ids))
    with ThreadPoolExecutor(max_workers=workers) as pool:  # cv2 releases the GIL while decoding
        for start in range(done, len(ds.ids), chunk):
            ids = ds.ids[start:start + chunk]
            for k, stack in enumerate(pool.map(lambda i: read_stack(ds, i, channels, size), ids)):
                arr[start + k] = stack
            arr.flush()
            write_json(progress_file, {"done": start + len(ids), "shape": list(shape), "ids_hash": _ids_hash(ds.ids)})
            if progress:
                progress(start + len(ids), len(ds.ids))
    del arr
    write_json(meta_path, {"ids": ds.ids, "channels": list(channels), "size": size, "shape": list(shape)})
    os.replace(partial, npy)
    progress_file.unlink(missing_ok=True)
    return open_cache(npy)


def _ids_hash(ids: Sequence[str]) -> str:
    import hashlib

    return hashlib.sha1("\n".join(ids).encode()).hexdigest()
