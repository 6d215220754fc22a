"""`run_demo`: the whole pipeline on the embedded default data, on a CPU, in minutes.

    demo-data -> enhance (CLAHE) -> train-gan (one DCGAN per top-5 class and fold) -> synth -> fid -> evaluate
    (precision/recall, near-copies, train-on-synthetic-test-on-real) -> compare

Each stage calls the stage's public Python API and writes into its own folder of DIR:

    DIR/data/  DIR/enhanced/  DIR/gan/fold_K/class_NN/  DIR/synthetic/fold_K/  DIR/fid/  DIR/evaluate/  DIR/compare/
    (--gan conditional: DIR/gan/fold_K/conditional/, the folder train-gan --conditional --folds K writes)
    DIR/demo.json      the plan (sizes, steps, epochs) and, per finished stage, its wall-clock seconds
    DIR/logs/          what the parallel jobs printed
    DIR/report.md, DIR/report.html   every table and figure (protgan.experiments.report)

Per-fold generators (the default): the generator whose images join fold K's training part was trained
on fold K's training part only (train-gan --fold K), so no validation image reaches the classifier in
disguise. That costs folds x the GAN time; the plans split the GAN steps they had over the folds
(default: 3 folds x 100 steps instead of one 300-step generator per class). `allow_leakage` trains one
generator per class on every image instead (DIR/gan/class_NN/, the paper's likely setup) and runs compare
with --allow-leakage: the report then says LEAKY; running both with the same seed
measures how much of the GAN gain was leakage (README, "Leakage").

`gan` "conditional" (`--gan conditional`): one conditional generator for the top-5 classes per fold (or one
on every image) instead of one per class, with the per-class recipe and K x its steps (K classes: the
compute of the K per-class runs), `--balance uniform`. synth, fid, evaluate and compare read its run as
the run of every class of the subset (protgan.gan.synth). The beside stage compares two per-class
generators, so it is skipped in this mode.

Resumable: a stage recorded in demo.json is skipped; an interrupted stage resumes with the stage's own
resume (GAN checkpoints, finished classify cells, images already written).

The per-class GANs and the classification cells are independent: they run in `jobs` processes with one
torch thread each (one class / one cell per process, as a multi-node run would fan them out). On a
small CPU this beats one process with several threads: the tensors of a 32-64 px demo are too small
for intra-op parallelism, and busy OpenMP threads degrade badly when the cores are shared.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from protgan.core.atomic import write_json
from protgan.core.jobs import parallel_map
from protgan.core.runfolder import RunLock, check_out_path
from protgan.core.errors import ProtganError
from protgan.core.device import resolve_device
from protgan.data import dataset_folds, open_dataset, resolve_subset, to_uint8_images, write_png
from protgan.data.demo import generate_demo_dataset
from protgan.enhance import EnhanceConfig, run_enhance
from protgan.evaluation.config import FidConfig
from protgan.evaluation.fid import TrainingEval, run_fid
from protgan.experiments.config import CompareConfig
from protgan.experiments.compare import run_compare, selected_cells, shared_folds
from protgan.experiments.evaluate import EvaluateConfig, run_evaluate
from protgan.experiments.report import write_report
from protgan.data.provenance import fold_dir
from protgan.experiments.config import DEMO_GAN_MODES, DemoConfig, demo_paths  # DemoConfig re-exported
from protgan.gan.conditional import training_eval
from protgan.gan.fanout import CONDITIONAL_DIR
from protgan.gan.config import LABEL_CHOICES, SynthConfig, TrainGanConfig
from protgan.gan.synth import run_synth
from protgan.gan.train import GanTrainer, image_grid

STAGES = ("data", "enhance", "gan", "gan_beside", "synth", "fid", "evaluate", "compare", "report")
STATE_FILE = "demo.json"

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoPlan:
    """How big each stage is. The GAN and classifier settings are the CPU-sized versions of the paper's:
    the same models and recipes at a small size, few steps and epochs."""

    name: str
    n: int  # demo images
    size: int  # image side (GAN, synthetic images and classifier)
    enhance_sample: int  # images scored by HE / AHE / CLAHE (CLAHE is applied to all)
    gan_steps: int
    gan_batch: int
    gan_width: int  # G / D channels at 8 x 8 (the paper: 1024)
    gan_select: str  # which images train a class's GAN (see train-gan --select)
    per_class: int  # synthetic images per class
    model: str
    folds: int
    seeds: str
    epochs: int
    batch_size: int
    # the GAN optimiser settings of the CPU demo: the paper's lr (2e-4 / SGD 0.01) needs thousands of
    # steps; these learn something in hundreds (the train-gan engineer's CPU settings)
    gan_lr_g: float = 1e-3
    gan_lr_d: float = 2e-3
    gan_ema: float = 0.99
    # nearest upsample + conv (train-gan --g-upsample resize): at a few hundred CPU steps the paper's 3x3
    # stride-2 transposed convs still print a checkerboard over the samples (see README, train-gan)
    gan_upsample: str = "resize"
    # which generator (train-gan --arch): the one that measured best at this CPU budget (README, train-gan,
    # "--arch fastgan": dcgan vs fastgan at equal CPU seconds). A fastgan step costs about 3.4 dcgan steps
    # here (width 32 vs 64), so fastgan gets gan_fastgan_steps for the CPU seconds of gan_steps dcgan steps.
    gan_arch: str = "dcgan"
    gan_fastgan_steps: int = 0
    gan_fastgan_width: int = 32
    gan_fastgan_lr: float = 1e-3  # G and D (Adam); the paper's 2e-4 learns too little in ~100 CPU steps
    gan_eval_every: int = 0  # KID/FID of EMA samples against the class during training (train-gan --eval-every)
    gan_eval_images: int = 128
    # the other generator (dcgan <-> fastgan) for one class, fold 0, at the CPU seconds its main generator
    # took: the report shows both side by side with their KID (None: not trained)
    beside_class: int | None = 23
    beside_images: int = 128  # EMA samples per generator for the beside KID
    # all four arms (none, classic, gan, classic+gan): the paper's gan arm has no classic transforms, so
    # gan - classic alone mixes "GAN images" with "no classic augmentation"; the extra arms separate them
    all_arms: bool = True


# per_class: the paper added 1000 images to each top-5 class, about +36% on the ~13,900 real training images
# of a fold (5 folds of the ~17,400 top-5 images); the demo plans keep that ratio (default: 5 x 24 = 120 on
# 320 real training images), so the GAN arms do not simply train on twice the data for twice the steps.
PLANS: dict[str, DemoPlan] = {
    # about 10 minutes on an idle 2-core CPU
    # per-fold generators: 3 folds x 100 steps = the 300 steps per class one all-images generator had
    "default": DemoPlan("default", n=480, size=64, enhance_sample=100, gan_steps=100, gan_batch=16, gan_width=64,
                        gan_select="only", per_class=24, model="efficientnet_lite0", folds=3, seeds="0,1",
                        epochs=3, batch_size=32),  # KID during training (~15 s a class here) is left to the README's runs
    # under 2 minutes
    # 2 folds x 60 steps: twice the generators; batch 4 (was 8) because fold 0's training part of class 21
    # has only 4 single-label images, and it keeps the GAN stage near its old time
    "quick": DemoPlan("quick", n=240, size=32, enhance_sample=40, gan_steps=60, gan_batch=4, gan_width=64,
                      gan_select="only", per_class=10, model="efficientnet_lite0", folds=2, seeds="0",
                      epochs=2, batch_size=32),  # no KID during training: its feature passes would double the GAN stage
    # the test's end-to-end run (--tiny, hidden): too few single-label images per class for `only`
    "tiny": DemoPlan("tiny", n=120, size=32, enhance_sample=12, gan_steps=6, gan_batch=4, gan_width=32,
                     gan_select="any", per_class=12, model="efficientnet_lite0", folds=2, seeds="0",
                     epochs=1, batch_size=16, gan_eval_every=3, gan_eval_images=16, beside_images=16),
}


@dataclass
class DemoResult:
    out: Path
    plan: DemoPlan
    seconds: dict[str, float] = field(default_factory=dict)  # per stage (this run and earlier ones)
    report_md: Path | None = None
    report_html: Path | None = None


def gan_key(c: int | None, fold: int | None) -> str:
    """The key of a generator in demo.json's gan stage: "class C[ fold K]", "conditional[ fold K]" (c None)."""
    return ("conditional" if c is None else f"class {c}") + ("" if fold is None else f" fold {fold}")


# ------------------------------------------------------------------------------------ parallel jobs
def _file_log(path: Path) -> Log:
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(message + "\n")

    return log


def _train_gan_job(args: tuple[dict, int, str]) -> dict:
    cfg_dict, eval_images, log_path = args
    log = _file_log(Path(log_path))
    t0 = time.perf_counter()
    cfg = TrainGanConfig(**cfg_dict)
    eval_fn = training_eval(cfg, eval_images)  # as train-gan's (a conditional run: kid_cC per class)
    trainer = GanTrainer(cfg, eval_fn=eval_fn, on_log=lambda row: log(
        f"step {int(row['step'])}: loss_D {row['loss_D']:.3f} loss_G {row['loss_G']:.3f} D(x) {row['D_x']:.2f} "
        f"D(G(z)) {row['D_G_z']:.2f} diversity {row['diversity']:.2f}"), warn=lambda m: log(f"warning: {m}"))
    result = trainer.fit()
    if result.status == "interrupted":
        raise KeyboardInterrupt
    key = gan_key(cfg.class_index, cfg.fold)
    return {"key": key, "class_index": cfg.class_index, "fold": cfg.fold, "class_name": cfg.class_name, "status": result.status,
            "step": result.step, "n_images": result.n_images, "warnings": result.warnings,
            "seconds": time.perf_counter() - t0, "train_cpu_seconds": trainer.train_seconds}


def _beside_job(args: tuple[dict, dict, int, int, str, str]) -> list[dict]:
    """Train the beside run (its --max-minutes budget), then KID of both runs' EMA samples in one feature
    space, on the same real images (same class, fold and --select), the same noise and the same subsets;
    the grid real | main | beside into grid_path."""
    main_cfg, beside_cfg, n_fake, seed, log_path, grid_path = args
    log = _file_log(Path(log_path))
    trainer = GanTrainer(TrainGanConfig(**beside_cfg), warn=lambda m: log(f"warning: {m}"))
    result = trainer.fit()
    if result.status == "interrupted":
        raise KeyboardInterrupt
    main = GanTrainer(TrainGanConfig(**main_cfg))
    main.prepare_run()  # loads the finished run's last checkpoint
    evaluator = TrainingEval("efficientnet_lite0", n_fake=n_fake, seed=seed)
    grid_z = torch.randn(6, main.cfg.z_dim, generator=torch.Generator().manual_seed(seed + 7))
    rows, grids = [], [main.real_reference[:6].numpy()]
    for t in (main, trainer):
        score = evaluator(t, t.step)
        rows.append({"arch": t.cfg.arch, "steps": t.step, "train_cpu_seconds": round(t.train_seconds, 1),
                     "kid_x1e3": 1e3 * score["kid"], "kid_std_x1e3": 1e3 * score["kid_std"], "run": str(t.run)})
        grids.append(to_uint8_images(t.generate(z=grid_z)).cpu().numpy())
    # one row each: real | the demo's generator | the other one
    write_png(Path(grid_path), np.concatenate([image_grid(g, main.cfg.channels, cols=6) for g in grids], axis=0))
    return rows


def _compare_job(args: tuple[dict, list[str], str]) -> int:
    cfg_dict, cells, log_path = args
    cfg = CompareConfig(**{**cfg_dict, "cells": cells})
    run_compare(cfg, log=_file_log(Path(log_path)))
    return len(cells)


# ------------------------------------------------------------------------------------------ stages
class Demo:
    """Runs the stages in order, skipping those recorded as done in DIR/demo.json."""

    def __init__(self, cfg: DemoConfig, log: Log = print, progress: Progress | None = None) -> None:
        if cfg.plan not in PLANS:
            raise ProtganError(f"plan {cfg.plan!r}: expected one of {', '.join(PLANS)}")
        if cfg.jobs < 0:
            raise ProtganError(f"--jobs {cfg.jobs}: must be >= 0 (0 = one per core)")
        if cfg.gan not in DEMO_GAN_MODES:
            raise ProtganError(f"--gan {cfg.gan!r}: expected one of {', '.join(DEMO_GAN_MODES)}")
        if cfg.synth_labels not in LABEL_CHOICES:
            raise ProtganError(f"--synth-labels {cfg.synth_labels!r}: expected one of {', '.join(LABEL_CHOICES)}")
        if cfg.synth_labels != "single" and cfg.gan != "conditional":
            raise ProtganError(f"--synth-labels {cfg.synth_labels}: needs --gan conditional (a per-class generator "
                               f"writes its class alone)")

        resolve_device(cfg.device)  # a bad --device fails before any work
        self.cfg = cfg
        self.plan = PLANS[cfg.plan]
        self.out = Path(cfg.out)
        self.p = demo_paths(self.out)
        self.log = log
        self.progress = progress or (lambda name, done, total: None)
        self.jobs = cfg.resolved_jobs()
        check_out_path(self.out)
        self.state = self._load_state()

    def _load_state(self) -> dict:
        path = self.out / STATE_FILE
        ident = {"plan": asdict(self.plan), "seed": self.cfg.seed, "allow_leakage": self.cfg.allow_leakage,
                 "gan": self.cfg.gan, "synth_labels": self.cfg.synth_labels}
        if path.is_file():
            state = json.loads(path.read_text())
            state.setdefault("gan", "per-class")  # a demo made before --gan existed: per-class generators
            state.setdefault("synth_labels", "single")  # ... or before --synth-labels: each class alone
            if {k: state.get(k) for k in ident} != ident:
                old = state.get("plan", {}).get("name")
                raise ProtganError(f"{path}: this folder holds a demo made with other options (plan {old}, seed "
                                   f"{state.get('seed')}, --gan {state['gan']}, --synth-labels {state['synth_labels']}"
                                   f"{', --allow-leakage' if state.get('allow_leakage') else ''}); use another "
                                   f"--out or delete {self.out}")
            return state
        if self.out.exists() and any(self.out.iterdir()):
            raise ProtganError(f"--out {self.out}: folder is not empty and holds no demo ({STATE_FILE} missing)")
        return {**ident, "stages": {}}

    def _save_state(self) -> None:
        self.state["config"] = asdict(self.cfg)
        write_json(self.out / STATE_FILE, self.state)

    def run(self) -> DemoResult:
        """The stages not done yet, with OUT locked (one demo per folder at a time)."""
        with RunLock(self.out, what="demo", warn=self.log):
            return self._run()

    def _run(self) -> DemoResult:
        self.out.mkdir(parents=True, exist_ok=True)
        self._save_state()
        for i, name in enumerate(STAGES, 1):
            done = self.state["stages"].get(name)
            if done and name != "report":
                self.log(f"[{i}/{len(STAGES)}] {name}: done before ({done['seconds']:.0f} s)")
                continue
            self.log(f"[{i}/{len(STAGES)}] {name} ...")
            t0 = time.perf_counter()
            info = getattr(self, f"stage_{name}")() or {}
            seconds = time.perf_counter() - t0
            self.state["stages"][name] = {"seconds": round(seconds, 2), **info}
            self._save_state()
            self.log(f"[{i}/{len(STAGES)}] {name}: {seconds:.0f} s")
        seconds = {k: v["seconds"] for k, v in self.state["stages"].items()}
        return DemoResult(self.out, self.plan, seconds, self.out / "report.md", self.out / "report.html")

    # -- 1. the embedded default data
    def stage_data(self) -> dict:
        plan = self.plan
        generate_demo_dataset(self.p["data"], n=plan.n, size=plan.size, seed=self.cfg.seed, classes="top5",
                              workers=self.jobs, progress=lambda d, t: self.progress("demo-data", d, t))
        return {"n": plan.n, "size": plan.size}

    # -- 2. contrast enhancement: HE / AHE / CLAHE scored, CLAHE applied (the paper's choice)
    def stage_enhance(self) -> dict:
        cfg = EnhanceConfig(data=str(self.p["data"]), out=str(self.p["enhanced"]), apply="clahe", channels="rgby",
                            sample=self.plan.enhance_sample, workers=self.jobs, seed=self.cfg.seed, comparison=3)
        result = run_enhance(cfg, progress=lambda phase, d, t: self.progress(f"enhance: {phase}", d, t))
        return {"chosen": result.chosen, "scored": result.scored, "written": result.written}

    def classes(self) -> list[int]:
        return resolve_subset("top5", open_dataset(self.p["enhanced"]).targets)

    # -- 3. one DCGAN per class and fold (or per class: allow_leakage), the jobs in parallel
    def gan_folds(self) -> list[int | None]:
        """The folds the generators are trained for: every fold, or [None] (all images: leaky)."""
        return [None] if self.cfg.allow_leakage else list(range(self.plan.folds))

    @property
    def conditional(self) -> bool:
        return self.cfg.gan == "conditional"

    def gan_run(self, c: int | None, fold: int | None) -> Path:
        """The run folder of class c's generator, or (c None) of the conditional one: the folders train-gan's
        fan-out writes (RUNS/fold_K/class_C, RUNS/fold_K/conditional), which synth reads."""
        root = self.p["gan"] if fold is None else fold_dir(self.p["gan"], fold)
        return root / (CONDITIONAL_DIR if c is None else f"class_{c:02d}")

    def gan_config(self, c: int | None, fold: int | None = None, arch: str | None = None) -> dict:
        """The TrainGanConfig (as a dict) of class c's generator, or (c None) of the conditional generator
        for the top-5 classes: the same recipe with K x the steps (and the evaluations K x as far apart, so
        as many), K = the number of classes, the compute of the K per-class runs together."""
        plan = self.plan
        arch = arch or plan.gan_arch
        fast = arch == "fastgan"
        share = 1 if c is not None else len(self.classes())
        steps = share * (plan.gan_fastgan_steps if fast else plan.gan_steps)
        width = plan.gan_fastgan_width if fast else plan.gan_width
        lr_g, lr_d = (plan.gan_fastgan_lr, plan.gan_fastgan_lr) if fast else (plan.gan_lr_g, plan.gan_lr_d)
        quarter = max(1, steps // 4)
        cfg = TrainGanConfig(
            data=str(self.p["enhanced"]), class_index=c, out=str(self.gan_run(c, fold)), size=plan.size,
            fold=fold, folds=None if fold is None else plan.folds, arch=arch,
            channels=["red", "green", "blue"], select=plan.gan_select, classes="top5", steps=steps,
            conditional=c is None, balance="uniform",  # (conditional) uniform: the rare classes as often as the rest
            batch_size=plan.gan_batch, lr_g=lr_g, lr_d=lr_d, g_width=width,
            d_width=width, g_upsample=plan.gan_upsample, ema_decay=plan.gan_ema, seed=self.cfg.seed,
            device=self.cfg.device, workers=0, eval_every=share * plan.gan_eval_every, ckpt_every=quarter,
            sample_every=quarter, log_every=max(1, min(25, quarter)),
            time_clock="cpu",  # train_seconds in CPU seconds: the beside generator gets the same compute
        )
        return asdict(cfg)

    def stage_gan(self) -> dict:
        classes, folds = self.classes(), self.gan_folds()
        logs = self.p["logs"]
        if folds != [None]:  # before the jobs: they must not race to write folds.csv (compare reads the same file)
            ds = open_dataset(self.p["enhanced"])
            dataset_folds(self.p["enhanced"], ds.ids, ds.targets, self.plan.folds, self.p["compare"])
        # per class: one generator per class (and fold); conditional: one per fold, for every class (None)
        generators = [None] if self.conditional else classes
        args = [(self.gan_config(c, f), self.plan.gan_eval_images,
                 str(logs / ("gan" + ("" if f is None else f"_fold{f}")
                             + ("_conditional" if c is None else f"_class_{c:02d}") + ".log")))
                for f in folds for c in generators]
        steps = args[0][0]["steps"]
        what = "every image (leaky)" if folds == [None] else f"the training part of each of {len(folds)} folds"
        who = (f"one conditional generator for {len(classes)} classes ({', '.join(map(str, classes))}, --balance "
               f"uniform)" if self.conditional else f"{len(classes)} classes ({', '.join(map(str, classes))})")
        self.log(f"  {who} x {what}: {len(args)} generators, {self.plan.gan_arch}, {steps} steps each at "
                 f"{self.plan.size} px, {min(self.jobs, len(args))} parallel jobs; logs in {logs}")
        runs = {}
        label = "train-gan (fold)" if self.conditional else "train-gan (class x fold)"
        self.progress(label, 0, len(args))
        for k, r in enumerate(parallel_map(_train_gan_job, args, self.jobs), 1):
            runs[r["key"]] = r
            self.progress(label, k, len(args))
            name = "" if r["class_index"] is None else f" ({r['class_name']})"
            self.log(f"  {r['key']}{name}: {r['n_images']} images, step {r['step']} "
                     f"({r['status']}, {r['seconds']:.0f} s)" + "".join(f"; warning: {w}" for w in r["warnings"]))
        return {"runs": runs, "folds": None if folds == [None] else len(folds)}

    # -- 3b. the other generator for one class at the same CPU seconds, both scored by KID
    def stage_gan_beside(self) -> dict:
        """The demo's generator beside the other arch (dcgan <-> fastgan) for plan.beside_class, fold 0's
        training part: the other one trains until it has used the CPU seconds the demo's took (train-gan
        --max-minutes on --time-clock cpu), then both are scored by KID x1e3 of beside_images EMA samples
        against their (shared) training images. OUT/gan-beside/ (not under gan/: synth must not use it)."""
        plan, c = self.plan, self.plan.beside_class
        if c is None or c not in self.classes():
            return {"skipped": True}
        other = "dcgan" if plan.gan_arch == "fastgan" else "fastgan"
        if self.conditional:  # the comparison is of two per-class generators at one class's CPU seconds
            reason = (f"--gan conditional: the beside stage compares two per-class generators ({plan.gan_arch} and "
                      f"{other}) for class {c}; this demo trained none")
            self.log(f"  skipped: {reason}")
            return {"skipped": True, "reason": reason}
        fold = self.gan_folds()[0]
        main = self.state["stages"]["gan"]["runs"][gan_key(c, fold)]
        main_cfg = self.gan_config(c, fold)
        # the same checkpoint / sample / log cadence as the main run (their cost is inside both budgets)
        cadence = {k: main_cfg[k] for k in ("ckpt_every", "sample_every", "log_every")}
        cfg = {**self.gan_config(c, fold, arch=other), **cadence, "out": str(self.p["gan_beside"] / f"class_{c:02d}"),
               "steps": 1_000_000, "max_minutes": main["train_cpu_seconds"] / 60}
        self.log(f"  class {c}: {other} beside {plan.gan_arch}, at the CPU seconds of {plan.gan_arch}'s run")
        # in this process, one torch thread (as the main run had); unpacking runs the generator to its end
        (rows,) = parallel_map(_beside_job, [(main_cfg, cfg, plan.beside_images, self.cfg.seed,
                                             str(self.p["logs"] / "gan_beside.log"),
                                             str(self.p["beside_grid"]))], 1)
        write_json(self.p["gan_beside"] / "beside.json", rows)
        for r in rows:
            self.log(f"  {r['arch']}: {r['steps']} steps, {r['train_cpu_seconds']:.1f} CPU s, KID x1e3 "
                     f"{r['kid_x1e3']:.0f} ± {r['kid_std_x1e3']:.0f}")
        return {"class": c, "rows": rows}

    # -- 4. synthetic images
    def stage_synth(self) -> dict:
        cfg = SynthConfig(runs=str(self.p["gan"]), out=str(self.p["synthetic"]), per_class=self.plan.per_class,
                          labels=self.cfg.synth_labels, seed=self.cfg.seed, batch=64, device=self.cfg.device)
        manifest = run_synth(cfg, progress=lambda label, d, t: self.progress("synth", d, t))
        return {"total": manifest["total"]}

    # -- 5. FID / KID per class, offline features, with the real-vs-real floor
    def fid_fake(self) -> Path:
        """The synthetic set FID/KID is measured on: fold 0's with per-fold generators (one set per fold)."""
        return self.p["synthetic"] if self.cfg.allow_leakage else fold_dir(self.p["synthetic"], 0)

    def stage_fid(self) -> dict:
        cfg = FidConfig(real=str(self.p["enhanced"]), fake=str(self.fid_fake()), features="efficientnet_lite0",
                        select=self.plan.gan_select, seed=self.cfg.seed, device=self.cfg.device, workers=0,
                        out=str(self.p["fid"]))
        result = run_fid(cfg, progress=lambda label, d, t: self.progress("fid: features", d, t))
        return {"classes": len(result.rows)}

    # -- 6. is the synthetic set any good: precision/recall, near-copies, train on synthetic / test on real
    def stage_evaluate(self) -> dict:
        plan = self.plan
        # fold 0's synthetic set (per-fold generators): its generators never saw fold 0's validation images,
        # which CAS is scored on
        cfg = EvaluateConfig(real=str(self.p["enhanced"]), fake=str(self.fid_fake()), out=str(self.p["evaluate"]),
                             metrics="pr,copies,cas", select=plan.gan_select, features="efficientnet_lite0",
                             cas_model=plan.model, cas_epochs=plan.epochs, cas_batch_size=plan.batch_size,
                             cas_folds=plan.folds, cas_fold=0, seed=self.cfg.seed, workers=0, device=self.cfg.device)
        result = run_evaluate(cfg, log=_file_log(self.p["logs"] / "evaluate.log"),
                              progress=lambda label, d, t: self.progress(f"evaluate: {label}", d, t))
        return {"classes": len(result.rows), "cas": result.cas}

    # -- 7. classification: classic vs GAN augmentation, cells in parallel
    def compare_config(self):
        plan = self.plan
        return CompareConfig(data=str(self.p["enhanced"]), out=str(self.p["compare"]), models=plan.model,
                             classes="top5", synthetic=str(self.p["synthetic"]), folds=plan.folds, size=plan.size,
                             epochs=plan.epochs, seeds=plan.seeds, batch_size=plan.batch_size, pretrained=True,
                             all_arms=plan.all_arms, allow_leakage=self.cfg.allow_leakage,
                             workers=0, device=self.cfg.device,
                             keep_checkpoints="none")  # the report reads result.json only: 14 MB a cell saved

    def stage_compare(self) -> dict:
        cfg = self.compare_config()
        shared_folds(cfg, log=lambda m: None)  # before the jobs: they must not race to write folds.csv
        todo = [c.key for c in selected_cells(cfg) if not c.done(Path(cfg.out))]
        jobs = min(self.jobs, max(1, len(todo)))
        self.log(f"  {self.plan.model} at {self.plan.size} px, {self.plan.folds} folds x seeds {self.plan.seeds}: "
                 f"{len(todo)} cells to train in {jobs} parallel jobs; logs in {self.p['logs']}")
        if todo and jobs > 1:
            # longest first (the gan arms train on more images), dealt round-robin
            todo.sort(key=lambda k: "gan" not in k.split(":")[1])
            chunks = [todo[j::jobs] for j in range(jobs)]
            base = {k: v for k, v in asdict(cfg).items() if k != "cells"}
            args = [(base, chunk, str(self.p["logs"] / f"compare_job{j}.log")) for j, chunk in enumerate(chunks)]
            done = 0
            self.progress("compare (cells)", 0, len(todo))
            for n in parallel_map(_compare_job, args, jobs):
                done += n
                self.progress("compare (cells)", done, len(todo))
        result = run_compare(cfg, log=_file_log(self.p["logs"] / "compare.log"), progress=self.progress)
        if result is None:
            raise ProtganError(f"{cfg.out}: cells are missing after the compare stage (see {self.p['logs']})")
        d = result.difference(self.plan.model, "gan", "classic", "macro_f1")
        info = {"gan_minus_classic_macro_f1": d["mean_diff"], "ci": [d["ci_low"], d["ci_high"]],
                "ci_corrected": [d["ci_low_corrected"], d["ci_high_corrected"]], "p_t": d["p_t"],
                "leakage": result.leakage}
        none = result.difference(self.plan.model, "gan", "none", "macro_f1")
        if none is not None:
            info.update(gan_minus_none_macro_f1=none["mean_diff"],
                        ci_corrected_gan_none=[none["ci_low_corrected"], none["ci_high_corrected"]])
        return info

    # -- 8. the report
    def stage_report(self) -> dict:
        md, html = write_report(self.out, self.plan, self.state)
        return {"report": str(md), "html": str(html)}


def run_demo(cfg: DemoConfig, log: Log = print, progress: Progress | None = None) -> DemoResult:
    """Run (or resume) the whole demo into cfg.out; returns the per-stage timings and the report paths."""
    return Demo(cfg, log, progress).run()
