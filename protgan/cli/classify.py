"""`protgan classify`: fine-tune a multilabel classifier with the paper's recipe, K-fold, and report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from protgan.core import distributed
from protgan.cli.app import app, console
from protgan.core.errors import ProtganError


def _alpha(text: Optional[str]) -> Optional[float]:
    if text is None or text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise ProtganError(f"--focal-alpha {text!r}: expected a number in (0, 1) or none") from None


def _print_summary(summary: dict, run: Path) -> None:
    from protgan.classify.report import LABELS

    table = Table(title=f"{run}: mean ± std over folds (Test = validation fold)")
    table.add_column("metric")
    kinds = list(summary["val"])
    for t in kinds:
        for s in ("train", "val"):
            table.add_column(f"{'Train' if s == 'train' else 'Test'} ({t})", justify="right")
    for m, label in LABELS.items():
        table.add_row(label, *[f"{summary[s][t][m][0]:.3f} ± {summary[s][t][m][1]:.3f}"
                               for t in kinds for s in ("train", "val")])
    console.print(table)
    console.print(f"wrote {run}/summary.md, metrics.csv, per_class.csv, thresholds.json, curves.png, per_class.png")


@app.command("classify")
def classify(
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset folder in the HPA layout (train.csv + images)."),
    model: Optional[str] = typer.Option(None, "--model", help="Backbone: vgg16, resnet50, resnet101, densenet121, inception_v3, inception_v4, xception, nasnet_mobile, efficientnet_lite0, resnet18; or a related paper's from-scratch network: gapnet-pl, concat-cnn, cnn13, fcn13 (default: the preset's)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder: config.json, fold_K/ checkpoints, metrics.csv, summary.md, plots."),
    preset: str = typer.Option("none", "--preset", help="paper28 (InceptionV4, all 28 classes, Adam 5e-4, 35 epochs), paper5 (VGG16, top 5, Adam 1e-4, 50 epochs), gapnet (GapNet-PL, 299 px rgby, SGD 0.1, batch 80, median:500 balancing), aggarwal (concat-cnn, 512 px rgb, Adam 1e-3, batch 32), liimatainen (fcn13, 256 px rgby, Adam 1e-3, batch 64) or none (the model's recipe, top5, fixed batch size)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="top5, all, topK or a comma list of indices/names (default: top5, or the preset's)."),
    channels: Optional[str] = typer.Option(None, "--channels", help="green, rgb (the paper's), rgby or a comma list (default: the preset's / model recipe's: rgb; gapnet-pl, cnn13, fcn13: rgby)."),
    size: Optional[int] = typer.Option(None, "--size", help="Image side in pixels (default: the preset's / model recipe's: 512; gapnet-pl 299, cnn13/fcn13 256)."),
    folds: int = typer.Option(5, "--folds", help="K of the K-fold cross-validation (DATA/folds.csv is shared by every run)."),
    fold: Optional[int] = typer.Option(None, "--fold", help="Run only this fold (0-based) into RUN/fold_K; the report is written once all folds are done."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default: 35, or 50 for vgg16 / paper5)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size (with the paper schedule: the starting size, doubled at epochs 15 and 30). Default 32."),
    batch_schedule: Optional[str] = typer.Option(None, "--batch-schedule", help="paper (x2 every 15 epochs, up to x4; default with a preset) or fixed (default without)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Initial learning rate, then --lr-schedule (default: the preset's / recipe's: 5e-4, vgg16 1e-4, with lr * exp(-0.01 epoch); gapnet-pl 0.1, concat-cnn/cnn13/fcn13 1e-3 with a plateau rule)."),
    augment: Optional[str] = typer.Option(None, "--augment", help="Default: the preset's / model recipe's (classic; none for gapnet-pl, cnn13, fcn13). none, classic (flips, crop, scale, rotation, shear, sharpening, inversion), gan (add --synthetic images to the training part) or classic+gan."),
    aug_probs: Optional[str] = typer.Option(None, "--aug-probs", help="Change classic augmentation probabilities, e.g. 'invert=0,rotation=0.8' (hflip, vflip, crop, scale, rotation, shear, sharpen, invert)."),
    synthetic: Optional[Path] = typer.Option(None, "--synthetic", help="Folder of synthetic images in the dataset layout (e.g. `protgan synth` output): joins the training part of every fold, never validation."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Start from ImageNet weights (timm's hub or cache; efficientnet_lite0: the offline pip package)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="A local state_dict file (a backbone's, or a protgan checkpoint) loaded into the model."),
    loss: Optional[str] = typer.Option(None, "--loss", help="focal (the paper's; default), bce, or focal+lovasz (focal + per-class Lovasz hinge, bestfitting's)."),
    focal_alpha: Optional[str] = typer.Option(None, "--focal-alpha", help="Focal loss alpha in (0, 1): positives weighted alpha, negatives 1 - alpha (eq. 3). Default none = the paper's alpha = 1 read as no balancing (see README)."),
    focal_gamma: float = typer.Option(2.0, "--focal-gamma", help="Focal loss gamma (the paper: 2)."),
    head: str = typer.Option("paper", "--head", help="paper (the model's recipe head), paper28 (dropout-BN-GAP-128-n), paper5 (GAP-256-n) or linear."),
    select: Optional[str] = typer.Option(None, "--select", help="Which per-fold best checkpoint is evaluated and gets the tuned thresholds: loss, macro_f1 or micro_f1 (default macro_f1; cnn13/fcn13: loss, Liimatainen et al.'s criterion)."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision (bf16, or fp16 + loss scaling); default: on with CUDA."),
    workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes (default: up to 8, one per core)."),
    seed: int = typer.Option(0, "--seed", help="Seed for weights, order and augmentation (folds.csv always uses seed 0)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    collect: Optional[Path] = typer.Option(None, "--collect", help="Only merge the finished folds of this run folder into the report files."),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="Under torchrun (DDP): batch-norm statistics over the global batch (all processes) instead of each process's part."),
    lr_scaling: str = typer.Option("none", "--lr-scaling", help="Under torchrun: none (the recipe's --lr, the default), linear (x world size) or sqrt (x sqrt(world size)); --batch-size is per process."),
    activation: Optional[str] = typer.Option(None, "--activation", help="gapnet-pl only: selu (the original GapNet-PL) or prelu (Al-joudi & Arif 2023's variant)."),
    balance: Optional[str] = typer.Option(None, "--balance", help="Resample the training part of each fold towards N images per class: median:N (oversample classes below N, undersample above; the gapnet preset: median:500), median (N = the median class count) or none (default, except with --preset gapnet). Counts are logged and written to fold_K/balance.json."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="adam or sgd (default: the preset's / model recipe's)."),
    momentum: Optional[float] = typer.Option(None, "--momentum", help="SGD momentum (default 0.9)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="Weight decay (default 0; aggarwal preset 1e-8)."),
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="exp (lr0 * exp(-0.01 epoch), the paper's), plateau (x --plateau-factor after --plateau-patience epochs without a lower validation loss) or constant."),
    plateau_factor: Optional[float] = typer.Option(None, "--plateau-factor", help="Learning-rate factor on a plateau (gapnet 0.5, aggarwal 0.1, liimatainen 1/3)."),
    plateau_patience: Optional[int] = typer.Option(None, "--plateau-patience", help="Epochs without improvement before the plateau cut (gapnet 5, aggarwal 3, liimatainen 8)."),
    threshold_split: float = typer.Option(0.1, "--threshold-split", help="Share of each training fold held out (multilabel-stratified, duplicate groups whole) to tune the thresholds and choose the checkpoint; the validation fold is untouched by any choice. 0: thresholds from the training predictions, checkpoint chosen on validation (before 0.2)."),
    thresholds: str = typer.Option("tuned", "--thresholds", help="Kind the checkpoint keeps for predict and the headline table: tuned (per-class F1 optimum on the held-out part), 0.5, positive-proportion (held-out predicted positive rate = training prevalence, pudae). All are reported."),
    tta: str = typer.Option("none", "--tta", help="Test-time augmentation in the evaluation: none, flips (4 flips) or d4 (8 dihedral transforms); mean of sigmoids."),
    average: str = typer.Option("none", "--average", help="Weight averaging: none, last:K (mean of the last K epochs' weights, SWA-style) or ema[:DECAY] (0.999); batch-norm statistics recomputed on the training part; the averaged model is evaluated."),
) -> None:
    """Fine-tune a multilabel classifier (K-fold) and write metrics, thresholds, checkpoints and plots."""
    from protgan.classify.report import collect_run
    from protgan.classify.train import ClassifyConfig, run_classify

    if collect is not None:
        _print_summary(collect_run(collect), collect)
        return
    if data is None:
        raise ProtganError("--data: required (or --collect RUN)")
    if out is None:
        raise ProtganError("--out: required (the run folder)")
    cfg = ClassifyConfig(
        data=str(data), out=str(out), model=model, preset=preset, classes=classes, channels=channels, size=size,
        folds=folds, fold=fold, epochs=epochs, batch_size=batch_size, batch_schedule=batch_schedule, lr=lr,
        augment=augment, aug_probs=aug_probs, synthetic=str(synthetic) if synthetic else None,
        pretrained=pretrained, weights=str(weights) if weights else None, loss=loss,
        focal_alpha=_alpha(focal_alpha), focal_gamma=focal_gamma, head=head, select=select, amp=amp,
        workers=workers, seed=seed, device=device, activation=activation, balance=balance, optimizer=optimizer,
        momentum=momentum, weight_decay=weight_decay, lr_schedule=lr_schedule, plateau_factor=plateau_factor,
        plateau_patience=plateau_patience, sync_bn=sync_bn, lr_scaling=lr_scaling,
        threshold_split=threshold_split, thresholds=thresholds, tta=tta, average=average,
    )
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True, disable=not distributed.is_main()) as bar:
        tasks: dict[str, int] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                for t in tasks.values():
                    bar.remove_task(t)
                tasks.clear()
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        summary = run_classify(cfg, log=lambda msg: bar.console.print(msg, highlight=False), progress=progress)
    if summary is not None:
        _print_summary(summary, out)
