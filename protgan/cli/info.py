"""`protgan info DATA`: what is in a dataset, and what is wrong with it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from protgan.cli.app import app, console

MAX_PROBLEMS_SHOWN = 20


@app.command()
def info(
    data: Path = typer.Argument(..., help="Dataset folder: train.csv + train/{Id}_{channel}.png (or images beside train.csv)."),
    classes: str = typer.Option("all", "--classes", help="Class subset to count: all, top5 (computed from the table), or a comma list of indices/names."),
    channels: str = typer.Option("rgby", "--channels", help="Channels to check for: green, rgb, rgby or a comma list."),
    deep: bool = typer.Option(False, "--deep", help="Decode every image (slow) instead of the quick checks (size, PNG signature and end chunk)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any problem is found."),
    duplicates: bool = typer.Option(False, "--duplicates", help="Also list groups of near-duplicate images: 64-bit DCT perceptual hash of the protein (green) channel within --hamming bits, confirmed by a thumbnail correlation >= 0.85 over shifts up to 12.5% (README: duplicates). The folds keep each group in one fold."),
    hamming: int = typer.Option(16, "--hamming", help="--duplicates: largest Hamming distance (of 64 bits) between the hashes of a candidate pair."),
) -> None:
    """Counts, per-class table with names, label cardinality, and problems found (listed, not fatal)."""
    from protgan.data.channels import parse_channels
    from protgan.data.classes import CLASS_NAMES, resolve_subset
    from protgan.data.dataset import open_dataset
    from protgan.data.problems import find_problems

    ds = open_dataset(data)
    chans = parse_channels(channels)
    subset = resolve_subset(classes, ds.targets)
    view = ds.restrict(subset) if classes.strip().lower() != "all" else ds

    console.print(f"[bold]{data}[/]: {len(ds)} images in {ds.root / 'train.csv'}; images in {ds.image_dir}")
    found = ds.channels_found()
    console.print(f"channels found: {', '.join(found) if found else 'none'}")
    if view is not ds:
        console.print(f"class subset {classes}: {len(view)} images kept, {view.dropped_unlabelled} left with no label and dropped")

    counts = view.class_counts()
    table = Table(title="Images per class")
    table.add_column("class", justify="right")
    table.add_column("name")
    table.add_column("images", justify="right")
    table.add_column("% of images", justify="right")
    for c in sorted(subset, key=lambda c: (-counts[c], c)):
        table.add_row(str(c), CLASS_NAMES[c], str(int(counts[c])), f"{100.0 * counts[c] / max(len(view), 1):.2f}")
    console.print(table)

    card = Counter(min(len(t), 4) for t in view.targets)
    ctab = Table(title="Labels per image")
    ctab.add_column("labels", justify="right")
    ctab.add_column("images", justify="right")
    ctab.add_column("%", justify="right")
    for k in (1, 2, 3, 4):
        ctab.add_row("4+" if k == 4 else str(k), str(card.get(k, 0)), f"{100.0 * card.get(k, 0) / max(len(view), 1):.2f}")
    console.print(ctab)

    if duplicates:
        _print_duplicates(view, hamming)
    problems = find_problems(view, chans, deep=deep)
    if not problems:
        console.print(f"no problems found ({', '.join(chans)}; {'decoded' if deep else 'quick checks'})")
        return
    kinds = Counter(p.what for p in problems)
    console.print(f"[yellow]{len(problems)} problems[/]: " + ", ".join(f"{n} {k}" for k, n in kinds.most_common()))
    for p in problems[:MAX_PROBLEMS_SHOWN]:
        console.print(f"  {p.path}: {p.detail}", highlight=False, soft_wrap=True)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        console.print(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    if strict:
        raise typer.Exit(1)


def _print_duplicates(view, max_distance: int) -> None:
    from protgan.core.errors import ProtganError
    from protgan.data.duplicates import DEFAULT_NCC, find_duplicates, hash_channel

    if not 0 <= max_distance <= 64:
        raise ProtganError(f"--hamming {max_distance}: expected 0..64 bits")
    channel = hash_channel(view.channels_found())
    found = find_duplicates(view, max_distance=max_distance, channel=channel)
    console.print(f"duplicates ({channel} channel; phash <= {max_distance} of 64 bits and thumbnail correlation >= "
                  f"{DEFAULT_NCC}): {len(found.groups)} groups, {sum(len(g) for g in found.groups)} images, "
                  f"{found.n_duplicates} beyond the first of each group")
    if found.groups:
        dist = {frozenset((a, b)): (d, r) for a, b, d, r in found.pairs}
        for n, g in enumerate(found.groups, 1):
            pairs = [dist[k] for k in (frozenset((a, b)) for i, a in enumerate(g) for b in g[i + 1:]) if k in dist]
            d, r = min(pairs)
            console.print(f"  group {n} ({len(g)} images; closest pair {d} bits, correlation {r:.2f}): {' '.join(g)}",
                          highlight=False, soft_wrap=True)
