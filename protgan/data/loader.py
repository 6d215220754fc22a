"""A PyTorch Dataset over a dataset folder (packed cache when present, image files otherwise) and a
DataLoader set up to keep a GPU busy (workers, pinned memory, persistent workers, prefetch).

Samples are returned as uint8 C x S x S tensors: 4x less to copy and pin than float32; the training
loop converts on the device (`to_unit_range`, `to_signed_range`).
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from protgan.data.cache import PackedCache, find_cache, read_stack
from protgan.data.dataset import ImageSet
from protgan.core.errors import ProtganError
from protgan.core.jobs import cpu_jobs


class ChannelStackDataset(Dataset):
    """(uint8 image C x S x S, float32 multi-hot over `classes`) per id."""

    def __init__(
        self,
        ds: ImageSet,
        channels: Sequence[str],
        size: int,
        classes: Sequence[int],
        ids: Sequence[str] | None = None,
        cache: PackedCache | str | None = "auto",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.ds = ds
        self.ids = list(ds.ids if ids is None else ids)
        self.channels = tuple(channels)
        self.size = size
        self.classes = list(classes)
        if cache == "auto":
            cache = find_cache(ds, self.channels, size, self.ids)
        elif cache is None or isinstance(cache, str):
            cache = None
        elif not cache.covers(self.ids, self.channels, size):
            raise ProtganError(f"{cache.path}: cache does not hold these ids x {','.join(self.channels)} at {size} px")
        self.cache: PackedCache | None = cache
        if self.cache is None:
            ds.select(self.ids).require_channels(self.channels)
            self._rows = None
            self._chan_idx = None
        else:
            self._rows = np.array([self.cache.row[i] for i in self.ids], np.int64)
            self._chan_idx = self.cache.channel_index(self.channels)
        index = {i: k for k, i in enumerate(ds.ids)}
        labels = ds.label_matrix(self.classes)
        self.labels = torch.from_numpy(labels[[index[i] for i in self.ids]])
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def gathers_batches(self) -> bool:
        """True when batches come from the cache in one gather (no decoding, no per-sample transform)."""
        return self.cache is not None and self.transform is None

    def image(self, k: int) -> np.ndarray:
        if self.cache is not None:
            row = self.cache.array[self._rows[k]]
            if self._chan_idx == list(range(row.shape[0])):
                return np.array(row)
            return np.ascontiguousarray(row[self._chan_idx])
        return read_stack(self.ds, self.ids[k], self.channels, self.size)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = torch.from_numpy(self.image(k))
        if self.transform is not None:
            img = self.transform(img)
        return img, self.labels[k]

    def __getitems__(self, indices: list[int]) -> list | "CollatedBatch":
        """A whole batch from the cache in one gather, written straight into shared memory when in a
        loader worker: per-sample fetch + collate + IPC copies would cap a cached loader at ~400/s."""
        if not self.gathers_batches:
            return [self[k] for k in indices]
        rows = self._rows[indices]
        order = np.argsort(rows, kind="stable")  # ascending rows read the memory map sequentially
        shape = (len(indices), len(self._chan_idx), self.size, self.size)
        out = torch.empty(shape, dtype=torch.uint8)
        if torch.utils.data.get_worker_info() is not None:
            out = out.share_memory_()
        dst = out.numpy()
        arr = self.cache.array
        whole = self._chan_idx == list(range(arr.shape[1]))
        for j in order:
            dst[j] = arr[rows[j]] if whole else arr[rows[j]][self._chan_idx]
        return CollatedBatch((out, self.labels[indices]))


class CollatedBatch(tuple):
    """A batch that `ChannelStackDataset.__getitems__` already stacked: `collate` passes it through."""


def collate(data: list | CollatedBatch):
    if isinstance(data, CollatedBatch):
        return tuple(data)
    return default_collate(data)


def default_workers() -> int:
    return cpu_jobs(0, cap=8)


class PrefetchLoader:
    """Runs a DataLoader's iterator in a background thread, `depth` batches ahead.

    Used for batches gathered from the packed cache: a memory-map gather is a memcpy that releases
    the GIL, so a thread overlaps it with the training step, while loader worker processes would
    spend ~28 ms per 16 MB batch allocating shared memory (measured in bench/loader.py).
    """

    def __init__(self, loader: DataLoader, depth: int = 4) -> None:
        self.loader = loader
        self.depth = depth

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str):
        return getattr(self.loader, name)

    def __iter__(self):
        q: queue.Queue = queue.Queue(maxsize=self.depth)
        done = object()
        stop = threading.Event()

        def produce() -> None:
            try:
                for batch in self.loader:
                    while not stop.is_set():
                        try:
                            q.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(done)
            except BaseException as e:  # re-raised in the consumer
                q.put(e)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    workers: int | None = None,
    pin_memory: bool | None = None,
    drop_last: bool = False,
    seed: int = 0,
    sampler: Sampler | None = None,
) -> DataLoader | PrefetchLoader:
    """A loader tuned for throughput; deterministic order for a seed.

    `workers=None` picks: a cached dataset without per-sample transforms is gathered in a background
    thread of this process (fastest, see PrefetchLoader); anything that decodes or augments uses
    worker processes, one per core up to 8.
    """
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    threaded = workers is None and getattr(dataset, "gathers_batches", False)
    workers = 0 if threaded else default_workers() if workers is None else workers
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        collate_fn=collate,
    )
    return PrefetchLoader(loader) if threaded else loader
