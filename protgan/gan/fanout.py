"""`protgan train-gan --classes top5 --gpus 0,1,2,3 --out RUNS`: one GAN per class, trained concurrently.

The paper trains one DCGAN per class in isolation, so the classes are independent jobs. Each job is a
serialised TrainGanConfig (a dict: the fan-out's options with the class and RUNS/class_N filled in),
written to RUNS/class_N/job.json when it starts and run by an ordinary, resumable
`protgan train-gan --job RUNS/class_N/job.json` process: with CUDA_VISIBLE_DEVICES
set to one GPU of --gpus (at most one job per GPU at a time), or on the CPU (--jobs at a time, the
cores split between them). Its output goes to RUNS/class_N/train.log; a summary table and
RUNS/fanout.json tell how each ended. Running the same command again resumes every unfinished class
(finished ones exit at once). RUNS holds no config.json of its own, so `protgan synth --runs RUNS`
finds the per-class runs in it.

Per-fold generators (`--folds K`, no `--fold`): one job per class and fold, `train-gan --class N --fold F
--folds K --out RUNS/fold_F/class_N`, so the generator used for fold F of a cross-validation never sees
fold F's validation images (protgan.data.provenance). K x the jobs: K x the GAN time. DATA/folds.csv is
made once before any job starts (the jobs would race to write it). `synth --runs RUNS` then writes one
synthetic set per fold, SYN/fold_F/, which `classify`/`compare --synthetic SYN` use fold by fold.

Ctrl-C (or SIGTERM) stops launching, forwards one SIGINT to each running job (each saves a checkpoint
and exits) and waits for them. Jobs run in their own sessions so a terminal's Ctrl-C reaches them
only through this forwarding, once.

This is a scheduler of independent processes on one machine, not a cluster scheduler: on a cluster,
submit one `train-gan --class N` per job (see the README's "Scaling out": a SLURM job array).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from protgan.core.atomic import write_json
from protgan.data import class_name, dataset_folds, open_dataset, resolve_subset
from protgan.data.provenance import fold_dir
from protgan.core.errors import ProtganError
from protgan.gan.config import DEFAULT_FOLDS, TrainGanConfig
from protgan.core.jobs import available_cores

FANOUT_FILE = "fanout.json"
LOG_FILE = "train.log"
JOB_FILE = "job.json"
CONDITIONAL_JOB = -1  # Job.class_index of a --conditional job (one model for the whole subset)
CONDITIONAL_DIR = "conditional"  # its run folder: OUT/fold_F/conditional


@dataclass(frozen=True)
class Slot:
    """Where a job runs: one GPU (CUDA_VISIBLE_DEVICES=index, --device cuda) or a share of the CPU."""

    label: str
    device: str
    env: dict[str, str]


@dataclass
class Job:
    class_index: int
    name: str
    out: Path
    config: dict[str, Any]  # the class's TrainGanConfig as a dict (its device is set by the slot)
    args: list[str] = field(default_factory=list)  # train-gan options that are not config fields (logging)
    fold: int | None = None  # None: every image of the class

    @property
    def label(self) -> str:
        what = "conditional" if self.class_index == CONDITIONAL_JOB else f"class {self.class_index}"
        return what + ("" if self.fold is None else f" fold {self.fold}")


@dataclass
class JobResult:
    class_index: int
    name: str
    slot: str
    status: str  # done, failed, interrupted, not started
    returncode: int | None
    seconds: float
    step: int | None
    log: str
    error: str = ""
    fold: int | None = None


def parse_gpus(text: str) -> list[str]:
    """'0,1,2,3' -> ['0', '1', '2', '3'] (GPU indices as CUDA_VISIBLE_DEVICES takes them)."""
    gpus = [g.strip() for g in text.split(",") if g.strip()]
    if not gpus or any(not g.isdigit() for g in gpus):
        raise ProtganError(f"--gpus {text!r}: expected a comma list of GPU indices, e.g. 0,1,2,3")
    if len(set(gpus)) != len(gpus):
        raise ProtganError(f"--gpus {text!r}: a GPU is listed twice (one job per GPU at a time)")
    return gpus


def make_slots(gpus: str | None, device: str, jobs: int) -> list[Slot]:
    """--gpus: one slot per GPU; else --device cpu (or auto without CUDA): `jobs` CPU slots; auto with
    CUDA and no --gpus: every visible GPU."""
    if jobs < 1:
        raise ProtganError(f"--jobs {jobs}: must be >= 1")
    device = device.strip().lower()
    if gpus is not None:
        if device == "cpu":
            raise ProtganError("--gpus with --device cpu: pick one (--jobs N runs N CPU jobs at a time)")
        return [Slot(f"cuda {g}", "cuda", {"CUDA_VISIBLE_DEVICES": g}) for g in parse_gpus(gpus)]
    if device.startswith("cuda:"):
        raise ProtganError(f"--device {device}: a fan-out places its jobs itself; use --gpus 0,1,... instead")
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            ids = [g for g in visible.split(",") if g.strip()] if visible else [str(i) for i in range(torch.cuda.device_count())]
            return [Slot(f"cuda {g}", "cuda", {"CUDA_VISIBLE_DEVICES": g}) for g in ids]
        if device == "cuda":
            raise ProtganError("--device cuda: CUDA is not available on this machine (use --device cpu or auto)")
    threads = max(1, available_cores() // jobs)
    cpu_env = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return [Slot(f"cpu {k}" if jobs > 1 else "cpu", "cpu", dict(cpu_env)) for k in range(jobs)]


def plan_jobs(config: dict[str, Any], classes: str, out: str | os.PathLike, args: Sequence[str] = ()) -> list[Job]:
    """One job per class of the subset `classes` of config["data"], into OUT/class_N: `config` (a
    TrainGanConfig's fields) with class_index, out and classes filled in. With config["folds"] K: one job
    per class and fold (every fold, or only config["fold"]), into OUT/fold_F/class_N, after making
    DATA/folds.csv once (the jobs would race to write it)."""
    ds = open_dataset(config["data"])
    subset = resolve_subset(classes, ds.targets)
    root = Path(out)
    if (root / "config.json").is_file():
        raise ProtganError(f"--out {root}: this is a single-class run folder; a fan-out needs a folder of its own "
                           f"(its classes go to {root}/class_N)")
    fold, k = config.get("fold"), config.get("folds")
    if fold is None and k is None:
        wanted: list[int | None] = [None]
    else:
        k = k or DEFAULT_FOLDS
        if k < 2 or (fold is not None and not 0 <= fold < k):
            raise ProtganError(f"--fold {fold} --folds {k}: need at least 2 folds and a fold in 0..{k - 1}")
        dataset_folds(config["data"], ds.ids, ds.targets, k, root)
        wanted = [fold] if fold is not None else list(range(k))
    jobs = []
    if config.get("conditional"):  # one conditional model per fold, into OUT/fold_F/conditional
        return [_conditional_job(config, classes, fold_dir(root, f), f, k, args) for f in wanted if f is not None]
    for f in wanted:
        for c in subset:
            job_out = (root if f is None else fold_dir(root, f)) / f"class_{c}"
            cfg = TrainGanConfig.from_dict({**config, "class_index": c, "out": str(job_out), "classes": classes,
                                            "fold": f, "folds": None if f is None else k})
            cfg.validate()  # option errors here, once, not in every job's log
            jobs.append(Job(c, class_name(c), job_out, asdict(cfg), list(args), f))
    return jobs


def _conditional_job(config: dict[str, Any], classes: str, folder: Path, fold: int, k: int,
                     args: Sequence[str]) -> Job:
    cfg = TrainGanConfig.from_dict({**config, "class_index": None, "out": str(folder / CONDITIONAL_DIR),
                                    "classes": classes, "fold": fold, "folds": k})
    cfg.validate()
    return Job(CONDITIONAL_JOB, "conditional", Path(cfg.out), asdict(cfg), list(args), fold)


def _last_step(run: Path) -> int | None:
    path = run / "metrics.csv"
    try:
        with path.open() as f:
            rows = list(csv.DictReader(f))
        return int(rows[-1]["step"]) if rows else None
    except (OSError, KeyError, ValueError):
        return None


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


class _Running:
    def __init__(self, job: Job, slot: Slot, proc: subprocess.Popen, log_file: Any) -> None:
        self.job, self.slot, self.proc, self.log_file = job, slot, proc, log_file
        self.t0 = time.perf_counter()


def write_job_file(job: Job, slot: Slot) -> Path:
    """RUNS/class_N/job.json: the config this job trains with, on this slot's device."""
    path = job.out / JOB_FILE
    write_json(path, {**job.config, "device": slot.device})
    return path


def job_command(job: Job, slot: Slot) -> list[str]:
    return [sys.executable, "-m", "protgan", "train-gan", "--job", str(job.out / JOB_FILE), *job.args]


def run_fanout(jobs: Sequence[Job], slots: Sequence[Slot], on_event: Callable[[str, Job, Slot | None], None] | None = None,
               poll_s: float = 0.2, stop_wait_s: float = 600.0) -> list[JobResult]:
    """Run `jobs` with at most one job per slot at a time; returns one result per job (in job order)."""
    on_event = on_event or (lambda event, job, slot: None)
    pending = list(jobs)
    free = list(slots)
    running: list[_Running] = []
    results: dict[int, JobResult] = {}  # by position in `jobs`
    index = {id(j): k for k, j in enumerate(jobs)}
    stopping = False

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        pass

    def finish(r: _Running) -> None:
        rc = r.proc.returncode
        r.log_file.close()
        log = r.job.out / LOG_FILE
        status = "done" if rc == 0 else "interrupted" if rc in (130, -signal.SIGINT) else "failed"
        results[index[id(r.job)]] = JobResult(
            r.job.class_index, r.job.name, r.slot.label, status, rc, time.perf_counter() - r.t0,
            _last_step(r.job.out), str(log), "" if rc == 0 else _last_line(log), r.job.fold)
        free.append(r.slot)
        on_event(status, r.job, r.slot)

    try:
        while pending or running:
            while pending and free and not stopping:
                job, slot = pending.pop(0), free.pop(0)
                job.out.mkdir(parents=True, exist_ok=True)
                write_job_file(job, slot)
                log_file = (job.out / LOG_FILE).open("a")
                log_file.write(f"$ {' '.join(job_command(job, slot))}  # {slot.label}\n")
                log_file.flush()
                env = {**os.environ, **slot.env, "PYTHONUNBUFFERED": "1"}
                for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):  # each job is a single process of its own
                    env.pop(key, None)
                proc = subprocess.Popen(job_command(job, slot), stdout=log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, start_new_session=True)
                running.append(_Running(job, slot, proc, log_file))
                on_event("started", job, slot)
            for r in [r for r in running if r.proc.poll() is not None]:
                running.remove(r)
                finish(r)
            if stopping and not running:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        stopping = True
        for r in running:  # one SIGINT each: the job saves a checkpoint and exits
            try:
                r.proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        deadline = time.perf_counter() + stop_wait_s
        for r in running:
            try:
                r.proc.wait(timeout=max(0.0, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()
            finish(r)
        running.clear()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for job in pending:
        results[index[id(job)]] = JobResult(job.class_index, job.name, "-", "not started", None, 0.0,
                                            _last_step(job.out), str(job.out / LOG_FILE), fold=job.fold)
    return [results[k] for k in range(len(jobs))]


@dataclass
class FanoutSummary:
    out: str
    classes: str
    slots: list[str]
    config: dict[str, Any]  # the options every class trains with (class_index and out set per class)
    results: list[dict] = field(default_factory=list)
    interrupted: bool = False


def write_summary(out: str | os.PathLike, classes: str, slots: Sequence[Slot], config: dict[str, Any],
                  results: Sequence[JobResult], interrupted: bool) -> Path:
    path = Path(out) / FANOUT_FILE
    summary = FanoutSummary(str(out), classes, [s.label for s in slots], dict(config),
                            [asdict(r) for r in results], interrupted)
    write_json(path, asdict(summary))
    return path
