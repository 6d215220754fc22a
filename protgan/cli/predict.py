"""`protgan predict`: labels (names and probabilities) for images, from a classify checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from protgan.cli.app import app, console


@app.command("predict")
def predict(
    inputs: List[Path] = typer.Argument(..., help="Dataset folders (train.csv + images, or a folder of {Id}_{channel}.png such as Kaggle's test/) and/or image files."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A classify checkpoint, e.g. RUN/fold_0/best_macro_f1.pt (holds its tuned thresholds)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the Kaggle submission CSV (Id,Predicted) here."),
    threshold: str = typer.Option("tuned", "--threshold", help="tuned (the checkpoint's per-class thresholds, chosen on its held-out part), positive-proportion, or one number for every class."),
    tta: str = typer.Option("none", "--tta", help="Test-time augmentation: none, flips (4 flips) or d4 (8 dihedral transforms); mean of sigmoids."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per forward pass."),
    workers: int = typer.Option(0, "--workers", help="DataLoader worker processes."),
    show: int = typer.Option(20, "--show", help="Rows of the result table printed (0: none)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    heatmaps: Optional[Path] = typer.Option(None, "--heatmaps", help="fcn13 checkpoints only: write DIR/{Id}_heatmaps.png per image, the image and one panel per predicted class with the FCN's heat map overlaid."),
) -> None:
    """Predict labels with the checkpoint's tuned thresholds; print them and write Id,Predicted."""
    from protgan.classify.predict import predict as run_predict
    from protgan.classify.predict import write_submission
    from protgan.core.runfolder import check_out_file, check_out_path
    from protgan.data import class_name

    if out is not None:  # before any image is read: a folder there, or read-only, is one line now
        check_out_file(out)
    if heatmaps is not None:
        check_out_path(heatmaps, "--heatmaps")
    preds, info = run_predict(checkpoint, inputs, thresholds=threshold, batch_size=batch_size, device=device,
                              workers=workers, heatmaps=heatmaps, tta=tta)
    console.print(f"{info['model']} on {','.join(info['channels'])} at {info['size']} px; thresholds: "
                  f"{info['threshold_source']}; TTA {info['tta']}", highlight=False)
    if show:
        table = Table(title=f"{len(preds)} images")
        table.add_column("Id")
        table.add_column("predicted labels (probability)")
        table.add_column("most likely", style="dim")
        for p in preds[:show]:
            labels = ", ".join(f"{c} {class_name(c)} ({p.probabilities[c]:.2f})" for c in p.labels) or "-"
            top = max(p.probabilities, key=p.probabilities.get)
            table.add_row(p.id, labels, f"{top} {class_name(top)} ({p.probabilities[top]:.2f})")
        console.print(table)
        if len(preds) > show:
            console.print(f"... {len(preds) - show} more")
    if heatmaps is not None:
        console.print(f"wrote {len(preds)} heat-map figures to {heatmaps}/{{Id}}_heatmaps.png")
    if out is not None:
        write_submission(out, preds)
        console.print(f"wrote {out} ({len(preds)} rows, Id,Predicted)")
