"""Synthetic images/s at 512 px (generated and written) and FID feature-extraction images/s, each against a
straightforward reference measured in the same run. Prints ONE JSON line.

    python bench/synth.py [--n 16] [--batch 8] [--device auto] [--fid-n 16]

- synth: `run_synth` (batched generation, channels_last + optional autocast on CUDA, PNG encoding in
  threads) vs a plain loop of the same generator: generate a batch, then `cv2.imwrite` every channel
  one after the other. The generator is the paper's 512 px G (width 1024), DCGAN-initialised (no
  trained 512 px run here), 3 channels.
- fid: our extractor pipeline (`dataset_features`: per-channel PNGs through the project's loader,
  uint8 to the device, channels_last) vs pytorch-fid's own loop (`get_activations`, the loop inside
  `calculate_activation_statistics`) on the same images saved as RGB PNGs, both with pytorch-fid's
  InceptionV3 (random weights of the real layout: the real file cannot be downloaded here; speed does
  not depend on the values), pool3 2048-d. The features of the two paths are compared as a check.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protgan.core.atomic import write_json  # noqa: E402
from protgan.data import composite_rgb, open_dataset  # noqa: E402
from protgan.core.device import resolve_device  # noqa: E402
from protgan.gan import build_discriminator, build_generator, save_checkpoint  # noqa: E402
from protgan.evaluation import fid as F  # noqa: E402
from protgan.data import to_uint8_images  # noqa: E402
from protgan.gan.synth import SynthConfig, run_synth, sample_noise  # noqa: E402

SIZE = 512
CHANNELS = ("red", "green", "blue")


def make_run(root: Path) -> Path:
    torch.manual_seed(0)
    g = build_generator(SIZE, 3)
    d = build_discriminator(SIZE, 3)
    config = {"class_index": 0, "class_name": "Nucleoplasm", "channels": list(CHANNELS), "size": SIZE,
              "z_dim": 100, "g_width": 1024, "data": str(root / "nodata")}
    run = root / "runs" / "class00"
    write_json(run / "config.json", config)
    save_checkpoint(run / "checkpoints" / "last.pt", {"G": g.state_dict(), "D": d.state_dict(), "G_ema": None,
                                                      "opt_G": {}, "opt_D": {}, "scaler": {}, "step": 0,
                                                      "rng": {}, "config": config})
    return root / "runs"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_synth(runs: Path, out: Path, n: int, batch: int, device: torch.device) -> None:
    """The straightforward loop: fp32, batch by batch, one cv2.imwrite after another."""
    import cv2

    from protgan.gan.checkpoint import load_generator

    g, _ = load_generator(runs / "class00" / "checkpoints" / "last.pt", map_location=device)
    z = sample_noise(n, 100, 0, 0)
    out.mkdir(parents=True)
    with torch.no_grad():
        for start in range(0, n, batch):
            imgs = to_uint8_images(g(z[start:start + batch].to(device))).cpu().numpy()
            for j in range(imgs.shape[0]):
                for c, ch in enumerate(CHANNELS):
                    cv2.imwrite(str(out / f"ref-{start + j:06d}_{ch}.png"), imgs[j, c])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="synthetic images per path")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--fid-n", type=int, default=16, help="images per feature-extraction path")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=None, help="loader workers of both FID paths (default: 2 CPU / 8 GPU)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    amp = device.type == "cuda"
    workers = args.workers if args.workers is not None else (8 if device.type == "cuda" else 2)
    torch.backends.cudnn.benchmark = True

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = make_run(root)
        # Warm-up (model load, allocator, cudnn autotune) outside the timings.
        run_synth(SynthConfig(runs=str(runs), out=str(root / "warm"), per_class=args.batch, batch=args.batch,
                              amp=amp, device=str(device)))
        t = time.perf_counter()
        run_synth(SynthConfig(runs=str(runs), out=str(root / "syn"), per_class=args.n, batch=args.batch, amp=amp,
                              device=str(device)))
        sync(device)
        ours_s = time.perf_counter() - t
        t = time.perf_counter()
        reference_synth(runs, root / "ref", args.n, args.batch, device)
        sync(device)
        ref_s = time.perf_counter() - t

        # Generation alone (no PNG): how much of the time is the network.
        from protgan.gan.checkpoint import load_generator

        g, _ = load_generator(runs / "class00" / "checkpoints" / "last.pt", map_location=device)
        if device.type == "cuda":
            g = g.to(memory_format=torch.channels_last)
        z = sample_noise(args.n, 100, 0, 0)
        t = time.perf_counter()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            for start in range(0, args.n, args.batch):
                to_uint8_images(g(z[start:start + args.batch].to(device)))
        sync(device)
        gen_s = time.perf_counter() - t

        # FID features on the synthetic images just written.
        ds = open_dataset(root / "syn")
        ids = ds.ids[:args.fid_n]
        flat = root / "flat"
        flat.mkdir()
        from protgan.data import read_stack, write_png

        for id_ in ids:
            write_png(flat / f"{id_}.png", composite_rgb(read_stack(ds, id_, CHANNELS, SIZE), CHANNELS))
        state = F.random_fid_inception_state(0)
        ext = F.FeatureExtractor("inception", F.build_fid_inception(state).eval().to(device), 2048,
                                 F.to_three_channels, device)
        if device.type == "cuda":
            ext.model = ext.model.to(memory_format=torch.channels_last)
        F.dataset_features(ds, ids[:args.batch], CHANNELS, SIZE, ext, batch=args.batch, workers=0)  # warm-up
        t = time.perf_counter()
        ours_feats = F.dataset_features(ds, ids, CHANNELS, SIZE, ext, batch=args.batch, workers=workers)
        sync(device)
        fid_ours_s = time.perf_counter() - t

        from pytorch_fid.fid_score import get_activations

        files = sorted(flat.glob("*.png"))
        ref_model = F.build_fid_inception(state).eval().to(device)
        t = time.perf_counter()
        ref_feats = get_activations(files, ref_model, batch_size=args.batch, dims=2048, device=device,
                                    num_workers=workers)
        fid_ref_s = time.perf_counter() - t
        order = {p.stem: k for k, p in enumerate(files)}
        ref_feats = ref_feats[[order[i] for i in ids]]
        max_diff = float(np.abs(ours_feats - ref_feats).max())

    print(json.dumps({
        "bench": "synth",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "size": SIZE, "channels": len(CHANNELS), "n": args.n, "batch": args.batch, "amp": amp,
        "synth_img_per_s": round(args.n / ours_s, 3),
        "reference_synth_img_per_s": round(args.n / ref_s, 3),
        "synth_ratio": round(ref_s / ours_s, 3),
        "generate_only_img_per_s": round(args.n / gen_s, 3),
        "fid_n": len(ids),
        "fid_features_img_per_s": round(len(ids) / fid_ours_s, 3),
        "pytorch_fid_features_img_per_s": round(len(ids) / fid_ref_s, 3),
        "fid_features_ratio": round(fid_ref_s / fid_ours_s, 3),
        "fid_features_max_abs_diff": max_diff,
    }))


if __name__ == "__main__":
    main()
