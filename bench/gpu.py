"""Every GPU figure the project lacks, in one run (at most ~8 minutes on one GPU), one JSON file and a table.

    python bench/gpu.py                 # on a GPU machine: writes bench/results/gpu-<time>.json
    python bench/gpu.py --smoke         # every part at tiny sizes on the CPU in < 60 s (tests/test_bench_gpu.py)

Parts (each through the project's own code path, each with its reference measured in the same run):
  gan        DCGAN G+D training step (GanTrainer.train_step) img/s at 256 and 512 px: fp32 NCHW (the
             reference), bf16 autocast + channels_last, and the same with torch.compile;
             every other --arch likewise (fastgan, projected: its frozen EfficientNet-Lite0 D at the image side).
  classify   train_epoch img/s (focal loss, bf16 + channels_last) for resnet50 and inception_v4 at 512 px,
             against the same model in fp32 (the reference).
  loader     samples/s of the packed uint8 cache through make_loader (4-channel samples), against
             decoding the PNGs (the reference).
  fid        feature-extraction img/s (efficientnet_lite0, the offline feature space; inception when its
             weights are in $TORCH_HOME) of uint8 batches.
  torchrun   an NCCL all_reduce (bandwidth GB/s) over every GPU present (gloo on CPU in --smoke); skipped
             with one GPU.
Every part has a time limit; a part that fails records its one-line error and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protgan.classify.losses import focal_loss  # noqa: E402
from protgan.classify.models import create_model  # noqa: E402
from protgan.classify.train import Accel, train_epoch  # noqa: E402
from protgan.core.device import resolve_device  # noqa: E402
from protgan.data import ChannelStackDataset, build_cache, make_loader, open_dataset, write_label_table, write_png  # noqa: E402
from protgan.gan.config import ARCHS, TrainGanConfig  # noqa: E402
from protgan.gan.train import GanTrainer  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def out_of_time(p: argparse.Namespace, row: dict) -> bool:
    """The whole run's budget (8 minutes on a GPU): later variants are recorded as skipped."""
    if time.perf_counter() < p.deadline:
        return False
    row["skipped"] = "time budget of the run spent"
    return True


def timed(step: Callable[[], None], device: torch.device, warmup: int, steps: int, budget_s: float) -> tuple[float, int]:
    """(seconds per step, steps timed): `warmup` untimed steps, then up to `steps` within `budget_s`."""
    for _ in range(warmup):
        step()
    sync(device)
    t0, n = time.perf_counter(), 0
    while n < steps and (n == 0 or time.perf_counter() - t0 < budget_s):
        step()
        n += 1
        if n in (1, 2, 4, 8, 16, 32, 64):
            sync(device)
    sync(device)
    return (time.perf_counter() - t0) / n, n


def make_data(root: Path, n: int, size: int, channels=("red", "green", "blue")) -> Path:
    rng = np.random.default_rng(0)
    ids = [f"g{i:05d}" for i in range(n)]
    for i in ids:
        for ch in channels:
            write_png(root / "train" / f"{i}_{ch}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
    write_label_table(root / "train.csv", ids, [(0,) if k % 2 else (0, 25) for k in range(n)])
    return root


# -------------------------------------------------------------------------------------------- parts
def part_gan(p: argparse.Namespace, device: torch.device, tmp: Path) -> list[dict]:
    data = make_data(tmp / "gan-data", 4, 32)
    archs = list(ARCHS)  # dcgan, fastgan, projected
    variants = [("fp32", dict(amp=False, channels_last=False, compile=False)),
                ("bf16+channels_last", dict(amp=True, amp_dtype="bf16", channels_last=True, compile=False))]
    if p.compile:
        variants.append(("bf16+channels_last+compile", dict(amp=True, amp_dtype="bf16", channels_last=True, compile=True)))
    rows = []
    for arch in archs:
        for size in p.gan_sizes:
            ref = None
            for name, kw in variants:
                row: dict[str, Any] = {"part": "gan", "arch": arch, "size": size, "variant": name, "batch": p.gan_batch}
                rows.append(row)
                if out_of_time(p, row):
                    continue
                try:
                    cfg = TrainGanConfig(data=str(data), class_index=0, out=str(tmp / f"gan-{arch}-{size}-{name}"),
                                         size=size, batch_size=p.gan_batch, g_width=p.gan_width, d_width=p.gan_width,
                                         device=str(device), workers=0, n_samples=4, steps=10**9, select="any",
                                         arch=arch, **kw)
                    trainer = GanTrainer(cfg)
                    batch = torch.randint(0, 256, (p.gan_batch, 3, size, size), dtype=torch.uint8)
                    if device.type == "cuda":
                        batch = batch.pin_memory()

                    def step() -> None:
                        trainer.train_step(batch)
                        trainer.step += 1

                    warm = p.warmup + (3 if kw["compile"] else 0)
                    sec, n = timed(step, device, warm, p.steps, p.part_budget_s)
                    row.update(img_per_s=round(p.gan_batch / sec, 1), steps=n,
                               peak_mib=_peak_mib(device))
                    ref = row["img_per_s"] if name == "fp32" else ref
                    if ref and name != "fp32":
                        row["vs_fp32"] = round(row["img_per_s"] / ref, 2)
                    del trainer
                except Exception as e:  # noqa: BLE001  (a failed variant is a figure too)
                    row["error"] = _one_line(e)
                _free(device)
    return rows


def part_classify(p: argparse.Namespace, device: torch.device, tmp: Path) -> list[dict]:
    rows = []
    for model_name in p.models:
        ref = None
        for name, amp in (("fp32", False), ("bf16+channels_last", True)):
            row: dict[str, Any] = {"part": "classify", "model": model_name, "size": p.cls_size, "variant": name,
                                   "batch": p.cls_batch}
            rows.append(row)
            if out_of_time(p, row):
                continue
            try:
                model = create_model(model_name, num_classes=5, in_chans=3, pretrained=False)
                # the reference: fp32, NCHW; then the project's CUDA path (bf16 autocast + channels_last)
                # (--smoke: CPU bf16 autocast is an emulation far slower than fp32; the path runs unautocast)
                accel = Accel.for_device(device, None if p.smoke else True) if amp else Accel(device, None, False)
                model = accel.prepare_model(model)
                opt = torch.optim.Adam(model.parameters(), lr=1e-4)
                scaler = accel.make_scaler()
                x = torch.randint(0, 256, (p.cls_batch, 3, p.cls_size, p.cls_size), dtype=torch.uint8)
                y = (torch.rand(p.cls_batch, 5) < 0.3).float()
                loader = [(x, y)]

                def step() -> None:
                    train_epoch(model, loader, opt, lambda lg, t: focal_loss(lg, t), accel, scaler, keep_outputs=False)

                sec, n = timed(step, device, p.warmup, p.steps, p.part_budget_s)
                row.update(img_per_s=round(p.cls_batch / sec, 1), steps=n, peak_mib=_peak_mib(device))
                ref = row["img_per_s"] if name == "fp32" else ref
                if ref and name != "fp32":
                    row["vs_fp32"] = round(row["img_per_s"] / ref, 2)
                del model, opt
            except Exception as e:  # noqa: BLE001
                row["error"] = _one_line(e)
            _free(device)
    return rows


def part_loader(p: argparse.Namespace, device: torch.device, tmp: Path) -> list[dict]:
    channels = ("red", "green", "blue", "yellow")
    root = make_data(tmp / "loader-data", p.loader_n, p.loader_size, channels)
    ds = open_dataset(root)
    rows = []
    for name in ("png", "cache"):
        row: dict[str, Any] = {"part": "loader", "variant": name, "size": p.loader_size, "channels": 4}
        try:
            if name == "cache":
                build_cache(ds, p.loader_size, channels)
            dataset = ChannelStackDataset(ds, channels, p.loader_size, [0, 25], cache="auto" if name == "cache" else None)
            loader = make_loader(dataset, p.loader_batch, shuffle=True, workers=None if name == "cache" else p.workers,
                                 pin_memory=device.type == "cuda")
            t0, count = time.perf_counter(), 0
            for _ in range(p.loader_epochs if name == "cache" else 1):
                for xb, _ in loader:
                    if device.type == "cuda":
                        xb = xb.to(device, non_blocking=True)
                    count += xb.shape[0]
            sync(device)
            row["samples_per_s"] = round(count / (time.perf_counter() - t0), 1)
        except Exception as e:  # noqa: BLE001
            row["error"] = _one_line(e)
        rows.append(row)
    if all("samples_per_s" in r for r in rows):
        rows[1]["vs_png"] = round(rows[1]["samples_per_s"] / rows[0]["samples_per_s"], 1)
    return rows


def part_fid(p: argparse.Namespace, device: torch.device, tmp: Path) -> list[dict]:
    from protgan.evaluation.fid import make_extractor

    rows = []
    for spec in ("efficientnet_lite0", "inception"):
        row: dict[str, Any] = {"part": "fid", "features": spec, "size": p.fid_size, "batch": p.fid_batch}
        rows.append(row)
        if out_of_time(p, row):
            continue
        try:
            ext = make_extractor(spec, device)
            x = torch.randint(0, 256, (p.fid_batch, 3, p.fid_size, p.fid_size), dtype=torch.uint8)

            def step() -> None:
                ext(x, ("red", "green", "blue"))

            sec, n = timed(step, device, p.warmup, p.steps, p.part_budget_s)
            row.update(img_per_s=round(p.fid_batch / sec, 1), steps=n, dim=ext.dim)
        except Exception as e:  # noqa: BLE001  (inception: no weights offline is a recorded skip)
            row["error"] = _one_line(e)
        _free(device)
    return rows


_ALLREDUCE = r"""
import os, sys, time, torch, torch.distributed as dist
backend, mib = sys.argv[1], float(sys.argv[2])
dist.init_process_group(backend)
rank, world = dist.get_rank(), dist.get_world_size()
dev = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if backend == "nccl" else torch.device("cpu")
if dev.type == "cuda":
    torch.cuda.set_device(dev)
x = torch.ones(int(mib * 2**20 / 4), device=dev)
for _ in range(3):
    dist.all_reduce(x)
if dev.type == "cuda":
    torch.cuda.synchronize()
t0, n = time.perf_counter(), 10
for _ in range(n):
    dist.all_reduce(x)
if dev.type == "cuda":
    torch.cuda.synchronize()
dt = (time.perf_counter() - t0) / n
if rank == 0:
    # bus bandwidth as nccl-tests reports it: 2 (w - 1) / w x bytes / time
    print("RESULT", world, round(2 * (world - 1) / world * x.numel() * 4 / dt / 1e9, 2), round(dt * 1e3, 3))
dist.destroy_process_group()
"""


def part_torchrun(p: argparse.Namespace, device: torch.device, tmp: Path) -> list[dict]:
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    backend, nproc = ("nccl", gpus) if gpus > 1 else ("gloo", 2) if p.smoke else (None, gpus)
    row: dict[str, Any] = {"part": "torchrun", "backend": backend, "processes": nproc, "mib": p.allreduce_mib}
    if backend is None:
        row["skipped"] = f"{gpus} GPU: NCCL needs two or more"
        return [row]
    script = tmp / "allreduce.py"
    script.write_text(_ALLREDUCE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
           "127.0.0.1", "--master-port", str(port), str(script), backend, str(p.allreduce_mib)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
        if proc.returncode or not line:
            row["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        else:
            _, world, gbps, ms = line[0].split()
            row.update(world=int(world), busbw_gb_per_s=float(gbps), ms_per_allreduce=float(ms))
    except subprocess.TimeoutExpired:
        row["error"] = "timed out"
    return [row]


PARTS = {"gan": part_gan, "classify": part_classify, "loader": part_loader, "fid": part_fid, "torchrun": part_torchrun}


# ------------------------------------------------------------------------------------------ helpers
def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]


def _peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    mib = torch.cuda.max_memory_allocated(device) / 2**20
    torch.cuda.reset_peak_memory_stats(device)
    return round(mib)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    try:
        torch._dynamo.reset()
    except Exception:  # noqa: BLE001
        pass


def table(rows: list[dict]) -> str:
    lines = [f"{'part':<9} {'what':<44} {'figure':>22} {'vs ref':>7}"]
    for r in rows:
        what = " ".join(str(r[k]) for k in ("arch", "model", "features", "backend", "variant", "size", "batch",
                                             "processes") if r.get(k) is not None)
        if "error" in r or "skipped" in r:
            fig, ratio = (r.get("error") or r.get("skipped"))[:60], ""
            lines.append(f"{r['part']:<9} {what:<44} {fig}")
            continue
        for key, unit in (("img_per_s", "img/s"), ("samples_per_s", "samples/s"), ("busbw_gb_per_s", "GB/s")):
            if key in r:
                fig = f"{r[key]:g} {unit}"
        ratio = next((f"x{r[k]:g}" for k in ("vs_fp32", "vs_png") if k in r), "")
        lines.append(f"{r['part']:<9} {what:<44} {fig:>22} {ratio:>7}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="every part at tiny sizes on the CPU (< 60 s)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS))
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile variants")
    ap.add_argument("--out", type=Path, default=None, help="the JSON file (default bench/results/gpu-<time>.json)")
    p = ap.parse_args(argv)
    p.parts = [x.strip() for x in p.parts.split(",") if x.strip()]
    unknown = [x for x in p.parts if x not in PARTS]
    if unknown:
        ap.error(f"--parts: unknown {unknown}")
    if p.smoke:
        p.device, p.compile = "cpu", False
        p.gan_sizes, p.gan_batch, p.gan_width = [32], 4, 16
        p.models, p.cls_size, p.cls_batch = ["resnet18"], 32, 4
        p.loader_n, p.loader_size, p.loader_batch, p.loader_epochs, p.workers = 8, 32, 4, 2, 0
        p.fid_size, p.fid_batch = 32, 4
        p.allreduce_mib, p.warmup, p.steps, p.part_budget_s, p.budget_s = 0.25, 1, 1, 2.0, 300.0
    else:
        p.gan_sizes, p.gan_batch, p.gan_width = [256, 512], 64, 1024  # the paper's G and D
        p.models, p.cls_size, p.cls_batch = ["resnet50", "inception_v4"], 512, 32
        p.loader_n, p.loader_size, p.loader_batch, p.loader_epochs, p.workers = 256, 512, 32, 3, 8
        p.fid_size, p.fid_batch = 512, 64
        p.allreduce_mib, p.warmup, p.steps, p.part_budget_s, p.budget_s = 256, 3, 30, 10.0, 420.0
    return p


def main(argv: list[str] | None = None) -> dict:
    p = parse_args(argv)
    device = resolve_device(p.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    t_start = time.perf_counter()
    p.deadline = t_start + p.budget_s  # the torchrun part (last) has its own timeout
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in p.parts:
            t0 = time.perf_counter()
            try:
                part_rows = PARTS[name](p, device, Path(tmp))
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                part_rows = [{"part": name, "error": _one_line(e)}]
            for r in part_rows:
                r.setdefault("part_seconds", round(time.perf_counter() - t0, 1))
            rows += part_rows
            print(f"[{name}] {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    result = {
        "bench": "gpu", "smoke": p.smoke, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "torch": torch.__version__, "python": platform.python_version(), "host_cores": os.cpu_count(),
        "seconds": round(time.perf_counter() - t_start, 1), "rows": rows,
    }
    out = p.out or RESULTS / f"gpu-{'smoke-' if p.smoke else ''}{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=1) + "\n")
    tmp_out.replace(out)
    print(table(rows))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"} | {"file": str(out)}))
    return result


if __name__ == "__main__":
    main()
