"""protgan compare: resumable cells, --fold/--cell subsets, --collect, the paired statistics, and the
guarantee that synthetic images never enter validation."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from protgan.experiments.compare import (
    CompareConfig, Cell, all_cells, collect, paired_stats, parse_cell, run_compare,
)
from protgan.data import write_label_table
from protgan.core.errors import ProtganError
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset, record_generators

CLASSES = (0, 25, 21, 2, 23)
RGB = ("red", "green", "blue")


def _targets(n: int, seed: int = 0) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = 1 + int(rng.random() < 0.3)
        out.append(tuple(sorted(rng.choice(CLASSES, k, replace=False).tolist())))
    return out


def _synthetic(root: Path, per_class: int = 2) -> Path:
    """A synthetic set in the dataset layout with `syn-` Ids (as protgan synth names them)."""
    targets = [(c,) for c in CLASSES for _ in range(per_class)]
    make_dataset(root, targets, size=32, channels=RGB, seed=7)
    ids = [f"img{i:04d}" for i in range(len(targets))]
    for f in (root / "train").iterdir():
        f.rename(f.with_name("syn-" + f.name))
    write_label_table(root / "train.csv", ["syn-" + i for i in ids], targets)
    return record_generators(root, {c: [] for c in CLASSES})  # generators that saw no real image: clean


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("compare")
    data = make_dataset(root / "data", _targets(24), size=32, channels=RGB)
    syn = _synthetic(root / "syn")
    return {"root": root, "data": data, "syn": syn}


def _cfg(small: dict, out: Path, **kw) -> CompareConfig:
    base = dict(data=str(small["data"]), out=str(out), models="efficientnet_lite0", synthetic=str(small["syn"]), folds=2,
                size=32, epochs=1, seeds="0", batch_size=8, pretrained=False, workers=0, device="cpu")
    base.update(kw)
    return CompareConfig(**base)


def test_paired_stats_match_scipy() -> None:
    a = np.array([0.81, 0.79, 0.84, 0.80, 0.83, 0.78])
    b = np.array([0.80, 0.80, 0.81, 0.77, 0.82, 0.78])
    st = paired_stats(a, b, 0.95, test_train_ratio=0.25)
    ref = stats.ttest_rel(a, b)
    d = a - b
    assert st.n == 6
    assert st.mean_diff == pytest.approx(d.mean())
    assert st.std_diff == pytest.approx(d.std(ddof=1))
    assert st.t == pytest.approx(ref.statistic)
    assert st.p_t == pytest.approx(ref.pvalue)
    half = stats.t.ppf(0.975, 5) * d.std(ddof=1) / math.sqrt(6)
    assert (st.ci_low, st.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert st.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue)
    # Nadeau-Bengio: variance s^2 (1/n + n_test/n_train)
    se_c = d.std(ddof=1) * math.sqrt(1 / 6 + 0.25)
    assert st.ci_high_corrected - st.ci_low_corrected == pytest.approx(2 * stats.t.ppf(0.975, 5) * se_c)
    assert st.p_corrected == pytest.approx(2 * stats.t.sf(abs(d.mean()) / se_c, 5))
    assert st.p_corrected > st.p_t  # the correction widens


def test_paired_stats_degenerate_cases() -> None:
    same = paired_stats([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.mean_diff == 0 and math.isnan(same.p_t) and math.isnan(same.p_wilcoxon)
    assert same.ci_low == same.ci_high == 0
    one = paired_stats([0.5], [0.4])
    assert one.n == 1 and one.mean_diff == pytest.approx(0.1) and math.isnan(one.ci_low)


def test_all_arms_differences_separate_gan_images_from_classic_transforms(small, tmp_path) -> None:
    from protgan.experiments.compare import _differences

    cfg = _cfg(small, tmp_path / "c", seeds="0,1", all_arms=True)
    # test macro F1 per arm, the same offset in every (fold, seed), plus a cell-level jitter shared by the arms
    level = {"none": 0.50, "classic": 0.60, "gan": 0.55, "classic+gan": 0.65}
    rows = [{"model": "efficientnet_lite0", "arm": a, "fold": f, "seed": s, "n_val": 10, "n_train_real": 40,
             **{f"test_{m}": level[a] + 0.01 * (f + 2 * s) for m in ("macro_f1", "micro_f1", "label_accuracy")}}
            for a in level for f in range(2) for s in range(2)]
    diffs = {(d["arm"], d["baseline"]): d for d in _differences(cfg, rows) if d["metric"] == "macro_f1"}
    assert list(diffs) == [("gan", "classic"), ("classic+gan", "classic"), ("gan", "none"), ("classic", "none")]
    for (a, b), d in diffs.items():
        assert d["n"] == 4 and d["mean_diff"] == pytest.approx(level[a] - level[b])
    two = _cfg(small, tmp_path / "c2", seeds="0,1")  # the paper's two arms: only gan - classic
    assert [(d["arm"], d["baseline"]) for d in _differences(two, [r for r in rows if r["arm"] in ("gan", "classic")])
            if d["metric"] == "macro_f1"] == [("gan", "classic")]


def test_cells_parse_and_enumerate(small, tmp_path) -> None:
    cfg = _cfg(small, tmp_path / "c", models="efficientnet_lite0", seeds="1,2", all_arms=True)
    cells = all_cells(cfg)
    assert len(cells) == 1 * 4 * 2 * 2
    assert parse_cell("efficientnet_lite0:classic+gan:1:2", cfg) == Cell("efficientnet_lite0", "classic+gan", 1, 2)
    for bad, needle in (("efficientnet_lite0:gan:0", "MODEL:ARM:FOLD:SEED"), ("efficientnet_lite0:gan:5:1", "fold 5"),
                        ("efficientnet_lite0:gan:0:9", "seed 9"), ("efficientnet_lite0:mixup:0:1", "arm"),
                        ("vgg16:gan:0:1", "not in --models")):
        with pytest.raises(ProtganError, match=needle):
            parse_cell(bad, cfg)


@pytest.fixture(scope="module")
def sequence(small, tmp_path_factory) -> dict:
    """fold 0 here, one cell "on another machine", then the rest; the calls to the classify engine at each step."""
    import protgan.classify.train as train
    import protgan.experiments.compare as compare

    out = tmp_path_factory.mktemp("seq") / "cmp"
    calls: list[tuple[str, str, int | None]] = []
    real_run = compare.run_classify

    def counting(cfg, **kw):
        calls.append((cfg.model, cfg.augment, cfg.fold))
        return real_run(cfg, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(train, "run_classify", counting)
    mp.setattr(compare, "run_classify", counting)  # compare binds the engine's function at import
    steps: dict = {}
    try:
        steps["fold0"] = run_compare(_cfg(small, out, fold=0), log=lambda m: None)
        steps["fold0_calls"] = list(calls)
        try:
            collect(out)
        except ProtganError as e:
            steps["collect_error"] = str(e)
        calls.clear()
        steps["cell"] = run_compare(_cfg(small, out, cells=["efficientnet_lite0:gan:1:0"]), log=lambda m: None)
        steps["cell_calls"] = list(calls)
        calls.clear()
        steps["rest"] = run_compare(_cfg(small, out), log=lambda m: None)
        steps["rest_calls"] = list(calls)
        calls.clear()
        steps["again"] = run_compare(_cfg(small, out), log=lambda m: None)
        steps["again_calls"] = list(calls)
    finally:
        mp.undo()
    steps["out"] = out
    return steps


def test_compare_resumes_subsets_and_collects(sequence) -> None:
    s = sequence
    assert s["fold0"] is None  # incomplete: nothing to compare yet
    assert sorted(s["fold0_calls"]) == [("efficientnet_lite0", "classic", 0), ("efficientnet_lite0", "gan", 0)]
    assert "2 of 4 cells not done: efficientnet_lite0:classic:1:0, efficientnet_lite0:gan:1:0" in s["collect_error"]
    assert s["cell"] is None and s["cell_calls"] == [("efficientnet_lite0", "gan", 1)]
    assert s["rest_calls"] == [("efficientnet_lite0", "classic", 1)]  # only the missing cell
    assert s["again_calls"] == []  # a finished comparison trains nothing
    assert s["again"].table == s["rest"].table


def test_compare_outputs_and_statistics(sequence) -> None:
    out, result = sequence["out"], sequence["rest"]
    for name in ("comparison.md", "comparison.csv", "differences.csv", "cells.csv", "comparison.png", "config.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "cells.csv")))
    assert len(rows) == 4
    # the table is the mean of the cells' own result.json files
    for arm in ("classic", "gan"):
        vals = [json.loads((out / "cells" / "efficientnet_lite0" / arm / "seed_0" / f"fold_{f}" / "result.json").read_text())
                ["val"]["tuned"]["macro_f1"] for f in (0, 1)]
        row = next(t for t in result.table if t["arm"] == arm)
        assert row["test_macro_f1_mean"] == pytest.approx(np.mean(vals))
        assert row["n_cells"] == 2
    d = result.difference("efficientnet_lite0")
    g = [float(r["test_macro_f1"]) for r in sorted(rows, key=lambda r: r["fold"]) if r["arm"] == "gan"]
    c = [float(r["test_macro_f1"]) for r in sorted(rows, key=lambda r: r["fold"]) if r["arm"] == "classic"]
    assert d["n"] == 2 and d["mean_diff"] == pytest.approx(np.mean(np.array(g) - np.array(c)), abs=1e-5)
    md = (out / "comparison.md").read_text()
    assert "| efficientnet_lite0 | classic |" in md and "| efficientnet_lite0 | gan (+10 synthetic) |" in md
    assert "gan - classic" in md
    # --collect from the CLI merges the same cells
    again = collect(out, log=lambda m: None)
    # NaN-aware equality (a p-value with n=2 may be NaN, and NaN != NaN)
    assert json.dumps(again.differences, sort_keys=True, default=str) == json.dumps(result.differences, sort_keys=True, default=str)


def test_synthetic_images_never_in_validation(sequence) -> None:
    out = sequence["out"]
    for f in (0, 1):
        gan = json.loads((out / "cells" / "efficientnet_lite0" / "gan" / "seed_0" / f"fold_{f}" / "ids.json").read_text())
        assert sum(i.startswith("syn-") for i in gan["train"]) == 10
        assert not any(i.startswith("syn-") for i in gan["val"])
        classic = json.loads((out / "cells" / "efficientnet_lite0" / "classic" / "seed_0" / f"fold_{f}" / "ids.json").read_text())
        assert not any(i.startswith("syn-") for i in classic["train"])
        assert classic["val"] == gan["val"]  # identical folds in both arms


def test_collect_refuses_a_leaked_synthetic_image(sequence, tmp_path) -> None:
    import shutil

    out = tmp_path / "cmp"
    shutil.copytree(sequence["out"], out, ignore=shutil.ignore_patterns("*.pt"))
    ids_path = out / "cells" / "efficientnet_lite0" / "gan" / "seed_0" / "fold_0" / "ids.json"
    ids = json.loads(ids_path.read_text())
    ids["val"].append(ids["synthetic"][0])
    ids_path.write_text(json.dumps(ids))
    with pytest.raises(ProtganError, match="synthetic image .* validation"):
        collect(out)


def test_compare_cli_bad_input(small, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    code, _, err = run_cli(["compare", "--out", str(out), "--collect"], capsys)
    assert_one_line_error(code, err, "no config.json")
    code, _, err = run_cli(["compare", "--data", str(small["data"]), "--out", str(out), "--models", "efficientnet_lite0",
                            "--folds", "2", "--seeds", "0,x"], capsys)
    assert_one_line_error(code, err, "--seeds")
    code, _, err = run_cli(["compare", "--data", str(small["data"]), "--out", str(out), "--models", "efficientnet_lite0",
                            "--folds", "2"], capsys)
    assert_one_line_error(code, err, "--synthetic")
    code, _, err = run_cli(["compare", "--data", str(small["data"]), "--out", str(out), "--models", "nope",
                            "--synthetic", str(small["syn"])], capsys)
    assert_one_line_error(code, err, "--model", "nope")
    code, _, err = run_cli(["compare", "--data", str(small["data"]), "--out", str(out), "--models", "efficientnet_lite0",
                            "--synthetic", str(small["syn"]), "--folds", "2", "--cell", "efficientnet_lite0:gan:3:0"], capsys)
    assert_one_line_error(code, err, "--cell", "fold 3")


def test_compare_refuses_changed_options(small, tmp_path) -> None:
    out = tmp_path / "cmp"
    run_compare(_cfg(small, out, fold=0, cells=["efficientnet_lite0:classic:0:0"]), log=lambda m: None)
    with pytest.raises(ProtganError, match="epochs=1, not 2"):
        run_compare(_cfg(small, out, epochs=2), log=lambda m: None)
