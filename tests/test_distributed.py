"""torchrun/DDP on CPU (gloo): sharded sampling, sync batch norm, and the two training loops run by two
processes against one process with the same global batch; rank-0-only writes; resume 2 -> 1 processes;
the train-gan fan-out.

Why the comparisons are exact (to float rounding): a DDP global batch holds the same images as the
single-process batch (ShardedSampler), DDP averages the per-rank mean gradients (= the mean over the
global batch when ranks hold equal parts), and --sync-bn makes batch norm use the global batch's
statistics (without it each rank normalises by its own half, a different function). The GAN draws its
noise and label flips for the global batch on every rank and takes its slice (the same numbers as one
process); D's dropout is set to 0 for the comparison (its masks are per-rank draws of other shapes),
and the classifier runs without augmentation and with a head that has no dropout. The classifier
comparison uses SGD: Adam's first updates are lr x sign(gradient), so a parameter whose gradient is
zero up to rounding moves by +-lr depending on the rounding of either run (seen: 1e-3 differences
from 1e-9 gradients), while SGD keeps both runs within rounding of each other.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from protgan.core import distributed
from protgan.core.errors import ProtganError
from tests.conftest import make_dataset

TOL = dict(rtol=1e-4, atol=1e-5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


class WriteAudit:
    """Records every file write/rename/mkdir under `root` by this process (sys.addaudithook)."""

    EVENTS = {"os.rename", "os.replace", "os.mkdir", "os.remove", "shutil.move"}

    def __init__(self, root: Path) -> None:
        self.root = str(root.resolve())
        self.seen: list[str] = []
        self.on = True
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple) -> None:
        if not self.on:
            return
        if event == "open":
            path, mode = args[0], args[1]
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            if isinstance(mode, int):  # os.open flags
                writing = bool(mode & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        else:
            path, writing = (args[0] if args else None), event in self.EVENTS
        if writing and isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(self.root):
            self.seen.append(f"{event} {path}")


# ------------------------------------------------------------------------------------ no processes
@pytest.mark.parametrize("world,n,batch,drop_last", [(2, 23, 4, True), (3, 23, 2, True), (2, 23, 4, False),
                                                      (3, 10, 4, False), (1, 9, 4, False), (4, 17, 2, False)])
def test_sharded_sampler_splits_each_global_batch(world, n, batch, drop_last):
    order = list(torch.randperm(n, generator=torch.Generator().manual_seed(n)).tolist())
    samplers = [distributed.ShardedSampler(n, batch, order=lambda e: order, drop_last=drop_last, rank_=r, world=world)
                for r in range(world)]
    streams = [list(s) for s in samplers]
    assert [len(s) for s in samplers] == [len(s) for s in streams]
    seen = [i for s in streams for i in s]
    assert len(seen) == len(set(seen)), "a sample twice in one epoch"
    g = world * batch
    full = n // g
    for k in range(full):  # global batch k = the single-process batch k of size world x batch
        union = [i for s in streams for i in s[k * batch:(k + 1) * batch]]
        assert union == order[k * g:(k + 1) * g]
    tail = n - full * g
    expected = n if (not drop_last and tail >= world) or tail == 0 else full * g
    assert len(seen) == expected
    # every rank has the same number of batches (else DDP's all-reduce would wait forever)
    assert len({-(-len(s) // batch) for s in streams}) == 1


def test_sharded_sampler_epochs_and_resume_position():
    s = distributed.ShardedSampler(40, 4, seed=3, rank_=1, world=2)
    s.set_epoch(0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert e0 != e1 and sorted(e0) != sorted(range(40))  # a new order each epoch, half the data per rank
    s.set_position(1, 8)
    assert list(s) == e1[8:] and len(s) == len(e1) - 8


def test_loader_order_is_make_loaders_order():
    from protgan.data import make_loader

    class Index(torch.utils.data.Dataset):
        def __len__(self):
            return 37

        def __getitem__(self, k):
            return torch.tensor(k)

    for seed in (0, 12345):
        loader = make_loader(Index(), 5, shuffle=True, workers=0, seed=seed)
        got = [int(i) for batch in loader for i in batch]
        assert got == distributed.loader_order(37, seed)


def test_single_process_is_untouched(monkeypatch):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.setup("cpu") == torch.device("cpu")
    assert not distributed.active() and distributed.is_main() and distributed.world_size() == 1
    m = nn.BatchNorm2d(3)
    assert distributed.wrap_model(m, torch.device("cpu"), sync_bn=True) is m
    assert distributed.train_sampler(10, 2, 0, True) is None
    t = torch.ones(3)
    assert distributed.all_reduce_mean(t) is t and distributed.gather_cat(t) is t
    distributed.barrier()
    assert distributed.any_rank(True) and not distributed.any_rank(False)


def test_lr_factor_and_bad_environment(monkeypatch):
    assert distributed.lr_factor("none", 4) == 1 and distributed.lr_factor("linear", 4) == 4
    assert distributed.lr_factor("sqrt", 4) == 2
    with pytest.raises(ProtganError, match="--lr-scaling"):
        distributed.lr_factor("cubic", 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ProtganError, match="cuda:LOCAL_RANK"):
        distributed.rank_device("cuda:1")
    assert not distributed.is_main()  # RANK is read before the group is joined, to mute logs early
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ProtganError, match="MASTER_ADDR"):
        distributed.setup("cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ProtganError, match="WORLD_SIZE"):
        distributed.launched_world_size()


# ---------------------------------------------------------------------- sync batch norm on gloo
def _sync_bn_worker(rank: int, port: int, out: str) -> None:
    _join(rank, 2, port)
    from timm.layers import BatchNormAct2d

    device = distributed.setup("cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), BatchNormAct2d(6, momentum=0.2), nn.Conv2d(6, 4, 3),
                          nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 1))
    ddp = distributed.wrap_model(model, device, sync_bn=True)
    assert isinstance(model[1], distributed.GlooSyncBatchNorm) and isinstance(model[1].act, nn.ReLU)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randn(8, 1, generator=g)
    mine = slice(rank * 4, rank * 4 + 4)
    for _ in range(3):
        loss = ((ddp(x[mine]) - y[mine]) ** 2).mean() + (ddp(x[mine] * 2) ** 2).mean()  # two forwards, one backward
        opt.zero_grad()
        loss.backward()
        opt.step()
    if rank == 0:
        torch.save(model.state_dict(), out)
    distributed.cleanup()


@pytest.mark.slow  # also covered by the GAN and classifier comparisons below (BatchNorm2d, timm BatchNormAct2d)
def test_sync_batchnorm_on_gloo_matches_one_process(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_sync_bn_worker, args=(free_port(), str(out)), nprocs=2)
    from timm.layers import BatchNormAct2d

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), BatchNormAct2d(6, momentum=0.2), nn.Conv2d(6, 4, 3),
                          nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randn(8, 1, generator=g)
    for _ in range(3):
        loss = ((model(x) - y) ** 2).mean() + (model(x * 2) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    ddp = torch.load(out)
    assert ddp.keys() == model.state_dict().keys()  # same keys: checkpoints load without sync batch norm
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ddp[k], v, **TOL, msg=k)


# --------------------------------------------------------------------------------------- the GAN
# --conditional: one model for classes 0 and 2 (its conditional batch norms must survive --sync-bn's conversion)
CONDITIONAL = dict(class_index=None, conditional=True, classes="0,2")
TRANSITIONAL = dict(CONDITIONAL, cond_transition="1:3")  # lambda 0, 0.5, 1, 1 over the 4 steps: DDP keeps the hook


def _gan_config(data: Path, out: Path, batch: int, steps: int, **kw):
    from protgan.gan.train import TrainGanConfig

    kw.setdefault("class_index", 0)
    return TrainGanConfig(data=str(data), out=str(out), size=32, steps=steps, batch_size=batch,
                          g_width=16, d_width=16, dropout=0.0, sync_bn=True, ckpt_every=0, sample_every=1,
                          log_every=1, n_samples=4, device="cpu", workers=0, amp=False, **kw)


def _gan_worker(rank: int, port: int, data: str, out: str, audit_file: str, kw: dict) -> None:
    _join(rank, 2, port)
    from protgan.gan.train import GanTrainer

    audit = WriteAudit(Path(out))
    GanTrainer(_gan_config(Path(data), Path(out), batch=4, steps=2, **kw)).fit()
    audit.on = False
    Path(f"{audit_file}.{rank}").write_text(json.dumps(audit.seen))
    distributed.cleanup()


def _gan_params(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    return {f"{m}.{k}": v for m in ("G", "D", "G_ema") for k, v in state[m].items()}


@pytest.mark.parametrize("kw", [{}, CONDITIONAL, TRANSITIONAL], ids=["per-class", "conditional", "transition"])
def test_ddp_gan_matches_one_process_and_resumes_on_one(tmp_path, kw):
    from protgan.gan.train import GanTrainer

    data = make_dataset(tmp_path / "data", [(0,)] * 16 + [(2,)] * 2 + [(0, 2)] * 6, channels=("red", "green", "blue"))
    ddp, ref = tmp_path / "ddp", tmp_path / "ref"
    mp.spawn(_gan_worker, args=(free_port(), str(data), str(ddp), str(tmp_path / "audit"), kw), nprocs=2)
    # only rank 0 wrote into the run folder
    writes = {r: json.loads((tmp_path / f"audit.{r}").read_text()) for r in (0, 1)}
    assert writes[1] == [] and any("last.pt" in w for w in writes[0])
    assert not list(ddp.rglob("*.tmp"))

    GanTrainer(_gan_config(data, ref, batch=8, steps=2, **kw)).fit()  # one process, the same global batch
    a, b = _gan_params(ddp), _gan_params(ref)
    assert a.keys() == b.keys() and not any(k.split(".", 1)[1].startswith("module.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], **TOL, msg=k)
    rows = (ddp / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + one row per step, written once

    # resume the 2-process run in one process (global batch kept: --batch-size 8): it continues like the
    # single-process run does
    GanTrainer(_gan_config(data, ddp, batch=8, steps=4, **kw)).fit()
    GanTrainer(_gan_config(data, ref, batch=8, steps=4, **kw)).fit()
    a, b = _gan_params(ddp), _gan_params(ref)
    assert torch.load(ddp / "checkpoints" / "last.pt", weights_only=True)["step"] == 4
    for k in a:
        torch.testing.assert_close(a[k], b[k], **TOL, msg=k)


# -------------------------------------------------------------------------------- the classifier
def _classify_config(data: Path, out: Path, batch: int, epochs: int):
    from protgan.classify.train import ClassifyConfig

    # resnet18: a randomly initialised EfficientNet-Lite0 at 32-64 px is ill-conditioned (its float32 and
    # float64 gradients differ by 10% in one process), so no float32 comparison of it means anything
    return ClassifyConfig(data=str(data), out=str(out), model="resnet18", pretrained=False, head="linear",
                          classes="0,25", channels="rgb", size=32, folds=2, fold=0, epochs=epochs, batch_size=batch,
                          augment="none", workers=0, device="cpu", sync_bn=True, seed=1, optimizer="sgd", lr=0.01,
                          keep_checkpoints="all")  # the tests compare last.pt


def _classify_worker(rank: int, port: int, data: str, out: str, audit_file: str, stop_after: int) -> None:
    _join(rank, 2, port)
    import protgan.classify.train as ct

    audit = WriteAudit(Path(out))
    if stop_after:  # Ctrl-C at the start of epoch `stop_after` (0-based) on every rank
        real = ct.batch_size_at

        def interrupt(epoch, *a, **k):
            if epoch == stop_after:
                raise KeyboardInterrupt
            return real(epoch, *a, **k)

        ct.batch_size_at = interrupt
    try:
        ct.run_classify(_classify_config(Path(data), Path(out), batch=4, epochs=2 if stop_after else 1), log=lambda m: None)
    except KeyboardInterrupt:
        pass
    audit.on = False
    Path(f"{audit_file}.{rank}").write_text(json.dumps(audit.seen))
    distributed.cleanup()


def test_ddp_classify_matches_one_process(tmp_path):
    from protgan.classify.train import run_classify

    data = make_dataset(tmp_path / "data", [(0,), (25,), (0, 25)] * 12, channels=("red", "green", "blue"))
    ddp, ref = tmp_path / "ddp", tmp_path / "ref"
    mp.spawn(_classify_worker, args=(free_port(), str(data), str(ddp), str(tmp_path / "audit"), 0), nprocs=2)
    writes = {r: json.loads((tmp_path / f"audit.{r}").read_text()) for r in (0, 1)}
    assert writes[1] == [] and any("result.json" in w for w in writes[0])

    run_classify(_classify_config(data, ref, batch=8, epochs=1), log=lambda m: None)
    a = torch.load(ddp / "fold_0" / "last.pt", weights_only=True)
    b = torch.load(ref / "fold_0" / "last.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k].float(), b["model"][k].float(), **TOL, msg=k)
    # the logged metrics are over all ranks: the same as the single-process run's
    ha, hb = (json.loads((r / "fold_0" / "history.json").read_text())[0] for r in (ddp, ref))
    for key in ("train_loss", "val_loss", "val_macro_f1", "train_macro_f1"):
        assert ha[key] == pytest.approx(hb[key], rel=1e-4, abs=1e-5), key


@pytest.mark.slow  # a third pair of processes; the GAN test checks 2 -> 1 resume exactly
def test_ddp_classify_interrupted_resumes_in_one_process(tmp_path):
    from protgan.classify.train import run_classify

    data = make_dataset(tmp_path / "data", [(0,), (25,), (0, 25)] * 8, channels=("red", "green", "blue"))
    run = tmp_path / "run"
    mp.spawn(_classify_worker, args=(free_port(), str(data), str(run), str(tmp_path / "audit"), 1), nprocs=2)
    saved = torch.load(run / "fold_0" / "last.pt", weights_only=True)
    assert saved["next_epoch"] == 1 and not (run / "fold_0" / "result.json").exists()
    assert not any(k.startswith("module.") for k in saved["model"])
    logs = []
    run_classify(_classify_config(data, run, batch=4, epochs=2), log=logs.append)  # the same command, 1 process
    assert any("resuming at epoch 2/2" in m for m in logs)
    history = json.loads((run / "fold_0" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert (run / "fold_0" / "result.json").exists()


# ------------------------------------------------------------------------------ train-gan fan-out
def test_fanout_runs_one_job_per_slot_at_a_time(tmp_path, monkeypatch):
    from protgan.gan import fanout

    trace = tmp_path / "trace.txt"
    script = ("import os, sys, time; t = open(sys.argv[1], 'a'); d = os.environ['CUDA_VISIBLE_DEVICES']; "
              "t.write(f'start {d} {time.time()}\\n'); t.flush(); time.sleep(0.3); "
              "t.write(f'end {d} {time.time()}\\n'); sys.exit(int(sys.argv[2]))")
    monkeypatch.setattr(fanout, "job_command", lambda job, slot: [
        sys.executable, "-c", script, str(trace), "3" if job.class_index == 2 else "0"])
    jobs = [fanout.Job(c, f"c{c}", tmp_path / f"class_{c}", {"class_index": c}) for c in range(5)]
    slots = fanout.make_slots("0,1", "auto", 1)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1"] and slots[0].device == "cuda"
    results = fanout.run_fanout(jobs, slots, poll_s=0.05)
    assert [r.status for r in results] == ["done", "done", "failed", "done", "done"]
    assert results[2].returncode == 3 and all((tmp_path / f"class_{c}" / "train.log").exists() for c in range(5))
    events = [ln.split() for ln in trace.read_text().splitlines()]
    for gpu in ("0", "1"):  # never two jobs at once on one device
        spans = sorted((float(t), kind) for kind, d, t in events if d == gpu)
        depth = 0
        for _, kind in spans:
            depth += 1 if kind == "start" else -1
            assert depth <= 1
    assert sum(1 for kind, *_ in events if kind == "start") == 5


def test_default_worker_counts_follow_the_cpu_affinity(monkeypatch):
    """A SLURM job or taskset granted 3 cores of a 64-core node: every default worker count is 3-based."""
    from protgan.core import jobs
    from protgan.data.loader import default_workers
    from protgan.gan import fanout

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {4, 5, 6}, raising=False)
    assert jobs.available_cores() == 3 and jobs.cpu_jobs() == 3 and jobs.cpu_jobs(None) == 3
    assert jobs.cpu_jobs(5) == 5 and jobs.cpu_jobs(0, cap=2) == 2 and default_workers() == 3
    assert fanout.make_slots(None, "cpu", 1)[0].env["OMP_NUM_THREADS"] == "3"
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS / Windows: the machine's count
    assert jobs.available_cores() == 64 and default_workers() == 8


def test_fanout_options_and_errors(tmp_path):
    from protgan.gan import fanout

    cpu = fanout.make_slots(None, "cpu", 2)
    assert len(cpu) == 2 and all(s.device == "cpu" and s.env["CUDA_VISIBLE_DEVICES"] == "" for s in cpu)
    for bad, match in (("0,x", "--gpus"), ("1,1", "twice")):
        with pytest.raises(ProtganError, match=match):
            fanout.make_slots(bad, "auto", 1)
    with pytest.raises(ProtganError, match="--device cpu"):
        fanout.make_slots("0", "cpu", 1)
    with pytest.raises(ProtganError, match="--jobs"):
        fanout.make_slots(None, "cpu", 0)
    data = make_dataset(tmp_path / "data", [(0,), (25,), (0,), (2,)], channels=("red", "green", "blue"))
    base = {"data": str(data), "class_index": 0, "out": str(tmp_path / "runs"), "size": 32}
    jobs = fanout.plan_jobs(base, "0,25", tmp_path / "runs", ["--log-interval", "5"])
    assert [(j.class_index, j.out.name) for j in jobs] == [(0, "class_0"), (25, "class_25")]
    # each job is a serialised, checked config: the fan-out's options with its class and folder
    assert [(j.config["class_index"], j.config["out"], j.config["size"], j.config["classes"]) for j in jobs] == [
        (0, str(tmp_path / "runs" / "class_0"), 32, "0,25"), (25, str(tmp_path / "runs" / "class_25"), 32, "0,25")]
    assert jobs[0].args == ["--log-interval", "5"]
    with pytest.raises(ProtganError, match="--size 33"):
        fanout.plan_jobs({**base, "size": 33}, "0", tmp_path / "runs")
    (tmp_path / "single").mkdir()
    (tmp_path / "single" / "config.json").write_text("{}")
    with pytest.raises(ProtganError, match="single-class run folder"):
        fanout.plan_jobs(base, "0", tmp_path / "single")


@pytest.mark.slow  # three `protgan train-gan` processes
def test_train_gan_fanout_cli(tmp_path, capsys):
    from protgan.gan.checkpoint import find_runs
    from tests.cli_helpers import run_cli

    # class 2's one image also has class 0: no image with only class 2 (--select only), so its job fails
    data = make_dataset(tmp_path / "data", [(0,)] * 8 + [(25,)] * 8 + [(2, 0)], channels=("red", "green", "blue"))
    runs = tmp_path / "runs"
    code, out, err = run_cli(["train-gan", "--data", str(data), "--classes", "0,25,2", "--out", str(runs),
                              "--jobs", "2", "--device", "cpu", "--size", "32", "--g-width", "16", "--d-width", "16",
                              "--batch-size", "4", "--steps", "2", "--no-amp"], capsys)
    assert code == 1 and "1 of 3 classes failed" in err
    summary = json.loads((runs / "fanout.json").read_text())
    assert [r["status"] for r in summary["results"]] == ["done", "done", "failed"]
    assert "has no images with only this label" in summary["results"][2]["error"]
    assert summary["config"]["steps"] == 2 and summary["config"]["size"] == 32
    job = json.loads((runs / "class_0" / "job.json").read_text())
    assert job["class_index"] == 0 and job["out"] == str(runs / "class_0") and job["device"] == "cpu"
    assert not (runs / "config.json").exists() and set(find_runs(runs)) == {0, 25}
    assert (runs / "class_0" / "checkpoints" / "last.pt").exists() and (runs / "class_0" / "train.log").exists()
    code, out, err = run_cli(["train-gan", "--data", str(data), "--classes", "0,25,2", "--out", str(runs),
                              "--jobs", "2", "--device", "cpu", "--size", "32", "--g-width", "16", "--d-width", "16",
                              "--batch-size", "4", "--steps", "2", "--no-amp"], capsys)
    assert code == 1 and "already trained" in (runs / "class_25" / "train.log").read_text()  # resumed: nothing to do


@pytest.mark.slow  # torchrun + two CLI processes
def test_torchrun_cli_train_gan_and_classify(tmp_path):
    import subprocess

    data = make_dataset(tmp_path / "data", [(0,)] * 8 + [(0, 25), (25,)] * 4, channels=("red", "green", "blue"))
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
              "--master-port", str(free_port()), "-m", "protgan"]
    gan = tmp_path / "gan"
    proc = subprocess.run(launch + ["train-gan", "--data", str(data), "--class", "0", "--out", str(gan), "--size", "32",
                                    "--g-width", "16", "--d-width", "16", "--batch-size", "2", "--steps", "2",
                                    "--device", "cpu", "--sync-bn", "--lr-scaling", "linear"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("done: step 2") == 1  # rank 0 prints, rank 1 does not
    assert "global batch 4, lr x 2" in proc.stdout
    state = torch.load(gan / "checkpoints" / "last.pt", weights_only=True)
    assert state["opt_G"]["param_groups"][0]["lr"] == pytest.approx(2 * 2e-4)
    cls = tmp_path / "cls"
    proc = subprocess.run(launch + ["classify", "--data", str(data), "--out", str(cls), "--model", "resnet18",
                                    "--no-pretrained", "--head", "linear", "--size", "32", "--augment", "none",
                                    "--classes", "0,25", "--folds", "2", "--fold", "0", "--epochs", "1",
                                    "--batch-size", "2", "--device", "cpu", "--workers", "0", "--sync-bn"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("fold 0 done") == 1
    assert (cls / "fold_0" / "result.json").exists() and json.loads((cls / "config.json").read_text())["sync_bn"]
