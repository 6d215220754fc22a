"""Two recipes' per-class KID over several training seeds: the verdict of issue 17's target with the between-seed
spread in the yardstick (protgan.evaluation.seeds), not only one run's KID std.

    python bench/kid_seeds.py --reference 0=RUNS_s0/kid.json --reference 1=RUNS_s1a/kid.json,RUNS_s1b/kid.json \\
        --candidate 0=COND_s0/conditional_kid.json --candidate 1=COND_s1/conditional_kid.json [--out verdict.json]

Each SEED=FILES names one training seed's result files (bench/gan_arch_kid.py's kid.json or kid_rescored.json,
bench/gan_conditional_kid.py's conditional_kid.json; several files of one seed are merged by class). A file may end
in :per_class or :conditional to pick that side of a conditional_kid.json that has both; otherwise a row's
kid_x1e3 (or, in a conditional-only file, conditional_kid_x1e3) is read. Rows that record their seed must match
SEED. All files must be in one feature space. Prints one line per class and the target's verdict (no class worse,
the rarest, by image count, better).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protgan.evaluation.seeds import SeedScores, compare_over_seeds, target_met  # noqa: E402

SIDES = {"per_class": "per_class_kid_x1e3", "conditional": "conditional_kid_x1e3"}


def row_score(row: dict, side: str | None) -> tuple[float, float] | None:
    """(kid, kid std) x1e3 of one result row, or None when the row holds no such score (real_other rows)."""
    if row.get("arch") == "real_other":
        return None
    key = SIDES[side] if side else next((k for k in ("kid_x1e3", "conditional_kid_x1e3") if k in row), None)
    if key is None or key not in row:
        return None
    return float(row[key]), float(row[key.removesuffix("x1e3") + "std_x1e3"])


def read_seed(spec: str, option: str) -> tuple[int, dict[int, tuple[float, float]], dict[int, int], set[str]]:
    """SEED=FILE[:SIDE][,FILE...] -> seed, {class: (kid, std)}, {class: image count}, the feature spaces seen."""
    seed_text, sep, files = spec.partition("=")
    if not sep or not seed_text.strip().lstrip("-").isdigit() or not files:
        raise SystemExit(f"{option} {spec!r}: expected SEED=FILE[,FILE...]")
    seed = int(seed_text)
    scores: dict[int, tuple[float, float]] = {}
    counts: dict[int, int] = {}
    spaces: set[str] = set()
    for item in files.split(","):
        path, _, side = item.rpartition(":") if item.rsplit(":", 1)[-1] in SIDES else (item, "", "")
        try:
            rows = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{option} {path}: cannot read a result file ({exc})")
        for row in rows:
            if "seed" in row and int(row["seed"]) != seed:
                raise SystemExit(f"{option} {path}: class {row['class']} was trained with seed {row['seed']}, not {seed}")
            score = row_score(row, side or None)
            if score is None:
                continue
            if row["class"] in scores:
                raise SystemExit(f"{option} {path}: class {row['class']} appears twice in seed {seed}")
            scores[row["class"]] = score
            spaces.add(row.get("features", "?"))
            if "n_only" in row or "n_images" in row:
                counts[row["class"]] = int(row.get("n_only", row.get("n_images")))
    if not scores:
        raise SystemExit(f"{option} {spec!r}: no KID rows")
    return seed, scores, counts, spaces


def collect(specs: list[str], option: str) -> tuple[dict[int, dict[int, tuple[float, float]]], dict[int, int], set[str]]:
    """{class: {seed: (kid, std)}} over every SEED=FILES of one recipe."""
    by_class: dict[int, dict[int, tuple[float, float]]] = {}
    counts: dict[int, int] = {}
    spaces: set[str] = set()
    for spec in specs:
        seed, scores, n, s = read_seed(spec, option)
        for c, score in scores.items():
            if seed in by_class.setdefault(c, {}):
                raise SystemExit(f"{option}: seed {seed} given twice")
            by_class[c][seed] = score
        counts.update(n)
        spaces |= s
    return by_class, counts, spaces


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", action="append", required=True, metavar="SEED=FILES",
                    help="the recipe to beat (e.g. the per-class runs), once per seed")
    ap.add_argument("--candidate", action="append", required=True, metavar="SEED=FILES",
                    help="the new recipe (e.g. the conditional run), once per seed")
    ap.add_argument("--rarest", type=int, default=None, help="the class that must be better (default: fewest images)")
    ap.add_argument("--out", default="", help="write the verdicts as JSON")
    args = ap.parse_args(argv)
    reference, counts, spaces = collect(args.reference, "--reference")
    candidate, counts_c, spaces_c = collect(args.candidate, "--candidate")
    if len(spaces | spaces_c) > 1:
        raise SystemExit(f"the files are in different feature spaces: {', '.join(sorted(spaces | spaces_c))}")
    classes = [c for c in reference if c in candidate]
    if not classes:
        raise SystemExit("no class has scores in both --reference and --candidate")
    counts = {**counts_c, **counts}
    rarest = args.rarest if args.rarest is not None else min(classes, key=lambda c: counts.get(c, math.inf))
    if rarest not in classes:
        raise SystemExit(f"--rarest {rarest}: not a class of both recipes ({', '.join(map(str, classes))})")
    verdicts = {c: compare_over_seeds(SeedScores(reference[c]), SeedScores(candidate[c])) for c in classes}
    print(f"KID x1e3 in {next(iter(spaces))}; reference seeds {sorted({s for c in classes for s in reference[c]})}, "
          f"candidate seeds {sorted({s for c in classes for s in candidate[c]})}")
    print("class  reference (sd over seeds)  candidate (sd over seeds)  difference +- sd  verdict  paired: candidate lower")
    for c, v in verdicts.items():
        mark = " (rarest)" if c == rarest else ""
        print(f"{c:>5}  {v.reference_mean:9.1f} ({v.reference_seed_sd:5.1f})       {v.candidate_mean:9.1f} "
              f"({v.candidate_seed_sd:5.1f})      {v.difference:+7.1f} +- {v.difference_sd:5.1f}  {v.verdict:7s}  "
              f"{v.candidate_wins} of {v.paired_seeds}{mark}")
    met = target_met(verdicts, rarest)
    print(f"target (no class worse, the rarest better): {'met' if met else 'not met'}")
    result = {"features": next(iter(spaces)), "rarest": rarest, "target_met": met,
              "classes": {str(c): {k: None if isinstance(x, float) and math.isnan(x) else x for k, x in asdict(v).items()}
                          for c, v in verdicts.items()}}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
