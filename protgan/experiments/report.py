"""DIR/report.md and DIR/report.html of a demo run: every table and figure of the stages.

The report is built once as a list of blocks (headings, paragraphs, tables, images) and rendered twice:
Markdown with relative image links, and a self-contained HTML page with the PNGs inlined as base64.
It reads only the files the stages wrote (summary.csv, metrics.csv, fid.json, the compare outputs).
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from protgan.core.atomic import atomic_path, write_text
from protgan.data import class_name, open_dataset
from protgan.experiments.config import ALL_ARMS, demo_paths
from protgan.experiments.compare import TABLE_METRICS, collect, leak_mark, verdict
from protgan.experiments.evaluate import table as evaluate_table
from protgan.gan.checkpoint import run_classes


@dataclass
class Block:
    kind: str  # h1, h2, h3, p, table, img
    text: str = ""
    header: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    path: Path | None = None  # img


def _num(v: Any, digits: int = 3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "n/a"
    if math.isinf(f):
        return "inf"
    return f"{f:.{digits}f}"


def _pm(mean: Any, std: Any, digits: int) -> str:
    if mean in (None, ""):
        return "-"
    return f"{_num(mean, digits)} ± {_num(std, digits)}"


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _latest_sample(run: Path) -> Path | None:
    grids = sorted((run / "samples").glob("step_*.png"))
    return grids[-1] if grids else None


@dataclass
class Ctx:
    """What every section reads: the demo folder's paths, the plan, the state, and the train-gan runs'
    configs and metrics (read once: the GAN table, KID during training and the quality section share them)."""

    out: Path
    plan: Any
    state: dict

    def __post_init__(self) -> None:
        self.p = demo_paths(self.out)
        gan = self.p["gan"]
        self.all_runs = sorted(d for d in [*gan.iterdir(), *gan.glob("fold_*/*")] if (d / "config.json").is_file())
        self.run_cfg = {run: json.loads((run / "config.json").read_text()) for run in self.all_runs}
        self.run_metrics = {run: _read_csv(run / "metrics.csv") if (run / "metrics.csv").is_file() else []
                            for run in self.all_runs}
        # figures and per-class tables: one generator per class (fold 0's when per fold); the GAN table: all
        self.runs = [run for run in self.all_runs if self.run_cfg[run].get("fold") in (None, 0)]
        self.fid = json.loads((self.p["fid"] / "fid.json").read_text())
        # --gan conditional: one generator for every class (per fold); demo folders made before it: per class
        self.conditional = self.state.get("gan", "per-class") == "conditional"
        self.classes = list(dict.fromkeys(c for run in self.runs for c in run_classes(self.run_cfg[run])))


def run_title(config: dict) -> str:
    """A run's name in the report: "class C (name)", or the conditional run's classes."""
    if config.get("conditional"):
        return f"conditional generator (classes {', '.join(map(str, run_classes(config)))}: one grid row each)"
    return f"class {config['class_index']} ({config['class_name']})"


def build_blocks(out: Path, plan: Any, state: dict) -> list[Block]:
    """The report: one function per section, in order."""
    ctx = Ctx(Path(out), plan, state)
    blocks: list[Block] = []
    for section in (intro_section, data_section, enhancement_section, gan_section, fid_section, quality_section,
                    classification_section):
        blocks += section(ctx)
    return blocks


def intro_section(ctx: Ctx) -> list[Block]:
    plan, state = ctx.plan, ctx.state
    stages = state.get("stages", {})
    b: list[Block] = [Block("h1", "protgan demo: the paper's pipeline on the embedded default data")]
    total = sum(v["seconds"] for k, v in stages.items() if k != "report")
    arch = getattr(plan, "gan_arch", "dcgan")
    fast = arch == "fastgan"
    gan_name = "FastGAN" if fast else "DCGAN"
    gan_steps = plan.gan_fastgan_steps if fast else plan.gan_steps
    gan_width = plan.gan_fastgan_width if fast else plan.gan_width
    leaky = bool(state.get("allow_leakage"))
    if ctx.conditional:  # one generator for the 5 classes with the 5 per-class runs' steps together
        gan_steps = ctx.run_cfg[ctx.runs[0]]["steps"]
        gans = (f"one conditional {gan_name} for the top-5 classes (`--gan conditional`: `train-gan --conditional "
                f"--balance uniform`, {len(ctx.classes)} x the steps of one per-class generator) "
                + ("trained on every image (**LEAKY**, `--allow-leakage`: it saw every fold's validation images)"
                   if leaky else "per fold, each trained on its fold's training part only, so no validation image "
                                 "reaches the classifier through a generator"))
    else:
        gans = (f"one {gan_name} per top-5 class trained on every image (**LEAKY**, `--allow-leakage`: the generator "
                "of fold K saw fold K's validation images, the paper's likely setup)" if leaky else
                f"one {gan_name} per top-5 class and fold, each trained on its fold's training part only ({plan.folds} "
                f"x the GAN time of one generator per class, so each runs fewer steps; no validation image reaches "
                f"the classifier through a generator)")
    b.append(Block("p", (
        f"Plan `{plan.name}` (seed {state.get('seed', 0)}, GAN mode "
        f"`{'conditional' if ctx.conditional else 'per-class'}`): {plan.n} synthetic HPA-like images at {plan.size} px "
        f"(`protgan demo-data`), CLAHE enhancement, {gans} ({gan_steps} steps, width "
        f"{gan_width}, batch {plan.gan_batch}), {plan.per_class} synthetic images per class, FID/KID, "
        f"precision/recall, near-copies and train-on-synthetic-test-on-real in the "
        f"offline EfficientNet-Lite0 feature space, and {plan.model} trained with classic vs GAN augmentation on "
        f"{plan.folds} folds x seeds {plan.seeds} ({plan.epochs} epochs). Everything is CPU-sized: the paper's "
        f"models and recipes at 512 px need a GPU (see the README's walkthrough). These are demo-scale numbers, "
        f"not a reproduction of the paper's.")))
    b.append(Block("table", header=("stage", "wall-clock seconds"),
                   rows=[(k, _num(v["seconds"], 1)) for k, v in stages.items() if k != "report"]
                   + [("total (before the report)", _num(total, 1))]))
    return b


def data_section(ctx: Ctx) -> list[Block]:
    ds = open_dataset(ctx.p["data"])
    counts = ds.class_counts()
    return [
        Block("h2", "1. Data"),
        Block("p", f"{len(ds.ids)} images in `{ctx.p['data']}` (red, green, blue, yellow at {ctx.plan.size} px); "
                   "labels follow the real HPA label table's statistics."),
        Block("table", header=("class", "name", "images", "% of images"),
              rows=[(str(c), class_name(c), str(int(counts[c])), _num(100 * counts[c] / len(ds.ids), 1))
                    for c in sorted(range(len(counts)), key=lambda c: -counts[c]) if counts[c]]),
    ]


def enhancement_section(ctx: Ctx) -> list[Block]:
    enhanced = ctx.p["enhanced"]
    summary = _read_csv(enhanced / "summary.csv")
    rows = [r for r in summary if r["channel"] == "all"] or summary
    b = [Block("h2", "2. Contrast enhancement (paper section 3.1.1, its Table of MSE / PSNR / SSIM)"),
         Block("p", f"HE, AHE and CLAHE scored against the original on {rows[0]['n']} channel images "
                    f"(a seeded sample); CLAHE, the paper's choice, is applied to every image and feeds the "
                    f"later stages. Mean ± std over images, all channels."),
         Block("table", header=("method", "n", "MSE", "PSNR (dB)", "SSIM", "RMS contrast", "entropy (bits)"),
               rows=[(r["method"], r["n"], _pm(r["mse_mean"], r["mse_std"], 1), _pm(r["psnr_mean"], r["psnr_std"], 2),
                      _pm(r["ssim_mean"], r["ssim_std"], 4), _pm(r["contrast_mean"], r["contrast_std"], 4),
                      _pm(r["entropy_mean"], r["entropy_std"], 3)) for r in rows])]
    if (enhanced / "comparison.png").is_file():
        b.append(Block("img", "original vs HE / AHE / CLAHE, with grey-level histograms",
                       path=enhanced / "comparison.png"))
    return b


def gan_section(ctx: Ctx) -> list[Block]:
    plan = ctx.plan
    gan_rows = []
    for run in ctx.all_runs:
        cfg, metrics = ctx.run_cfg[run], ctx.run_metrics[run]
        last = metrics[-1] if metrics else {}
        fold = "all (leaky)" if cfg.get("fold") is None else f"{cfg['fold']} (training part)"
        gan_rows.append((",".join(map(str, run_classes(cfg))), cfg["class_name"], fold, str(cfg["n_images"]),
                         last.get("step", "-"),
                         _num(last.get("loss_D")), _num(last.get("loss_G")), _num(last.get("D_x"), 2),
                         _num(last.get("D_G_z"), 2), _num(last.get("diversity"), 2)))
    labels_said = ("gives each synthetic image the label set of a real training image carrying its class "
                   "(`--synth-labels follow-real`: the real label combinations)."
                   if ctx.state.get("synth_labels") == "follow-real" else
                   "gives each class's images the class's label alone (`--synth-labels single`).")
    diversity = ("values of the last logged step. diversity = spread of a fixed batch of EMA samples over that of "
                 "real images (about 1 healthy, near 0 on collapse).")
    if ctx.conditional:
        b = [Block("h2", "3. One conditional DCGAN for the top-5 classes (instead of the paper's one per class, "
                         "section 3.1.2)"),
             Block("p", f"`--gan conditional`: the paper's DCGAN at {plan.size} px with the per-class recipe, made "
                        f"conditional (`train-gan --conditional`: G takes the multi-hot label set, D is a projection "
                        f"discriminator), trained on every image with a label of the top-5 classes with its real "
                        f"label set (`--select` does not apply: the table's images are all of them), drawn with "
                        f"`--balance uniform` so each class is seen about equally often, for {len(ctx.classes)} x "
                        f"the steps of one per-class generator (the compute of the {len(ctx.classes)} per-class "
                        f"runs). synth {labels_said} The grids have one row per class; "
                        f"{diversity} For this run the lowest class's ratio (its grid row against its real "
                        f"images): one class can collapse while the others train.")]
    else:
        b = [Block("h2", "3. One DCGAN per class (paper section 3.1.2)"),
             Block("p", f"The paper's DCGAN at {plan.size} px (log2({plan.size}/8) up/down layers), images chosen "
                        f"with `--select {plan.gan_select}`; {diversity}")]
    if len(ctx.runs) < len(ctx.all_runs):
        b.append(Block("p", "Generator of fold K = trained on the training part of fold K of the shared folds.csv; "
                            "its images join fold K's training part only. The figures below show fold 0's."))
    b += [Block("table", header=("class", "name", "fold", "images", "step", "loss D", "loss G", "D(x)", "D(G(z))",
                                "diversity"), rows=gan_rows)]
    for run in ctx.runs:
        cfg = ctx.run_cfg[run]
        title = run_title(cfg)
        b.append(Block("h3", title))
        if (run / "samples" / "real.png").is_file():
            b.append(Block("img", f"{title}: real training images", path=run / "samples" / "real.png"))
        latest = _latest_sample(run)
        if latest is not None:
            b.append(Block("img", f"{title}: EMA generator samples at step {int(latest.stem.split('_')[-1])}", path=latest))
        if (run / "losses.png").is_file():
            b.append(Block("img", f"{title}: losses, D outputs and diversity", path=run / "losses.png"))
    return b + beside_blocks(ctx)


ARCH_NAMES = {"dcgan": "the paper's DCGAN", "fastgan": "FastGAN"}


def beside_blocks(ctx: Ctx) -> list[Block]:
    """The demo's generator beside the other arch for one class at the same CPU seconds (stage gan_beside)."""
    info = ctx.state.get("stages", {}).get("gan_beside") or {}
    if info.get("reason"):  # skipped, and why (--gan conditional)
        return [Block("h3", "dcgan beside fastgan: not run"), Block("p", f"Skipped: {info['reason']}.")]
    if not info.get("rows"):
        return []
    rows = info["rows"]
    c = info["class"]
    main, other = rows[0], rows[1]
    better = min(rows, key=lambda r: r["kid_x1e3"])
    gap = abs(main["kid_x1e3"] - other["kid_x1e3"])
    noise = max(main["kid_std_x1e3"], other["kid_std_x1e3"])
    verdict = (f"{ARCH_NAMES[better['arch']]} is lower by {gap:.0f}" if gap > noise else
               f"the two are within one std ({gap:.0f} apart, std up to {noise:.0f})")
    b = [Block("h3", f"class {c} ({class_name(c)}): {ARCH_NAMES[main['arch']]} beside {ARCH_NAMES[other['arch']]} "
                     f"at the same CPU seconds"),
         Block("p", f"The demo trains {ARCH_NAMES[main['arch']]} (`--arch {main['arch']}`: the one measured best at "
                    f"this budget, README train-gan). Beside it, fold 0's training part of class {c} trained "
                    f"`--arch {other['arch']}` until it had used the same CPU seconds (`--max-minutes` on "
                    f"`--time-clock cpu`). KID x1e3 of the EMA samples against the class's training images "
                    f"(EfficientNet-Lite0): {verdict}."),
         Block("table", header=("arch", "steps", "train CPU s", "KID x1e3"),
               rows=[(r["arch"], str(r["steps"]), _num(r["train_cpu_seconds"], 1),
                      _pm(r["kid_x1e3"], r["kid_std_x1e3"], 0)) for r in rows])]
    png = ctx.p["beside_grid"]
    if png.is_file():
        b.append(Block("img", f"class {c}: real | {main['arch']} | {other['arch']} (same noise, EMA)", path=png))
    return b


def fid_section(ctx: Ctx) -> list[Block]:
    plan, fid = ctx.plan, ctx.fid
    manifest = json.loads((ctx.p["synthetic"] / "manifest.json").read_text())
    per_fold = " (one set per fold, `fold_K/`; FID/KID below: fold 0's)" if manifest.get("layout") == "per-fold" else ""
    b = [Block("h2", "4. Synthetic images and their FID / KID"),
         Block("p", f"{manifest['total']} synthetic images ({plan.per_class} per class){per_fold} in `{ctx.p['synthetic']}`. "
                    f"FID and KID in the {fid['features']} feature space (ImageNet weights shipped in a pip "
                    f"package, offline) at {fid['size']} px; the floor is the same measure between two random "
                    f"halves of the real class (FID ½ compares half the real images with as many synthetic "
                    f"ones: compare it with the floor, FID's bias depends on n)."),
         Block("table", header=("class", "name", "real", "synthetic", "FID", "KID x1e3", "FID ½", "floor FID",
                                "floor KID x1e3"),
               rows=[(str(r["class_index"]), r["class_name"], str(r["n_real"]), str(r["n_fake"]), _num(r["fid"], 2),
                      f"{_num(r['kid'] * 1e3, 2)} ± {_num(r['kid_std'] * 1e3, 2)}", _num(r["fid_half"], 2),
                      _num(r["fid_real_real"], 2),
                      f"{_num(r['kid_real_real'] * 1e3, 2)} ± {_num(r['kid_real_real_std'] * 1e3, 2)}")
                     for r in fid["classes"]])]
    return b + kid_during_training_blocks(ctx)


def kid_during_training_blocks(ctx: Ctx) -> list[Block]:
    plan, fid = ctx.plan, ctx.fid
    kid_rows: dict[str, list[dict]] = {}  # class -> its metrics rows with a KID, as {"step", "kid", "class_name"}
    for run in ctx.runs:
        cfg = ctx.run_cfg[run]
        for c in run_classes(cfg):
            column = f"kid_c{c}" if cfg.get("conditional") else "kid"  # a conditional run's "kid" is their mean
            rows = [{"step": r["step"], "kid": r[column], "class_name": class_name(c)}
                    for r in ctx.run_metrics[run] if r.get(column) not in (None, "")]
            if rows:
                kid_rows[str(c)] = rows
    if not kid_rows:
        return []
    kid_png = _plot_kid_during_training(kid_rows, fid, ctx.p["gan"] / "kid_during_training.png")
    steps = sorted({int(float(r["step"])) for rows in kid_rows.values() for r in rows})
    floors = {str(r["class_index"]): r for r in fid["classes"]}
    table = []
    for c, rows in kid_rows.items():
        by_step = {int(float(r["step"])): r["kid"] for r in rows}
        table.append([c, rows[0]["class_name"]]
                     + [_num(float(by_step[st]) * 1e3, 2) if st in by_step else "-" for st in steps]
                     + [_num(floors[c]["kid_real_real"] * 1e3, 2) if c in floors else "-"])
    who = (f"Every {ctx.run_cfg[ctx.runs[0]]['eval_every']} steps the conditional trainer scored "
           f"{plan.gan_eval_images} EMA samples per class (fixed noise; each the label set of a training image "
           f"carrying the class, fixed across evaluations) against the training images carrying the class (their "
           f"other labels included)" if ctx.conditional else
           f"Every {plan.gan_eval_every} steps each class's trainer scored {plan.gan_eval_images} EMA samples "
           f"(fixed noise) against the class's real images")
    return [Block("h3", "KID during training"),
            Block("p", f"{who} (`train-gan --eval-every`): KID x1e3 in the same feature space; the floor is the "
                       f"real-vs-real KID above. Lower is better; a GAN that learns moves down towards the floor."),
            Block("table", header=["class", "name"] + [f"step {st}" for st in steps] + ["floor"], rows=table),
            Block("img", "KID of EMA samples vs real images during training, per class (dashed: real-vs-real floor)",
                  path=kid_png)]


def quality_section(ctx: Ctx) -> list[Block]:
    """Fidelity and diversity (precision/recall), memorisation (near-copies), usefulness (CAS) per class."""
    path = ctx.p["evaluate"] / "evaluate.json"
    if not path.is_file():
        return []
    ev = json.loads(path.read_text())
    names = [n for n in ev["metrics"] if n in ("pr", "copies", "cas")]
    header, rows = evaluate_table(ev["classes"], names)
    cas = ev.get("cas")
    b = [Block("h2", "5. Is the synthetic set any good? Fidelity, diversity, memorisation, usefulness"),
         Block("p", f"Per class, in the {ev['features']} feature space at {ev['size']} px (`protgan evaluate`): "
                    f"improved precision (share of synthetic images inside the real images' k-NN manifold, k = 3) "
                    f"and recall (share of real images inside the synthetic manifold); ½ = half the real images "
                    f"vs as many synthetic ones, the floor = two real halves (compare ½ with the floor). "
                    f"near-copies = synthetic images closer to a training image of their generator than the 5th "
                    f"percentile of real-to-real nearest-neighbour distances (real ref. = the same share for fresh "
                    f"real images, about 5% by construction). CAS = F1 on the real validation fold of "
                    f"{cas['model'] if cas else 'a classifier'} trained on the synthetic images only, beside the "
                    f"same classifier trained on as many real images per class."),
         Block("table", header=header, rows=rows)]
    if cas:
        b.append(Block("p", f"CAS macro F1 (fold {cas['fold']}, {cas['n_val']} real validation images, "
                            f"{cas['epochs']} epochs): {cas['macro_f1_synthetic']:.3f} trained on synthetic images vs "
                            f"{cas['macro_f1_real']:.3f} trained on as many real ones."
                            + (f" **LEAKY**: the generators saw validation images ({cas['leakage']})."
                               if cas.get("leakage") else "")))
    b.append(Block("p", "**Verdict per class.** " + " ".join(ev.get("verdicts", []))))
    png = ctx.p["evaluate"] / "copies.png"
    if png.is_file():
        b.append(Block("img", "most-copied synthetic images (top) beside their nearest training images (bottom)",
                       path=png))
    return b


def classification_section(ctx: Ctx) -> list[Block]:
    plan = ctx.plan
    result = collect(ctx.p["compare"], log=lambda m: None)
    b = [Block("h2", "6. Classification: classic vs GAN augmentation (the paper's Tables 2 and 3)"
               + (" - LEAKY" if result.leakage else ""))]
    if result.leakage:
        b.append(Block("p", result.leakage))
    arms = sorted({t["arm"] for t in result.table}, key=ALL_ARMS.index)
    b.append(Block("p", f"{plan.model} (ImageNet-pretrained, offline weights), {plan.folds}-fold cross-validation x "
                        f"seeds {plan.seeds}, arms {', '.join(arms)}; all arms share folds, seeds and initial weights. "
                        f"`classic` is the paper's transforms (flips, crop, scale, rotation, shear, sharpen, invert); "
                        f"`gan` adds the synthetic images to the training part of every fold (never to validation) "
                        f"and, as in the paper, no classic transforms; `classic+gan` has both, `none` neither. "
                        f"Mean ± std over the cells; Test = the validation fold; thresholds tuned per class on the "
                        f"held-out part of each training fold."))
    header = ["model", "augmentation"] + [f"{label} {s}" for _, label in TABLE_METRICS for s in ("Train", "Test")]
    b.append(Block("table", header=header, rows=[
        [t["model"], t["arm"] + (f" (+{t['n_train_synthetic']}{leak_mark(t.get('leakage', ''))})" if "gan" in t["arm"] else "")]
        + [f"{_num(t[f'{s}_{m}_mean'])} ± {_num(t[f'{s}_{m}_std'])}" for m, _ in TABLE_METRICS for s in ("train", "test")]
        for t in result.table]))
    labels = dict(TABLE_METRICS)
    pct = int(round(result.config["confidence"] * 100))
    b.append(Block("table", header=("difference", "metric", "n", "mean", f"{pct}% CI (t)", "p (paired t)",
                                    "p (Wilcoxon)", f"{pct}% CI (CV-corrected)", "verdict"),
                   rows=[(f"{d['arm']} - {d['baseline']}{leak_mark(d.get('leakage', ''), ' (', ')')}", labels[d["metric"]], str(d["n"]),
                          f"{d['mean_diff']:+.4f}", f"[{_num(d['ci_low'], 4)}, {_num(d['ci_high'], 4)}]",
                          _num(d["p_t"], 3), _num(d["p_wilcoxon"], 3),
                          f"[{_num(d['ci_low_corrected'], 4)}, {_num(d['ci_high_corrected'], 4)}]", verdict(d))
                         for d in result.differences]))
    b.append(Block("p", "**Did GAN augmentation help here?** " + " ".join(
        _difference_sentence(d, pct) for d in result.differences if d["model"] == plan.model and d["metric"] == "macro_f1")
        + " `gan - classic` is the paper's comparison; it swaps the classic transforms for GAN images, so "
          "`classic+gan - classic` (GAN images added, transforms kept) and `gan - none` (GAN images alone) say what "
          "the GAN images themselves contribute. Arms with synthetic images also take more optimiser steps per "
          "epoch (as in the paper). The paper reports +0.022 macro F1 (its \"2.70%\", relative) for VGG16 at "
          "512 px with 1000 images per class (no interval); a CPU demo with a few hundred GAN steps is not expected to reproduce it."))
    b.append(Block("img", "test macro F1 per cell and arm; paired differences with their intervals",
                   path=ctx.p["compare"] / "comparison.png"))
    b.append(Block("p", f"Per-cell runs (checkpoints, curves.png, per_class.png) are in `{ctx.p['compare'] / 'cells'}`; "
                        f"every number above is in `{ctx.p['compare']}/cells.csv`, `comparison.csv` and `differences.csv`."))
    return b


def _difference_sentence(d: dict, pct: int) -> str:
    return (f"`{d['arm']} - {d['baseline']}`{leak_mark(d.get('leakage', ''), ' (', ')')}: test macro F1 {d['mean_a']:.3f} vs {d['mean_b']:.3f}, difference "
            f"{d['mean_diff']:+.4f}, {pct}% CV-corrected interval [{_num(d['ci_low_corrected'], 4)}, "
            f"{_num(d['ci_high_corrected'], 4)}] over {d['n']} paired cells ({verdict(d)}).")


def _plot_kid_during_training(kid_rows: dict[str, list[dict]], fid: dict, png: Path) -> Path:
    """KID by step per class (metrics.csv rows of train-gan --eval-every), the real-vs-real floors dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = {str(r["class_index"]): r["kid_real_real"] for r in fid["classes"]}
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for k, (c, rows) in enumerate(kid_rows.items()):
        color = f"C{k}"
        ax.plot([float(r["step"]) for r in rows], [float(r["kid"]) * 1e3 for r in rows], "o-", color=color,
                label=f"{c} {rows[0]['class_name']}")
        if c in floors and math.isfinite(floors[c]):
            ax.axhline(floors[c] * 1e3, color=color, ls="--", lw=1)
    ax.set_xlabel("generator step")
    ax.set_ylabel("KID x1e3 (EMA samples vs real)")
    ax.set_title("KID during training (dashed: real-vs-real floor)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return png


# ------------------------------------------------------------------------------------------ render
def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|")


def to_markdown(blocks: Sequence[Block], out: Path) -> str:
    lines: list[str] = []
    for blk in blocks:
        if blk.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(blk.kind[1]) + " " + blk.text, ""]
        elif blk.kind == "p":
            lines += [blk.text, ""]
        elif blk.kind == "table":
            lines.append("| " + " | ".join(map(_md_cell, blk.header)) + " |")
            lines.append("|" + "---|" * len(blk.header))
            lines += ["| " + " | ".join(map(_md_cell, r)) + " |" for r in blk.rows]
            lines.append("")
        elif blk.kind == "img":
            rel = blk.path.relative_to(out) if blk.path.is_relative_to(out) else blk.path
            lines += [f"![{blk.text}]({rel.as_posix()})", f"*{blk.text}*", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """HTML-escape, then the two Markdown marks the report uses: **bold** and `code`."""
    import re

    s = html.escape(text)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}
figure{margin:1em 0}figcaption{font-style:italic;color:#555}code{background:#f4f4f4;padding:0 3px}"""


def to_html(blocks: Sequence[Block]) -> str:
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>protgan demo report</title>",
             f"<style>{_CSS}</style></head><body>"]
    for blk in blocks:
        if blk.kind in ("h1", "h2", "h3"):
            parts.append(f"<{blk.kind}>{_inline(blk.text)}</{blk.kind}>")
        elif blk.kind == "p":
            parts.append(f"<p>{_inline(blk.text)}</p>")
        elif blk.kind == "table":
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in blk.header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in blk.rows]
            parts.append("</table>")
        elif blk.kind == "img":
            data = base64.b64encode(blk.path.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(blk.text)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(blk.text)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: Path, plan: Any, state: dict) -> tuple[Path, Path]:
    """Write DIR/report.md and DIR/report.html; returns their paths."""
    out = Path(out)
    blocks = build_blocks(out, plan, state)
    write_text(out / "report.md", to_markdown(blocks, out))
    write_text(out / "report.html", to_html(blocks))
    return out / "report.md", out / "report.html"
