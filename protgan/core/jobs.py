"""Independent jobs in parallel processes, one torch thread each.

On a small CPU this beats one process with several threads: the tensors of 32-64 px images are too small
for intra-op parallelism, and busy OpenMP threads degrade badly when the cores are shared. Used by the
demo (GAN classes, classification cells) and by CAS (its two classifier arms).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any, Callable, Iterable, Sequence


def _init_job() -> None:
    import torch  # lazy: core stays importable without torch (the CLI's start-up)

    torch.set_num_threads(1)


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity (what SLURM, taskset or a container grant; a 128-core
    node's os.cpu_count() is not a 4-core job's), else os.cpu_count(). Every default worker count uses it."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def cpu_jobs(requested: int | None = 0, cap: int | None = None) -> int:
    """`requested`, or (when 0 or None) one per available core, at most `cap`."""
    if requested:
        return requested
    return min(available_cores(), cap) if cap else available_cores()


def parallel_map(fn: Callable[[Any], Any], args: Sequence[Any], jobs: int) -> Iterable[Any]:
    """fn(arg) for every arg, in `jobs` spawned processes (in this process, one thread, when jobs <= 1),
    results in completion order. fn and args must be picklable (a module-level function)."""
    if jobs <= 1 or len(args) <= 1:
        import torch  # lazy: as above

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the job processes, so results do not depend on `jobs`
        try:
            for a in args:
                yield fn(a)
        finally:
            torch.set_num_threads(threads)
        return
    ctx = mp.get_context("spawn")  # torch and fork do not mix
    with ctx.Pool(min(jobs, len(args)), initializer=_init_job) as pool:
        yield from pool.imap_unordered(fn, args)
