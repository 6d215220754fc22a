"""Training throughput of protgan's DCGAN trainer step vs a straightforward reference loop, same architecture.

    .venv/bin/python bench/gan_step.py [--sizes 64,128,256,512] [--steps N] [--batch-size B] [--width 1024]

protgan: GanTrainer.train_step (bf16/fp16 autocast and channels_last on CUDA, no host sync in the loop,
D's weight gradients skipped in the G step, EMA of G). Reference: the same G and D, Adam/SGD, label
flips and smoothing, separate real/fake minibatches, written the plain way (fp32, NCHW, `.item()` on
each step's losses, zero_grad(), no EMA). Both consume the same uint8 batch already in host memory
(pinned on CUDA), so the data loader is not measured. Each (size, variant) runs in its own process so
peak memory is its own: torch.cuda.max_memory_allocated on GPU, ru_maxrss on CPU.
Also `fastgan`: the same trainer with --arch fastgan (width --fastgan-width for G and D, the paper's
hinge loss + reconstruction decoders, ADA on), through the same GPU path (bf16 autocast + channels_last
on CUDA), reported as img/s and as a ratio to protgan's dcgan step measured in the same run.
Prints one JSON line: per size img/s of each, the ratios, peak MiB, and the device.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protgan.data import write_label_table, write_png  # noqa: E402
from protgan.core.device import resolve_device  # noqa: E402
from protgan.gan import build_discriminator, build_generator  # noqa: E402
from protgan.gan.train import GanTrainer, TrainGanConfig  # noqa: E402

CHANNELS = 3


class ReferenceLoop:
    """The DCGAN step as a plain PyTorch example would write it (PyTorch's dcgan example, the paper's recipe)."""

    def __init__(self, size: int, width: int, device: torch.device) -> None:
        self.device = device
        self.G = build_generator(size, CHANNELS, 100, width).to(device)
        self.D = build_discriminator(size, CHANNELS, width).to(device)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_D = torch.optim.SGD(self.D.parameters(), lr=0.01, momentum=0.9)
        self.log: list[tuple[float, float]] = []

    def step(self, batch_u8: torch.Tensor) -> None:
        real = batch_u8.to(self.device).float() / 127.5 - 1.0
        b = real.shape[0]
        z = torch.randn(b, 100, device=self.device)
        real_t = torch.where(torch.rand(b, device=self.device) < 0.05, 0.0, 0.9)
        fake_t = torch.where(torch.rand(b, device=self.device) < 0.05, 0.9, 0.0)
        fake = self.G(z)
        self.opt_D.zero_grad()
        loss_d = (F.binary_cross_entropy_with_logits(self.D(real), real_t)
                  + F.binary_cross_entropy_with_logits(self.D(fake.detach()), fake_t))
        loss_d.backward()
        self.opt_D.step()
        self.opt_G.zero_grad()
        loss_g = F.binary_cross_entropy_with_logits(self.D(fake), torch.ones(b, device=self.device))
        loss_g.backward()
        self.opt_G.step()
        self.log.append((loss_d.item(), loss_g.item()))

    def finish(self) -> None:
        pass


class ProtganStep:
    def __init__(self, size: int, width: int, batch: int, device: str, amp: bool, compile_: bool, tmp: Path,
                 arch: str = "dcgan") -> None:
        # The trainer is built on a tiny real dataset (it reads a handful of images for its reference batch).
        ids = [f"b{i:04d}" for i in range(batch)]
        rng = np.random.default_rng(0)
        for i in ids:
            for ch in ("red", "green", "blue"):
                write_png(tmp / "train" / f"{i}_{ch}.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))
        write_label_table(tmp / "train.csv", ids, [(0,)] * batch)
        cfg = TrainGanConfig(data=str(tmp), class_index=0, out=str(tmp / "run"), size=size, batch_size=batch,
                             g_width=width, d_width=width, device=device, amp=amp, compile=compile_, workers=0,
                             n_samples=4, steps=10**9, arch=arch)
        self.trainer = GanTrainer(cfg)

    def step(self, batch_u8: torch.Tensor) -> None:
        self.trainer.train_step(batch_u8)
        self.trainer.step += 1

    def finish(self) -> None:
        self.trainer._sums.tolist()  # the one sync a log interval costs


def run_one(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    torch.manual_seed(0)
    batch_u8 = torch.randint(0, 256, (args.batch_size, CHANNELS, args.size, args.size), dtype=torch.uint8)
    if device.type == "cuda":
        batch_u8 = batch_u8.pin_memory()
    with tempfile.TemporaryDirectory() as tmp:
        if args.variant in ("protgan", "fastgan"):
            fast = args.variant == "fastgan"
            runner = ProtganStep(args.size, args.fastgan_width if fast else args.width, args.batch_size, args.device,
                                 not args.no_amp, args.compile, Path(tmp), arch="fastgan" if fast else "dcgan")
        else:
            runner = ReferenceLoop(args.size, args.width, device)
        for _ in range(args.warmup):
            runner.step(batch_u8)
        runner.finish()
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            runner.step(batch_u8)
        runner.finish()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"img_s": args.steps * args.batch_size / seconds, "peak_mib": peak_mib, "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=None, help="comma list (default: 64,128,256,512 on CUDA, 64,128 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per size (default: 30 CUDA, 3 CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 5 CUDA, 1 CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="default: 64 CUDA (the trainer's default), 4 CPU")
    p.add_argument("--width", type=int, default=1024, help="G/D width (1024: the paper's model)")
    p.add_argument("--fastgan-width", type=int, default=256, help="fastgan G/D width at 8x8 (256: about the paper's ndf=64)")
    p.add_argument("--no-fastgan", action="store_true", help="skip the fastgan measurement")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true", help="protgan without autocast (isolates channels_last etc.)")
    p.add_argument("--compile", action="store_true", help="protgan with torch.compile")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--variant", choices=["protgan", "reference", "fastgan"], help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = resolve_device(args.device).type == "cuda"
    args.steps = args.steps or (30 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    args.batch_size = args.batch_size or (64 if cuda else 4)
    if args.variant:  # a child: one measurement
        print(json.dumps(run_one(args)))
        return
    sizes = [int(s) for s in (args.sizes or ("64,128,256,512" if cuda else "64,128")).split(",")]
    passthrough = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
                   "--width", str(args.width), "--fastgan-width", str(args.fastgan_width), "--device", args.device]
    passthrough += ["--no-amp"] * args.no_amp + ["--compile"] * args.compile
    passthrough += ["--threads", str(args.threads)] if args.threads else []
    results = []
    for size in sizes:
        row: dict = {"size": size}
        for variant in ("reference", "protgan") + (() if args.no_fastgan else ("fastgan",)):
            out = subprocess.run([sys.executable, __file__, "--variant", variant, "--size", str(size), *passthrough],
                                 capture_output=True, text=True, check=True)
            m = json.loads(out.stdout.strip().splitlines()[-1])
            row[f"{variant}_img_s"] = round(m["img_s"], 2)
            row[f"{variant}_peak_mib"] = round(m["peak_mib"], 1)
        row["speedup"] = round(row["protgan_img_s"] / row["reference_img_s"], 3)
        if not args.no_fastgan:
            row["fastgan_vs_dcgan"] = round(row["fastgan_img_s"] / row["protgan_img_s"], 3)
        results.append(row)
    device = torch.cuda.get_device_name(0) if cuda else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    amp = ("off" if args.no_amp else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")) if cuda else "off (cpu)"
    print(json.dumps({
        "bench": "gan_step", "device": device, "torch": torch.__version__, "batch_size": args.batch_size,
        "width": args.width, "fastgan_width": None if args.no_fastgan else args.fastgan_width, "steps": args.steps, "amp": amp, "channels_last": cuda, "compile": args.compile,
        "peak_memory": "torch.cuda.max_memory_allocated" if cuda else "ru_maxrss", "results": results,
    }))


if __name__ == "__main__":
    main()
