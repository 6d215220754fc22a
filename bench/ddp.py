"""DDP scaling of the classifier's training loop: img/s with 1 process and with N processes (torchrun).

    .venv/bin/python bench/ddp.py                       # CPU: gloo, 1 vs 2 processes (cores split between them)
    .venv/bin/python bench/ddp.py --device cuda         # GPUs: NCCL, 1 vs every visible GPU (bf16 autocast, channels_last)

Each measurement is a `torchrun --nproc-per-node W` run of this file in --worker mode: protgan's own
pieces (protgan.core.distributed.setup / wrap_model / ShardedSampler, protgan.classify.train.train_epoch and
Accel, make_loader) on in-memory uint8 images, `--steps` timed global steps after `--warmup` steps,
between barriers. Global img/s = steps x world x batch / seconds. On the CPU the reference (1 process)
gets all the cores and each of the W processes cores / W threads, so the ratio is what DDP buys on the
same machine; on GPUs each process has a GPU of its own. Prints one JSON line: img/s per world size,
speedup and scaling efficiency (speedup / world).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def worker(args: argparse.Namespace) -> None:
    import torch

    from protgan.core import distributed
    from protgan.classify.losses import make_loss
    from protgan.classify.models import create_model
    from protgan.classify.train import Accel, train_epoch
    from protgan.data import make_loader

    threads = int(os.environ.get("PROTGAN_BENCH_THREADS", "0"))
    if threads:
        torch.set_num_threads(threads)
    device = distributed.setup(args.device)
    world, rank = distributed.world_size(), distributed.rank() if distributed.active() else 0
    accel = Accel.for_device(device, None)
    torch.manual_seed(0)
    model = accel.prepare_model(create_model(args.model, args.classes, 3, pretrained=False, head="linear"))
    ddp = distributed.wrap_model(model, device, sync_bn=args.sync_bn)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = accel.make_scaler()
    loss_fn = make_loss("focal")

    class InMemory(torch.utils.data.Dataset):
        """uint8 images + multi-hot labels, like ChannelStackDataset's output, without disk."""

        def __init__(self, n: int) -> None:
            g = torch.Generator().manual_seed(1)
            self.x = torch.randint(0, 256, (n, 3, args.size, args.size), dtype=torch.uint8, generator=g)
            self.y = (torch.rand(n, args.classes, generator=g) < 0.3).float()

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, k: int):
            return self.x[k], self.y[k]

    def loader(steps: int):
        n = steps * world * args.batch
        sampler = distributed.ShardedSampler(n, args.batch, seed=0, rank_=rank, world=world)
        return make_loader(InMemory(n), args.batch, shuffle=False, workers=0, pin_memory=device.type == "cuda",
                           sampler=sampler, drop_last=True)

    warm, timed = loader(args.warmup), loader(args.steps)
    train_epoch(ddp, warm, opt, loss_fn, accel, scaler, keep_outputs=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    distributed.barrier()
    t0 = time.perf_counter()
    train_epoch(ddp, timed, opt, loss_fn, accel, scaler, keep_outputs=False)  # reads its mean loss once: a sync
    if device.type == "cuda":
        torch.cuda.synchronize()
    distributed.barrier()
    seconds = time.perf_counter() - t0
    if distributed.is_main():
        Path(args.out).write_text(json.dumps({
            "world": world, "seconds": seconds, "img_per_s": args.steps * world * args.batch / seconds,
            "backend": "nccl" if device.type == "cuda" and world > 1 else ("gloo" if world > 1 else "none"),
            "threads_per_process": torch.get_num_threads(), "device": str(device),
            "amp": str(accel.amp_dtype).replace("torch.", "") if accel.amp_dtype else None,
        }))
    distributed.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(world: int, args: argparse.Namespace, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world), "--master-addr",
               "127.0.0.1", "--master-port", str(free_port()), __file__, "--worker", "--out", str(out),
               "--model", args.model, "--size", str(args.size), "--batch", str(args.batch), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device, "--classes", str(args.classes)]
        if args.sync_bn:
            cmd.append("--sync-bn")
        env = {**os.environ, "PROTGAN_BENCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0 or not out.exists():
            sys.exit(f"world {world} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=16, help="images per process per step")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--repeat", type=int, default=2, help="alternating measurements per world size (best kept)")
    p.add_argument("--world", type=int, default=0, help="processes to compare with 1 (default: 2 on CPU, every GPU on CUDA)")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    import torch

    cores = os.cpu_count() or 1
    if args.device.startswith("cuda"):
        n = args.world or torch.cuda.device_count()
        device_name = torch.cuda.get_device_name(0)
        threads_1 = threads_n = max(1, cores // max(n, 1))
    else:
        n = args.world or 2
        device_name = "cpu"
        threads_1, threads_n = cores, max(1, cores // n)
    # alternated and best-of-`repeat`: these machines are shared and noisy
    # A second reference, on the CPU: 1 process with the threads of one of the N (what each rank computes
    # with), so the efficiency against it is the cost of DDP's communication alone, even when an
    # oversubscribed machine makes the all-cores process slow (OpenMP threads waiting for each other).
    runs: dict[int, list[dict]] = {1: [], n: []}
    per_rank: list[dict] = []
    for _ in range(args.repeat):
        runs[1].append(measure(1, args, threads_1))
        if n >= 2:
            runs[n].append(measure(n, args, threads_n))
            if threads_n != threads_1:
                per_rank.append(measure(1, args, threads_n))
    one = max(runs[1], key=lambda r: r["img_per_s"])
    result = {"bench": "ddp", "device": device_name, "cores": cores, "model": args.model, "size": args.size,
              "batch_per_process": args.batch, "steps": args.steps, "sync_bn": args.sync_bn, "repeat": args.repeat,
              "all_img_per_s": {str(w): [round(r["img_per_s"], 2) for r in rs] for w, rs in runs.items()},
              "img_per_s": {"1": round(one["img_per_s"], 2)}, "reference": "1 process (all cores on CPU)"}
    if n < 2:
        result["note"] = f"only {n} device(s): no multi-process measurement"
    else:
        many = max(runs[n], key=lambda r: r["img_per_s"])
        speedup = many["img_per_s"] / one["img_per_s"]
        result.update({"world": n, "backend": many["backend"], "amp": many["amp"],
                       "threads_per_process": {"1": one["threads_per_process"], str(n): many["threads_per_process"]},
                       "speedup": round(speedup, 3), "scaling_efficiency": round(speedup / n, 3)})
        result["img_per_s"][str(n)] = round(many["img_per_s"], 2)
        if per_rank:
            ref = max(r["img_per_s"] for r in per_rank)
            result[f"img_per_s_1_process_{threads_n}_threads"] = round(ref, 2)
            result["scaling_efficiency_vs_per_rank_threads"] = round(many["img_per_s"] / (n * ref), 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
