"""Test macro F1 at every threshold kind, with and without TTA and weight averaging, mean over folds and
seeds, through the CLI (README: classify, "Thresholds, TTA, averaging").

Each (seed, fold) is trained once, with --average last:K so the last K epochs' weights are saved; the
other evaluation variants (average none/last:K x tta none/d4) re-run the same CLI command on a copy of
that fold folder without its result: the copy resumes at the last epoch, so only the evaluation runs
(CPU training with one seed is deterministic, so this equals training each variant from scratch).

    python bench/classify_eval_table.py DATA OUT --classes 0,1,2,3 --channels green --size 128 --epochs 6
Prints one JSON line per variant and writes OUT/table.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--classes", required=True)
    ap.add_argument("--channels", default="green")
    ap.add_argument("--size", default="128")
    ap.add_argument("--epochs", default="6")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--last", type=int, default=3)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--extra", default="", help="more classify options, space-separated")
    ap.add_argument("--table-only", action="store_true", help="only merge finished runs (e.g. seeds run in parallel)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    avgs = ["none", f"last:{a.last}"]
    ttas = ["none", "d4"]
    seeds = [int(s) for s in a.seeds.split(",")]

    def cli(run: Path, seed: int, fold: int, avg: str, tta: str) -> float:
        cmd = [sys.executable, "-m", "protgan", "classify", "--data", a.data, "--model", a.model, "--classes",
               a.classes, "--channels", a.channels, "--size", a.size, "--folds", str(a.folds), "--fold", str(fold),
               "--epochs", a.epochs, "--seed", str(seed), "--out", str(run), "--workers", "0", "--device", "cpu",
               "--average", avg, "--tta", tta, *a.extra.split()]
        t = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        return time.time() - t

    def cpu() -> float:
        import resource
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return ru.ru_utime + ru.ru_stime

    results: dict[tuple[str, str], list[dict]] = {}
    for seed in seeds:
        base = out / f"s{seed}_base"
        for fold in range(a.folds):
            c0 = cpu()
            wall = 0.0 if a.table_only else cli(base, seed, fold, avgs[1], "none")
            print(json.dumps({"train": f"seed {seed} fold {fold}", "wall_s": round(wall, 1),
                              "cpu_s": round(cpu() - c0, 1)}), flush=True)
            for avg in avgs:
                for tta in ttas:
                    run = base if (avg, tta) == (avgs[1], "none") else out / f"s{seed}_{avg.replace(':', '')}_{tta}"
                    if run != base and not a.table_only and not (run / f"fold_{fold}" / "result.json").exists():
                        run.mkdir(exist_ok=True)
                        cfg = json.loads((base / "config.json").read_text())
                        cfg.update(out=str(run), average=avg, tta=tta)
                        (run / "config.json").write_text(json.dumps(cfg, indent=1))
                        dst = run / f"fold_{fold}"
                        shutil.rmtree(dst, ignore_errors=True)
                        shutil.copytree(base / f"fold_{fold}", dst, ignore=shutil.ignore_patterns(
                            "result.json", "thresholds.json", "val_*", "averaged.pt"))
                        c0 = cpu()
                        wall = cli(run, seed, fold, avg, tta)
                        print(json.dumps({"eval": f"seed {seed} fold {fold} average {avg} tta {tta}",
                                          "wall_s": round(wall, 1), "cpu_s": round(cpu() - c0, 1)}), flush=True)
                    results.setdefault((avg, tta), []).append(
                        json.loads((run / f"fold_{fold}" / "result.json").read_text()))
    kinds = ("tuned", "0.5", "positive-proportion")
    lines = [f"| average | TTA | " + " | ".join(f"test macro F1 ({k})" for k in kinds) + " | held-out macro F1 (tuned) |",
             "|---|---|" + "---|" * (len(kinds) + 1)]
    for (avg, tta), rs in results.items():
        vals = {k: np.array([r["val"][k]["macro_f1"] for r in rs]) for k in kinds}
        held = np.array([r["held"]["tuned"]["macro_f1"] for r in rs]) if "held" in rs[0] else np.array([np.nan])
        line = {"average": avg, "tta": tta, "n": len(rs), **{k: round(float(v.mean()), 4) for k, v in vals.items()},
                **{k + "_std": round(float(v.std()), 4) for k, v in vals.items()}}
        print(json.dumps(line), flush=True)
        lines.append(f"| {avg} | {tta} | " + " | ".join(f"{v.mean():.3f} ± {v.std():.3f}" for v in vals.values())
                     + f" | {np.nanmean(held):.3f} |")
    (out / f"table_seeds{'-'.join(map(str, seeds))}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
