"""`protgan train-gan --data DATA --class N --out RUN`: one class's DCGAN, the paper's recipe, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from protgan.cli.app import app, console, err_console
from protgan.data import resolve_class
from protgan.gan.train import TrainGanConfig, GanTrainer


@app.command("train-gan")
def train_gan(
    data: Path = typer.Option(..., "--data", help="Dataset folder in the HPA layout (a packed cache in DATA/cache is used when present)."),
    class_: str = typer.Option(..., "--class", help="The class to learn: index 0..27 or name (e.g. 0 or Nucleoplasm)."),
    out: Path = typer.Option(..., "--out", help="Run folder: config.json, checkpoints/, samples/, metrics.csv, losses.png."),
    size: int = typer.Option(512, "--size", help="Image side: a power of two 32..512 (paper: 512; log2(size/8) up/down layers)."),
    channels: str = typer.Option("rgb", "--channels", help="green, rgb (the paper's) or rgby."),
    select: str = typer.Option("only", "--select", help="only: images whose only label within --classes is the class (synthetic labels stay true); any: every image that has it."),
    classes: str = typer.Option("all", "--classes", help="Class subset that --select only is judged within: all, top5 or a comma list."),
    steps: int = typer.Option(20000, "--steps", help="Training steps (one D and one G update each)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per minibatch (real and fake minibatches are separate)."),
    lr_g: float = typer.Option(2e-4, "--lr-g", help="Adam learning rate of G (betas 0.5, 0.999)."),
    lr_d: float = typer.Option(0.01, "--lr-d", help="SGD learning rate of D (momentum 0.9)."),
    g_width: int = typer.Option(1024, "--g-width", help="G channels at its 8x8 grid, halving per layer (paper: 1024; smaller for quick CPU runs)."),
    d_width: int = typer.Option(1024, "--d-width", help="D channels at its last 8x8 conv, halving towards the input (1024 mirrors G)."),
    ckpt_every: int = typer.Option(1000, "--ckpt-every", help="Steps between checkpoints (also written at the end and on Ctrl-C); 0: only then."),
    sample_every: int = typer.Option(500, "--sample-every", help="Steps between fixed-noise sample grids (samples/step_XXXXXX.png); 0: only at the end."),
    log_every: int = typer.Option(50, "--log-every", help="Steps between metrics rows (the only host-device sync)."),
    ema_decay: float = typer.Option(0.999, "--ema-decay", help="Decay of the EMA generator used for samples (0: a copy of G)."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="Mixed precision on CUDA (bf16, or fp16 with loss scaling); CPU runs fp32."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile G and D (slow start, faster steps on GPU)."),
    diffaug: str = typer.Option("", "--diffaug", help="DiffAugment policies for small classes, e.g. color,translation,cutout (default off)."),
    resume: str = typer.Option("auto", "--resume", help="auto: continue OUT/checkpoints/last.pt when present; never: start over."),
    seed: int = typer.Option(0, "--seed", help="Seed of the init, the noise and the data order."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Loader worker processes (default: a background thread for cached data, else one per core)."),
    eval_every: int = typer.Option(0, "--eval-every", help="Steps between KID/FID of EMA samples vs the class's real images (metrics.csv, losses.png); its KID keeps checkpoints/best.pt. 0: off."),
    eval_images: int = typer.Option(256, "--eval-images", help="Generated images per --eval-every evaluation (real: up to 2000 of the class)."),
    eval_features: str = typer.Option("efficientnet_lite0", "--eval-features", help="Feature space of --eval-every: efficientnet_lite0 (offline ImageNet weights), inception or ckpt:PATH."),
) -> None:
    """Train one class's DCGAN (Verma et al. 2020): G 100-d noise -> 8x8x1024 -> 3x3 stride-2 transposed
    convs -> tanh; D 3x3 stride-2 convs + BN + dropout -> one logit; Adam for G, SGD for D, 5% label
    flips, label smoothing. Resumes OUT automatically; Ctrl-C saves a checkpoint and stops."""
    cfg = TrainGanConfig(
        data=str(data), class_index=resolve_class(class_), out=str(out), size=size,
        channels=channels.split(",") if "," in channels else channels,  # type: ignore[arg-type]
        select=select, classes=classes, steps=steps, batch_size=batch_size, lr_g=lr_g, lr_d=lr_d,
        g_width=g_width, d_width=d_width,
        ckpt_every=ckpt_every, sample_every=sample_every, log_every=log_every, ema_decay=ema_decay, amp=amp,
        compile=compile_, diffaug=diffaug,  # type: ignore[arg-type]
        resume=resume, seed=seed, device=device, workers=workers, eval_every=eval_every,
    )
    warn = lambda message: err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)  # noqa: E731
    progress = Progress(TextColumn("[bold]train-gan"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=console, transient=False)
    task = progress.add_task("train", total=steps, losses="")

    def on_log(row: dict[str, float]) -> None:
        progress.update(task, losses=(f"D {row['loss_D']:.3f}  G {row['loss_G']:.3f}  D(x) {row['D_x']:.2f}  "
                                      f"D(G(z)) {row['D_G_z']:.2f}  div {row['diversity']:.2f}  {row['img_per_s']:.0f} img/s"))

    from protgan.gan.fid import TrainingEval

    eval_fn = TrainingEval(eval_features, n_fake=eval_images, seed=seed) if eval_every else None
    trainer = GanTrainer(cfg, eval_fn=eval_fn, on_log=on_log, on_step=lambda s: progress.update(task, completed=s), warn=warn)
    console.print(f"class {cfg.class_index} ({cfg.class_name}): {cfg.n_images} images (--select {cfg.select}, "
                  f"--classes {cfg.classes}), {cfg.size} px {'+'.join(cfg.channels)} on {trainer.device}"
                  + (f", amp {str(trainer.amp_dtype).replace('torch.', '')}" if trainer.amp_dtype else ""),
                  highlight=False, soft_wrap=True)
    with progress:
        result = trainer.fit()
    if result.status == "already-done":
        console.print(f"{out}: already trained to step {result.step} (raise --steps to continue)", highlight=False, soft_wrap=True)
    elif result.status == "interrupted":
        err_console.print(f"interrupted at step {result.step}: saved {result.checkpoint} "
                          f"(run the same command to resume)", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    else:
        console.print(f"done: step {result.step}, checkpoint {result.checkpoint}, samples in {out / 'samples'}",
                      highlight=False, soft_wrap=True)
