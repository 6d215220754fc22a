"""`protgan train-gan --data DATA --class N --out RUN`: one class's DCGAN, the paper's recipe, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from protgan.core import distributed
from protgan.cli.app import app, console, err_console
from protgan.data import resolve_class
from protgan.core.errors import ProtganError
from protgan.gan.train import TrainGanConfig, GanTrainer


@app.command("train-gan")
def train_gan(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="Dataset folder in the HPA layout (a packed cache in DATA/cache is used when present)."),
    class_: Optional[str] = typer.Option(None, "--class", help="The class to learn: index 0..27 or name (e.g. 0 or Nucleoplasm). Without it, --classes LIST trains one GAN per class (fan-out)."),
    out: Path = typer.Option(..., "--out", help="Run folder: config.json, checkpoints/, samples/, metrics.csv, losses.png."),
    size: int = typer.Option(512, "--size", help="Image side: a power of two 32..512 (paper: 512; log2(size/8) up/down layers)."),
    channels: str = typer.Option("rgb", "--channels", help="green, rgb (the paper's) or rgby."),
    select: str = typer.Option("only", "--select", help="only: images whose only label within --classes is the class (synthetic labels stay true); any: every image that has it."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Class subset that --select only is judged within: all (default), top5 or a comma list. Without --class: train one GAN per class of it, into OUT/class_N (fan-out: --gpus, --jobs)."),
    steps: int = typer.Option(20000, "--steps", help="Training steps (one D and one G update each)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per minibatch (real and fake minibatches are separate)."),
    lr_g: float = typer.Option(2e-4, "--lr-g", help="Adam learning rate of G (betas 0.5, 0.999)."),
    lr_d: Optional[float] = typer.Option(None, "--lr-d", help="Learning rate of D (default: dcgan 0.01, SGD with momentum 0.9; fastgan 2e-4, Adam)."),
    g_width: int = typer.Option(1024, "--g-width", help="G channels at its 8x8 grid, halving per layer (paper: 1024; smaller for quick CPU runs)."),
    d_width: int = typer.Option(1024, "--d-width", help="D channels at its last 8x8 conv, halving towards the input (1024 mirrors G)."),
    g_upsample: str = typer.Option("transposed", "--g-upsample", help="G's upsampling: transposed (the paper's 3x3 stride-2 transposed convs) or resize (nearest 2x + 3x3 conv: no checkerboard artifacts)."),
    ckpt_every: int = typer.Option(1000, "--ckpt-every", help="Steps between checkpoints (also written at the end and on Ctrl-C); 0: only then."),
    sample_every: int = typer.Option(500, "--sample-every", help="Steps between fixed-noise sample grids (samples/step_XXXXXX.png); 0: only at the end."),
    log_every: int = typer.Option(50, "--log-every", help="Steps between metrics rows (the only host-device sync)."),
    ema_decay: float = typer.Option(0.999, "--ema-decay", help="Decay of the EMA generator used for samples (0: a copy of G)."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="Mixed precision on CUDA (bf16, or fp16 with loss scaling); CPU runs fp32."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile G and D (slow start, faster steps on GPU)."),
    diffaug: str = typer.Option("", "--diffaug", help="DiffAugment policies for small classes, e.g. color,translation,cutout (default off)."),
    arch: str = typer.Option("dcgan", "--arch", help="dcgan (the paper's DCGAN and recipe) or fastgan (Liu et al. 2021: SLE generator, self-supervised D, hinge loss; for few images and small compute)."),
    augment_p: str = typer.Option("auto", "--augment-p", help="Augmentation of D's inputs: off (--diffaug as given), fixed:P or ada:TARGET (adaptive p, Karras et al. 2020); policy --diffaug or color,translation,cutout. auto: off for dcgan, ada:0.6 for fastgan."),
    ada_kimg: float = typer.Option(10.0, "--ada-kimg", help="ADA speed: thousands of images for p to move from 0 to 1."),
    max_minutes: float = typer.Option(0.0, "--max-minutes", help="Stop cleanly after this many minutes of training (summed over resumes; checkpoint, samples, metrics written; exit 0). A rerun with a larger value continues. 0: no limit."),
    time_clock: str = typer.Option("wall", "--time-clock", help="Clock of --max-minutes: wall or cpu (this process's CPU time)."),
    resume: str = typer.Option("auto", "--resume", help="auto: continue OUT/checkpoints/last.pt when present; never: start over."),
    seed: int = typer.Option(0, "--seed", help="Seed of the init, the noise and the data order."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Loader worker processes (default: a background thread for cached data, else one per core)."),
    eval_every: int = typer.Option(0, "--eval-every", help="Steps between KID/FID of EMA samples vs the class's real images (metrics.csv, losses.png); its KID keeps checkpoints/best.pt. 0: off."),
    eval_images: int = typer.Option(256, "--eval-images", help="Generated images per --eval-every evaluation (real: up to 2000 of the class)."),
    eval_features: str = typer.Option("efficientnet_lite0", "--eval-features", help="Feature space of --eval-every: efficientnet_lite0 (offline ImageNet weights), inception or ckpt:PATH."),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="Under torchrun (DDP): batch-norm statistics over the global batch (all processes), as one process with world x --batch-size would compute them."),
    lr_scaling: str = typer.Option("none", "--lr-scaling", help="Under torchrun: none (keep --lr-g/--lr-d, the default), linear (x world size) or sqrt (x sqrt(world size)); --batch-size is per process."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="Fan-out (--classes without --class): GPUs to spread the classes over, one job per GPU at a time, e.g. 0,1,2,3 (default with CUDA: all visible)."),
    jobs: int = typer.Option(1, "--jobs", help="Fan-out on the CPU: classes trained at a time (the cores are split between them)."),
) -> None:
    """Train one class's GAN. --arch dcgan (default, Verma et al. 2020): G 100-d noise -> 8x8x1024 -> 3x3
    stride-2 transposed convs -> tanh; D 3x3 stride-2 convs + BN + dropout -> one logit; Adam for G, SGD
    for D, 5% label flips, label smoothing. --arch fastgan (Liu et al. 2021): for a few dozen images. Resumes OUT automatically; Ctrl-C saves a checkpoint and stops."""
    if class_ is None:
        if classes is None:
            raise ProtganError("--class: required (or --classes top5|all|LIST without --class: one GAN per class)")
        _fan_out(ctx, data, classes, out, device, gpus, jobs)
        return
    if gpus is not None:
        raise ProtganError("--gpus: only for a fan-out (--classes without --class); one class uses --device cuda:N")
    classes = classes or "all"
    main = distributed.is_main()  # torchrun: rank 0 prints and shows the progress bar
    cfg = TrainGanConfig(
        data=str(data), class_index=resolve_class(class_), out=str(out), size=size,
        channels=channels.split(",") if "," in channels else channels,  # type: ignore[arg-type]
        select=select, classes=classes, steps=steps, batch_size=batch_size, lr_g=lr_g, lr_d=lr_d,
        g_width=g_width, d_width=d_width, g_upsample=g_upsample,
        ckpt_every=ckpt_every, sample_every=sample_every, log_every=log_every, ema_decay=ema_decay, amp=amp,
        compile=compile_, diffaug=diffaug,  # type: ignore[arg-type]
        resume=resume, seed=seed, device=device, workers=workers, eval_every=eval_every,
        sync_bn=sync_bn, lr_scaling=lr_scaling, arch=arch, augment_p=augment_p, ada_kimg=ada_kimg,
        max_minutes=max_minutes, time_clock=time_clock,
    )
    warn = lambda message: main and err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)  # noqa: E731
    progress = Progress(TextColumn("[bold]train-gan"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=console, transient=False,
                        disable=not main)
    task = progress.add_task("train", total=steps, losses="")

    def on_log(row: dict[str, float]) -> None:
        progress.update(task, losses=(f"D {row['loss_D']:.3f}  G {row['loss_G']:.3f}  D(x) {row['D_x']:.2f}  "
                                      f"D(G(z)) {row['D_G_z']:.2f}  div {row['diversity']:.2f}  {row['img_per_s']:.0f} img/s"))

    from protgan.evaluation.fid import TrainingEval

    eval_fn = TrainingEval(eval_features, n_fake=eval_images, seed=seed) if eval_every else None
    trainer = GanTrainer(cfg, eval_fn=eval_fn, on_log=on_log, on_step=lambda s: progress.update(task, completed=s), warn=warn)
    if main:
        console.print(f"class {cfg.class_index} ({cfg.class_name}): {cfg.n_images} images (--select {cfg.select}, "
                      f"--classes {cfg.classes}), {cfg.size} px {'+'.join(cfg.channels)} on {trainer.device}"
                      + (f", amp {str(trainer.amp_dtype).replace('torch.', '')}" if trainer.amp_dtype else ""),
                      highlight=False, soft_wrap=True)
        if distributed.active():
            console.print(f"torchrun: {distributed.world_size()} processes x --batch-size {cfg.batch_size} = global batch "
                          f"{distributed.world_size() * cfg.batch_size}, lr x {trainer.lr_factor:g} (--lr-scaling {cfg.lr_scaling})"
                          f"{', sync batch norm' if cfg.sync_bn else ''}", highlight=False, soft_wrap=True)
    with progress:
        result = trainer.fit()
    if not main:
        return
    if result.status == "already-done":
        console.print(f"{out}: already trained to step {result.step} (raise --steps to continue)", highlight=False, soft_wrap=True)
    elif result.status == "interrupted":
        err_console.print(f"interrupted at step {result.step}: saved {result.checkpoint} "
                          f"(run the same command to resume)", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    elif result.status == "time-limit":
        console.print(f"time limit: --max-minutes {max_minutes:g} reached at step {result.step} of {steps}: saved "
                      f"{result.checkpoint} (rerun with a larger --max-minutes to continue)", highlight=False, soft_wrap=True)
    else:
        console.print(f"done: step {result.step}, checkpoint {result.checkpoint}, samples in {out / 'samples'}",
                      highlight=False, soft_wrap=True)


def _fan_out(ctx: typer.Context, data: Path, classes: str, out: Path, device: str, gpus: Optional[str], jobs: int) -> None:
    """`--classes LIST` without `--class`: one `train-gan --class N --out OUT/class_N` process per class."""
    from rich.table import Table

    from protgan.gan.fanout import pass_through_options, plan_jobs, make_slots, run_fanout, write_summary

    if distributed.launched_world_size() > 1:
        raise ProtganError("--classes without --class under torchrun: a fan-out runs its own processes "
                           "(run it without torchrun, with --gpus)")
    slots = make_slots(gpus, device, jobs)
    options = pass_through_options(ctx)
    plan = plan_jobs(str(data), classes, out, options)
    console.print(f"fan-out: {len(plan)} classes ({', '.join(str(j.class_index) for j in plan)}) on "
                  f"{', '.join(s.label for s in slots)}; logs in {out}/class_N/train.log", highlight=False, soft_wrap=True)

    def on_event(event: str, job, slot) -> None:
        where = f" on {slot.label}" if slot is not None else ""
        console.print(f"class {job.class_index} ({job.name}): {event}{where}", highlight=False, soft_wrap=True)

    results = run_fanout(plan, slots, on_event)
    interrupted = any(r.status in ("interrupted", "not started") for r in results)
    path = write_summary(out, classes, slots, options, results, interrupted)
    table = Table(title=f"train-gan fan-out: {out}")
    for col in ("class", "name", "device", "status", "step", "minutes", "log / error"):
        table.add_column(col, justify="right" if col in ("class", "step", "minutes") else "left")
    for r in results:
        table.add_row(str(r.class_index), r.name, r.slot, r.status, "-" if r.step is None else str(r.step),
                      f"{r.seconds / 60:.1f}", r.error or r.log)
    console.print(table)
    console.print(f"wrote {path}", highlight=False)
    if interrupted:
        raise typer.Exit(130)
    failed = [r for r in results if r.status != "done"]
    if failed:
        err_console.print(f"{len(failed)} of {len(results)} classes failed: "
                          + ", ".join(f"{r.class_index} (rc {r.returncode})" for r in failed), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
