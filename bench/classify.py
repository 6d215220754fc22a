"""Training throughput of protgan's classify loop against a plain PyTorch loop, same model, data and batch,
measured in the same run. Prints one JSON line.

protgan: ChannelStackDataset on the packed uint8 cache + make_loader (workers, pinned memory) +
`train_epoch` (focal loss, loss summed on the device, AMP bf16/fp16 and channels_last on CUDA).
plain:   the same images already in memory as a uint8 TensorDataset, a default DataLoader, fp32,
         BCE-with-logits, `loss.item()` every step (the usual tutorial loop).

    python bench/classify.py                      # resnet50 at 512, batch 8 on CPU / 32 on CUDA
    python bench/classify.py --steps 20 --batch 16 --device cuda
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from protgan.classify.losses import focal_loss
from protgan.classify.models import create_model
from protgan.classify.train import Accel, train_epoch
from protgan.data import ChannelStackDataset, build_cache, make_loader, open_dataset, write_label_table, write_png
from protgan.core.device import resolve_device

CHANNELS = ("red", "green", "blue")


def make_data(root: Path, n: int, size: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True)
    ids = [f"b{i:05d}" for i in range(n)]
    for id_ in ids:
        for ch in CHANNELS:
            write_png(root / "train" / f"{id_}_{ch}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
    targets = [tuple(sorted({int(c) for c in rng.choice([0, 25, 21, 2, 23], size=rng.integers(1, 3))})) for _ in ids]
    write_label_table(root / "train.csv", ids, targets)
    return root


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_protgan(model, dataset, batch: int, warmup: int, steps: int, device, workers: int) -> float:
    accel = Accel.for_device(device, None)
    model = accel.prepare_model(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = accel.make_scaler()
    loss_fn = lambda logits, y: focal_loss(logits, y)  # noqa: E731
    loader = make_loader(dataset, batch, shuffle=True, workers=workers, pin_memory=device.type == "cuda",
                         drop_last=True)
    it = iter(loader)

    class _Take:
        def __init__(self, k):
            self.k = k

        def __iter__(self):
            for _ in range(self.k):
                yield next(it)

    train_epoch(model, _Take(warmup), opt, loss_fn, accel, scaler, keep_outputs=False)
    sync(device)
    t = time.perf_counter()
    train_epoch(model, _Take(steps), opt, loss_fn, accel, scaler, keep_outputs=False)
    sync(device)
    return steps * batch / (time.perf_counter() - t)


def bench_plain(model, images: torch.Tensor, labels: torch.Tensor, batch: int, warmup: int, steps: int, device) -> float:
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch, shuffle=True, drop_last=True)
    it = iter(loader)
    model.train()

    def step():
        x, y = next(it)
        x = x.to(device).float() / 255.0
        y = y.to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(warmup):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=None, help="default 8 on CPU, 32 on CUDA")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 4 on CPU, 30 on CUDA)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="protgan loader workers (default: up to 8)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (32 if cuda else 8)
    steps = args.steps or (30 if cuda else 4)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    n = batch * (steps + warmup) * 2  # each loop draws from its own shuffled pass; same images for both
    if cuda:
        torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as tmp:
        root = make_data(Path(tmp) / "data", n, args.size)
        ds = open_dataset(root)
        classes = [0, 25, 21, 2, 23]
        build_cache(ds, args.size, CHANNELS)
        dataset = ChannelStackDataset(ds, CHANNELS, args.size, classes)
        assert dataset.cache is not None
        images = torch.from_numpy(np.array(dataset.cache.array))
        labels = dataset.labels.clone()
        torch.manual_seed(0)
        init = create_model(args.model, len(classes), 3, pretrained=False).state_dict()

        def fresh():
            m = create_model(args.model, len(classes), 3, pretrained=False)
            m.load_state_dict(init)
            return m

        plain = bench_plain(fresh(), images, labels, batch, warmup, steps, device)
        ours = bench_protgan(fresh(), dataset, batch, warmup, steps, device, args.workers)
    accel = Accel.for_device(device, None)
    print(json.dumps({
        "bench": "classify", "model": args.model, "size": args.size, "batch": batch, "steps": steps,
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "protgan_img_per_s": float(f"{ours:.4g}"), "plain_fp32_img_per_s": float(f"{plain:.4g}"),
        "ratio_protgan_over_plain": round(ours / plain, 3),
        "protgan_amp": str(accel.amp_dtype).replace("torch.", "") if accel.amp_dtype else "off",
        "protgan_channels_last": accel.channels_last,
    }))


if __name__ == "__main__":
    main()
