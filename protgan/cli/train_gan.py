"""`protgan train-gan --data DATA --class N --out RUN`: one class's DCGAN, the paper's recipe, resumable.
Its options are TrainGanConfig's fields (protgan.gan.config); --class, --gpus and --jobs are its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from protgan.cli.app import app, console, err_console
from protgan.cli.options import Opts, field_help, with_config
from protgan.core.errors import ProtganError
from protgan.core.progress import LogOptions, Reporter, is_rank0
from protgan.gan.config import TrainGanConfig


@app.command("train-gan")
@with_config((TrainGanConfig, {"exclude": ["class_index"], "optional": ["classes", "data", "out"]}), LogOptions)
def train_gan(
    class_: Optional[str] = typer.Option(None, "--class", help=field_help(TrainGanConfig, "class_index")),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="Fan-out (--classes without --class): GPUs to spread the "
                                       "classes over, one job per GPU at a time, e.g. 0,1,2,3 (default with CUDA: all "
                                       "visible)."),
    jobs: int = typer.Option(1, "--jobs", help="Fan-out on the CPU: classes trained at a time (the cores are split "
                                               "between them)."),
    job: Optional[Path] = typer.Option(None, "--job", hidden=True, help="Internal (fan-out): every training option "
                                       "from this JSON file."),
    *, opts: Opts,
) -> None:
    """Train one class's GAN. --arch dcgan (default, Verma et al. 2020): G 100-d noise -> 8x8x1024 -> 3x3
    stride-2 transposed convs -> tanh; D 3x3 stride-2 convs + BN + dropout -> one logit; Adam for G, SGD
    for D, 5% label flips, label smoothing. --arch fastgan (Liu et al. 2021): for a few dozen images. --arch projected (Sauer et al. 2021):
    FastGAN's G, D on frozen EfficientNet-Lite0 features. Resumes OUT automatically; Ctrl-C saves a checkpoint
    and stops."""
    log_opts = opts.build(LogOptions)
    if job is not None:  # a fan-out job: the parent serialised the whole config
        cfg = TrainGanConfig.from_dict(json.loads(job.read_text()))
        _train_one(cfg, log_opts)
        return
    for name in ("data", "out"):  # optional only for --job (a fan-out job reads them from its file)
        if opts[name] is None:
            raise ProtganError(f"--{name}: required")
    if opts["conditional"] and class_ is None:  # one model for the subset (per fold with --folds K alone)
        if opts["folds"] is not None and opts["fold"] is None:
            _fan_out({**opts, "classes": opts["classes"] or "all"}, gpus, jobs, log_opts)
        else:
            _train_one(opts.build(TrainGanConfig, class_index=None, classes=opts["classes"] or "all"), log_opts)
        return
    if class_ is None:
        if opts["classes"] is None:
            raise ProtganError("--class: required (or --classes top5|all|LIST without --class: one GAN per class)")
        _fan_out(opts, gpus, jobs, log_opts)
        return
    if gpus is not None:
        raise ProtganError("--gpus: only for a fan-out (--classes without --class); one class uses --device cuda:N")
    _train_one(opts.build(TrainGanConfig, class_index=class_, classes=opts["classes"] or "all"), log_opts)


def _train_one(cfg: TrainGanConfig, log_opts: LogOptions) -> None:
    cfg.validate()  # option errors before the engine (and torch) is imported
    from protgan.classify import embedding as _embedding  # noqa: F401  (registers --eval-features ckpt:PATH)
    from protgan.core import distributed
    from protgan.gan.conditional import training_eval
    from protgan.gan.train import GanTrainer

    main = distributed.is_main()  # torchrun: rank 0 prints and reports progress
    warn = lambda message: main and err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)  # noqa: E731
    eval_fn = training_eval(cfg, cfg.eval_images, cfg.eval_features)
    with Reporter("train-gan", console, log_opts, unit="step", transient=False, enabled=main) as progress:
        def on_log(row: dict[str, float]) -> None:
            figures = {"D": row["loss_D"], "G": row["loss_G"], "D(x)": row["D_x"], "D(G(z))": row["D_G_z"],
                       "div": row["diversity"], "img/s": round(row["img_per_s"])}
            figures.update({k.upper(): row[k] for k in ("kid", "fid") if k in row})
            progress.figures(**figures)

        trainer = GanTrainer(cfg, eval_fn=eval_fn, on_log=on_log,
                             on_step=lambda s: progress.update("train", s, cfg.steps), warn=warn)
        part = "every image" if cfg.fold is None else f"training part of fold {cfg.fold}/{cfg.folds}"
        what = (f"conditional, classes {','.join(map(str, cfg.class_subset))}: {cfg.n_images} images with a label "
                f"of the subset ({trainer.n_unlabeled} without one dropped; --balance {cfg.balance}, {part})"
                if cfg.conditional else f"class {cfg.class_index} ({cfg.class_name}): {cfg.n_images} images "
                f"(--select {cfg.select}, --classes {cfg.classes}, {part})")
        progress.log(f"{what}, {cfg.size} px {'+'.join(cfg.channels)} on {trainer.device}"
                     + (f", amp {str(trainer.amp_dtype).replace('torch.', '')}" if trainer.amp_dtype else ""))
        if distributed.active():
            progress.log(f"torchrun: {distributed.world_size()} processes x --batch-size {cfg.batch_size} = global "
                         f"batch {distributed.world_size() * cfg.batch_size}, lr x {trainer.lr_factor:g} "
                         f"(--lr-scaling {cfg.lr_scaling}){', sync batch norm' if cfg.sync_bn else ''}")
        result = trainer.fit()
    if not main:
        return
    out = Path(cfg.out)
    if result.status == "already-done":
        console.print(f"{out}: already trained to step {result.step} (raise --steps to continue)", highlight=False, soft_wrap=True)
    elif result.status == "interrupted":
        err_console.print(f"interrupted at step {result.step}: saved {result.checkpoint} "
                          f"(run the same command to resume)", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    elif result.status == "time-limit":
        console.print(f"time limit: --max-minutes {cfg.max_minutes:g} reached at step {result.step} of {cfg.steps}: saved "
                      f"{result.checkpoint} (rerun with a larger --max-minutes to continue)", highlight=False, soft_wrap=True)
    else:
        console.print(f"done: step {result.step}, checkpoint {result.checkpoint}, samples in {out / 'samples'}",
                      highlight=False, soft_wrap=True)


def _fan_out(opts: Opts, gpus: Optional[str], jobs: int, log_opts: LogOptions) -> None:
    """`--classes LIST` without `--class`: one `train-gan` process per class, into OUT/class_N, each given
    its serialised config (protgan.gan.fanout)."""
    from rich.table import Table

    from protgan.core import distributed
    from protgan.gan.fanout import make_slots, plan_jobs, run_fanout, write_summary

    if distributed.launched_world_size() > 1:
        raise ProtganError("--classes without --class under torchrun: a fan-out runs its own processes "
                           "(run it without torchrun, with --gpus)")
    base = {k: v for k, v in opts.items() if k in TrainGanConfig.__dataclass_fields__}
    out, classes = Path(base["out"]), base["classes"]
    slots = make_slots(gpus, base["device"], jobs)
    plan = plan_jobs(base, classes, out, ["--log-format", "plain", "--log-interval", str(log_opts.log_interval)])
    console.print(f"fan-out: {len(plan)} jobs ({', '.join(j.label for j in plan)}) on "
                  f"{', '.join(s.label for s in slots)}; logs in {plan[0].out.parent}/class_N/train.log",
                  highlight=False, soft_wrap=True)

    def on_event(event: str, job, slot) -> None:
        where = f" on {slot.label}" if slot is not None else ""
        console.print(f"{job.label} ({job.name}): {event}{where}", highlight=False, soft_wrap=True)

    results = run_fanout(plan, slots, on_event)
    interrupted = any(r.status in ("interrupted", "not started") for r in results)
    path = write_summary(out, classes, slots, base, results, interrupted)
    table = Table(title=f"train-gan fan-out: {out}")
    for col in ("class", "fold", "name", "device", "status", "step", "minutes", "log / error"):
        table.add_column(col, justify="right" if col in ("class", "fold", "step", "minutes") else "left")
    for r in results:
        table.add_row(str(r.class_index), "all" if r.fold is None else str(r.fold), r.name, r.slot, r.status, "-" if r.step is None else str(r.step),
                      f"{r.seconds / 60:.1f}", r.error or r.log)
    console.print(table)
    console.print(f"wrote {path}", highlight=False)
    if interrupted:
        raise typer.Exit(130)
    failed = [r for r in results if r.status != "done"]
    if failed:
        err_console.print(f"{len(failed)} of {len(results)} classes failed: "
                          + ", ".join(f"{r.class_index}{'' if r.fold is None else f' fold {r.fold}'} (rc {r.returncode})"
                                      for r in failed), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
