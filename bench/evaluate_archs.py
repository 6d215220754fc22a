"""The quality table (issue 18) for several generator archs side by side, through the CLI: for each arch,
`protgan synth` from its per-class runs, then `protgan evaluate --metrics fid,kid,pr,copies,cas`, and one
Markdown table with every class and arch.

    python bench/evaluate_archs.py --real DATA --runs RUNS_ROOT [RUNS_ROOT ...] --classes 0,1,2,3 \\
        --subset 0,1,2,3 --channels green --out OUT [--archs dcgan,fastgan] [--per-class 256]

RUNS_ROOT folders hold `{arch}_class_{C}` runs (the layout bench/gan_arch_kid.py writes); for each arch the
runs of --classes are linked into OUT/{arch}/runs/class_C (what `synth --runs` reads). The generators were
trained on every image of their class, so CAS (scored on validation fold 0) is LEAKY for them: the
evaluate output says so; the CAS columns then say how well the images teach, not how well they generalise.
Writes OUT/table.md and prints it.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path


def protgan(*args: str) -> None:
    cmd = [sys.executable, "-m", "protgan", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


def link_runs(roots: list[Path], arch: str, classes: list[int], dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for c in classes:
        found = [r / f"{arch}_class_{c}" for r in roots if (r / f"{arch}_class_{c}" / "config.json").is_file()]
        if not found:
            sys.exit(f"no {arch}_class_{c} run under {', '.join(map(str, roots))}")
        link = dst / f"class_{c:02d}"
        if not link.exists():
            link.symlink_to(found[0].resolve(), target_is_directory=True)


def f(row: dict, key: str, digits: int = 2, scale: float = 1.0) -> str:
    try:
        return f"{float(row[key]) * scale:.{digits}f}"
    except (KeyError, ValueError):
        return "-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", required=True)
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--classes", required=True)
    ap.add_argument("--subset", default="top5", help="train-gan's --classes of the runs (for --select only)")
    ap.add_argument("--channels", default="red,green,blue")
    ap.add_argument("--archs", default="dcgan,fastgan")
    ap.add_argument("--per-class", type=int, default=256)
    ap.add_argument("--cas-epochs", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out, roots = Path(a.out), [Path(r) for r in a.runs]
    classes = [int(c) for c in a.classes.split(",")]
    rows: dict[str, list[dict]] = {}
    for arch in a.archs.split(","):
        runs, syn, ev = out / arch / "runs", out / arch / "synthetic", out / arch / "evaluate"
        link_runs(roots, arch, classes, runs)
        protgan("synth", "--runs", str(runs), "--out", str(syn), "--per-class", str(a.per_class), "--seed", "0",
                "--device", "cpu")
        protgan("evaluate", "--real", a.real, "--fake", str(syn), "--classes", a.subset, "--select", "only",
                "--channels", a.channels, "--metrics", "fid,kid,pr,copies,cas", "--cas-fold", "0",
                "--cas-epochs", str(a.cas_epochs), "--out", str(ev), "--workers", "0", "--device", "cpu")
        with open(ev / "evaluate.csv", newline="") as fh:
            rows[arch] = [r for r in csv.DictReader(fh) if int(r["class_index"]) in classes]
    lines = ["| class | arch | images | FID (floor) | KID x1e3 (floor) | precision / recall (real-vs-real) | "
             "near-copies (real ref.) | CAS F1 synthetic / real |", "|---|---|---|---|---|---|---|---|"]
    for c in classes:
        for arch, rs in rows.items():
            for r in rs:
                if int(r["class_index"]) != c:
                    continue
                lines.append(
                    f"| {c} {r['class_name']} | {arch} | {r['n_train']} | {f(r, 'fid', 0)} ({f(r, 'fid_real_real', 0)}) | "
                    f"{f(r, 'kid', 0, 1e3)} ({f(r, 'kid_real_real', 0, 1e3)}) | {f(r, 'precision')} / {f(r, 'recall')} "
                    f"({f(r, 'precision_real_real')} / {f(r, 'recall_real_real')}) | "
                    f"{f(r, 'near_copies', 0, 100)}% ({f(r, 'near_copies_real', 0, 100)}%) | "
                    f"{f(r, 'cas_f1_synthetic')} / {f(r, 'cas_f1_real')} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
