"""`protgan evaluate --real DATA --fake SYN --out DIR`: FID/KID, precision/recall, near-copies and CAS per class."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from protgan.cli.app import app, console


@app.command("evaluate")
def evaluate_command(
    real: Path = typer.Option(..., "--real", help="Real dataset folder (train.csv + train/{Id}_{channel}.png)."),
    fake: Path = typer.Option(..., "--fake", help="Synthetic dataset folder (what `protgan synth` writes)."),
    out: Path = typer.Option(..., "--out", help="Folder for evaluate.csv, evaluate.json, copies.png and cas/."),
    metrics: str = typer.Option("fid,kid,pr,copies,cas", "--metrics", help="Comma list of fid, kid, pr (precision/recall), copies (near-copies of training images), cas (train on synthetic, test on real; trains two classifiers)."),
    classes: Optional[str] = typer.Option(None, "--class", "--classes", help="Class index/name, a comma list or topK; default: every class in the synthetic set."),
    select: str = typer.Option("any", "--select", help="Real images of a class: any or only (its only label within --classes, like train-gan's default)."),
    features: str = typer.Option("auto", "--features", help="auto (inception when its weights are found, else efficientnet_lite0), inception, efficientnet_lite0 or ckpt:PATH."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Inception weights file (pytorch-fid's pt_inception-2015-12-05-6726825d.pth)."),
    size: Optional[int] = typer.Option(None, "--size", help="Side the images are read at; default: the synthetic images' size."),
    channels: Optional[str] = typer.Option(None, "--channels", help="green, rgb, rgby or a comma list; default: the synthetic set's."),
    kid_subsets: int = typer.Option(100, "--kid-subsets", help="KID: number of random subsets."),
    kid_subset_size: int = typer.Option(1000, "--kid-subset-size", help="KID: images per subset (capped by half the smaller set)."),
    pr_k: int = typer.Option(3, "--pr-k", help="Precision/recall: k of the k-NN radii (the paper's 3)."),
    copy_percentile: float = typer.Option(5.0, "--copy-percentile", help="Near-copies: closer to a training image than this percentile of real-to-real nearest-neighbour distances."),
    copies_shown: int = typer.Option(8, "--copies-shown", help="Synthetic images per class in copies.png."),
    cas_model: str = typer.Option("efficientnet_lite0", "--cas-model", help="CAS: the classifier."),
    cas_epochs: int = typer.Option(3, "--cas-epochs", help="CAS: epochs of each classifier."),
    cas_batch_size: int = typer.Option(32, "--cas-batch-size", help="CAS: batch size."),
    cas_folds: int = typer.Option(5, "--cas-folds", help="CAS: the shared folds (DATA/folds.csv)."),
    cas_fold: int = typer.Option(0, "--cas-fold", help="CAS: the validation fold."),
    batch: int = typer.Option(50, "--batch", help="Images per feature-extraction batch."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Image-reading worker processes (default: automatic)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the real halves, KID subsets and CAS."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Is this synthetic set any good? Fidelity and diversity (precision/recall), memorisation (near-copies)
    and usefulness (CAS) per class, each beside its real-vs-real floor or reference, plus FID/KID."""
    from protgan.experiments.evaluate import EvaluateConfig, run_evaluate, tables, verdicts

    cfg = EvaluateConfig(real=str(real), fake=str(fake), out=str(out), metrics=metrics, classes=classes, select=select,
                         features=features, weights=str(weights) if weights else None, size=size, channels=channels,
                         kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, pr_k=pr_k,
                         copy_percentile=copy_percentile, copies_shown=copies_shown, cas_model=cas_model,
                         cas_epochs=cas_epochs, cas_batch_size=cas_batch_size, cas_folds=cas_folds, cas_fold=cas_fold,
                         batch=batch, workers=workers, seed=seed, device=device)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("evaluate", total=None)
        result = run_evaluate(cfg, log=lambda m: bar.console.print(m, highlight=False),
                              progress=lambda label, done, total: bar.update(task, description=label, completed=done,
                                                                            total=total))
    console.print(f"{result.features} features, {','.join(result.channels)} at {result.size} px")
    for title, header, rows in tables(result.rows, result.metrics):
        t = Table(title=title)
        for k, col in enumerate(header):
            t.add_column(col, justify="left" if k == 1 else "right")
        for r in rows:
            t.add_row(*r)
        console.print(t)
    console.print("floor: the measure between two random halves of the real class; ½: half the real images vs as "
                  "many synthetic ones (compare with the floor); near-copies: closer to a training image than the "
                  f"{cfg.copy_percentile:g}th percentile of real-to-real distances (real ref.: fresh real images).")
    if result.cas:
        console.print(f"CAS ({result.cas['model']}, fold {result.cas['fold']}, {result.cas['n_val']} real validation "
                      f"images): macro F1 {result.cas['macro_f1_synthetic']:.3f} trained on synthetic vs "
                      f"{result.cas['macro_f1_real']:.3f} on as many real images")
    for v in verdicts(result.rows):
        console.print(v, highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"wrote {out / 'evaluate.csv'}, {out / 'evaluate.json'}"
                  + (f", {result.files['copies']}" if "copies" in result.files else ""))
