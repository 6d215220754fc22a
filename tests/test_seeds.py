"""The verdict over training seeds (protgan.evaluation.seeds) and bench/kid_seeds.py, which reads the bench's
result files into it: figures checked against hand-computed ones."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from protgan.evaluation.seeds import SeedScores, compare_over_seeds, target_met

ROOT = Path(__file__).resolve().parents[1]


def load_kid_seeds():
    spec = importlib.util.spec_from_file_location("kid_seeds", ROOT / "bench" / "kid_seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_seed_each_is_the_issues_rule_with_both_stds() -> None:
    v = compare_over_seeds(SeedScores({1: (27.0, 3.0)}), SeedScores({1: (31.0, 4.0)}))
    assert v.difference == pytest.approx(4.0)
    assert v.difference_sd == pytest.approx(5.0)  # sqrt(3^2 + 4^2)
    assert v.verdict == "level" and math.isnan(v.reference_seed_sd)
    assert (v.paired_seeds, v.candidate_wins) == (1, 0)
    assert compare_over_seeds(SeedScores({1: (27.0, 3.0)}), SeedScores({1: (32.5, 4.0)})).verdict == "worse"
    assert compare_over_seeds(SeedScores({1: (27.0, 3.0)}), SeedScores({1: (21.5, 4.0)})).verdict == "better"


def test_the_spread_over_seeds_widens_the_yardstick_beyond_the_kid_std() -> None:
    # each recipe's two seeds are 21 apart (sd over seeds 14.85), far above their KID stds of 2-3
    reference = SeedScores({0: (48.0, 3.0), 1: (27.0, 2.0)})
    candidate = SeedScores({0: (40.0, 2.0), 1: (19.0, 2.0)})
    v = compare_over_seeds(reference, candidate)
    assert v.reference_seed_sd == pytest.approx(21 / math.sqrt(2))
    assert v.candidate_seed_sd == pytest.approx(21 / math.sqrt(2))
    assert v.difference == pytest.approx(-8.0)
    assert v.difference_sd == pytest.approx(math.sqrt(220.5 / 2 + 220.5 / 2))
    assert v.verdict == "level"  # by the KID stds alone (sd of the difference 2.3) it would be "better"
    assert (v.paired_seeds, v.candidate_wins) == (2, 2)
    tighter = compare_over_seeds(reference, SeedScores({0: (19.0, 2.0), 1: (30.0, 4.0)}))
    assert tighter.difference_sd == pytest.approx(math.sqrt(220.5 / 2 + 60.5 / 2))
    assert tighter.verdict == "better"  # -13 against 11.85
    assert (tighter.paired_seeds, tighter.candidate_wins) == (2, 1)


def test_within_run_std_is_the_floor_when_seeds_agree() -> None:
    # two seeds that land on the same KID: the spread over seeds is 0, the KID std (5) still counts
    v = compare_over_seeds(SeedScores({0: (30.0, 5.0), 1: (30.0, 5.0)}), SeedScores({0: (36.0, 5.0), 1: (36.0, 5.0)}))
    assert v.reference_seed_sd == 0.0
    assert v.difference_sd == pytest.approx(5.0)  # sqrt(25/2 + 25/2)
    assert v.verdict == "worse"


def test_target_needs_no_class_worse_and_the_rarest_better() -> None:
    better = compare_over_seeds(SeedScores({0: (60.0, 5.0)}), SeedScores({0: (30.0, 5.0)}))
    level = compare_over_seeds(SeedScores({0: (30.0, 5.0)}), SeedScores({0: (31.0, 5.0)}))
    worse = compare_over_seeds(SeedScores({0: (30.0, 2.0)}), SeedScores({0: (60.0, 2.0)}))
    assert target_met({0: level, 23: better}, rarest=23)
    assert not target_met({0: level, 23: level}, rarest=23)
    assert not target_met({0: worse, 23: better}, rarest=23)


def write(path: Path, rows: list[dict]) -> str:
    path.write_text(json.dumps(rows))
    return str(path)


def test_kid_seeds_reads_per_class_and_conditional_files(tmp_path: Path, capsys) -> None:
    kid_seeds = load_kid_seeds()
    space = "efficientnet_lite1"
    pc0 = write(tmp_path / "pc0.json", [
        {"class": 0, "arch": "projected", "seed": 0, "n_images": 177, "kid_x1e3": 48.0, "kid_std_x1e3": 3.0, "features": space},
        {"class": 23, "arch": "projected", "seed": 0, "n_images": 37, "kid_x1e3": 62.0, "kid_std_x1e3": 8.0, "features": space},
        {"class": 0, "arch": "real_other", "other_class": 23, "kid_x1e3": 80.0, "kid_std_x1e3": 9.0, "features": space}])
    pc1a = write(tmp_path / "pc1a.json", [
        {"class": 0, "arch": "projected", "kid_x1e3": 27.0, "kid_std_x1e3": 2.0, "features": space}])
    pc1b = write(tmp_path / "pc1b.json", [
        {"class": 23, "arch": "projected", "kid_x1e3": 48.0, "kid_std_x1e3": 9.0, "features": space}])
    cond0 = write(tmp_path / "c0.json", [
        {"class": 0, "n_only": 177, "conditional_kid_x1e3": 19.0, "conditional_kid_std_x1e3": 2.0, "features": space},
        {"class": 23, "n_only": 37, "conditional_kid_x1e3": 20.0, "conditional_kid_std_x1e3": 6.0, "features": space}])
    cond1 = write(tmp_path / "c1.json", [  # a file with both sides: :conditional picks one
        {"class": 0, "n_only": 177, "per_class_kid_x1e3": 99.0, "per_class_kid_std_x1e3": 1.0,
         "conditional_kid_x1e3": 30.0, "conditional_kid_std_x1e3": 4.0, "features": space},
        {"class": 23, "n_only": 37, "per_class_kid_x1e3": 99.0, "per_class_kid_std_x1e3": 1.0,
         "conditional_kid_x1e3": 24.0, "conditional_kid_std_x1e3": 6.0, "features": space}])
    out = tmp_path / "verdict.json"
    result = kid_seeds.main(["--reference", f"0={pc0}", "--reference", f"1={pc1a},{pc1b}",
                             "--candidate", f"0={cond0}", "--candidate", f"1={cond1}:conditional", "--out", str(out)])
    assert result["rarest"] == 23 and result["features"] == space
    c0 = result["classes"]["0"]
    assert c0["reference_mean"] == pytest.approx(37.5) and c0["candidate_mean"] == pytest.approx(24.5)
    expected = compare_over_seeds(SeedScores({0: (48.0, 3.0), 1: (27.0, 2.0)}), SeedScores({0: (19.0, 2.0), 1: (30.0, 4.0)}))
    assert c0["difference_sd"] == pytest.approx(expected.difference_sd) and c0["verdict"] == expected.verdict
    c23 = result["classes"]["23"]
    assert c23["candidate_mean"] == pytest.approx(22.0) and c23["verdict"] == "better"
    assert result["target_met"] == (expected.verdict != "worse")
    assert json.loads(out.read_text()) == result
    assert "(rarest)" in capsys.readouterr().out


def test_kid_seeds_refuses_mixed_spaces_and_wrong_seeds(tmp_path: Path) -> None:
    kid_seeds = load_kid_seeds()
    a = write(tmp_path / "a.json", [{"class": 0, "kid_x1e3": 1.0, "kid_std_x1e3": 1.0, "features": "efficientnet_lite1"}])
    b = write(tmp_path / "b.json", [{"class": 0, "kid_x1e3": 1.0, "kid_std_x1e3": 1.0, "features": "ckpt:x.pt"}])
    seeded = write(tmp_path / "s.json", [{"class": 0, "seed": 3, "kid_x1e3": 1.0, "kid_std_x1e3": 1.0, "features": "x"}])
    with pytest.raises(SystemExit, match="different feature spaces"):
        kid_seeds.main(["--reference", f"0={a}", "--candidate", f"0={b}"])
    with pytest.raises(SystemExit, match="trained with seed 3, not 1"):
        kid_seeds.main(["--reference", f"1={seeded}", "--candidate", f"0={a}"])
    with pytest.raises(SystemExit, match="expected SEED=FILE"):
        kid_seeds.main(["--reference", a, "--candidate", f"0={a}"])
    with pytest.raises(SystemExit, match="cannot read"):
        kid_seeds.main(["--reference", f"0={tmp_path / 'missing.json'}", "--candidate", f"0={a}"])
