"""protgan demo: the whole pipeline end to end (the hidden --tiny plan), its report, resume and bad input;
and once more with --gan conditional (one conditional generator per fold for the top-5 classes)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from protgan.experiments.demo import PLANS, STAGES
from tests.cli_helpers import assert_one_line_error, run_cli


def _tables(md: str) -> list[list[list[str]]]:
    """Every Markdown table of the report as rows of cells (header and separator dropped)."""
    tables, cur = [], None
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cur is None:
                cur = []  # the header
            elif not set("".join(cells)) <= set("-"):
                cur.append(cells)
        elif cur is not None:
            tables.append(cur)
            cur = None
    if cur is not None:
        tables.append(cur)
    return tables


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d+\.\d+(?:e[-+]?\d+)?|[-+]?\d+", cell)]


def _run_tiny_demo(out: Path, *args: str) -> Path:
    import torch

    from protgan.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors; robust on a shared machine
    try:
        with pytest.raises(SystemExit) as exc:
            main(["demo", "--tiny", "--out", str(out), "--jobs", "1", "--device", "cpu", *args])
    finally:
        torch.set_num_threads(threads)
    assert exc.value.code == 0
    return out


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    return _run_tiny_demo(tmp_path_factory.mktemp("demo") / "run")


def test_demo_tiny_end_to_end_report(tiny_demo: Path) -> None:
    out = tiny_demo
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    state = json.loads((out / "demo.json").read_text())
    assert list(state["stages"]) == list(STAGES)
    for heading in ("1. Data", "2. Contrast enhancement", "3. One DCGAN per class", "4. Synthetic images",
                    "5. Is the synthetic set any good?", "6. Classification"):
        assert heading in md
    tables = _tables(md)
    # stage timings, class counts, enhancement, GAN, the other arch beside, FID, KID during training, quality,
    # comparison, differences
    assert len(tables) == 10
    timings, counts, enhance, gan, beside, fid, kid, quality, table, diffs = tables
    folds = PLANS["tiny"].folds
    assert len(gan) == 5 * folds and len(fid) == 5 and len(counts) == 5  # one generator per class and fold
    assert [r[0] for r in enhance] == ["original", "he", "ahe", "clahe"]
    for r in enhance[1:]:  # MSE, PSNR, SSIM of each method: finite numbers
        for cell in r[2:5]:
            assert all(math.isfinite(v) for v in _numbers(cell)) and _numbers(cell)
    assert sorted(r[2] for r in gan) == sorted(f"{k} (training part)" for k in range(folds) for _ in range(5))
    for r in gan:
        assert int(r[4]) == PLANS["tiny"].gan_steps
        assert all(math.isfinite(float(v)) for v in r[5:10])
    # the other arch beside the demo's for one class: it trained until it had used the demo generator's CPU seconds
    assert [r[0] for r in beside] == [PLANS["tiny"].gan_arch, "fastgan" if PLANS["tiny"].gan_arch == "dcgan" else "dcgan"]
    assert int(beside[0][1]) == PLANS["tiny"].gan_steps and int(beside[1][1]) >= 1
    assert float(beside[1][2]) >= float(beside[0][2]) - 0.1  # both printed to 0.1 s
    assert all(math.isfinite(v) for r in beside for v in _numbers(r[3]))
    assert f"class {PLANS['tiny'].beside_class} (" in md and "at the same CPU seconds" in md
    assert "LEAKY" not in md  # per-fold generators: clean
    for r in fid:  # FID, KID, the floor
        for cell in (r[4], r[5], r[7]):
            vals = _numbers(cell)
            assert vals and all(math.isfinite(v) for v in vals), r
        assert float(r[4]) >= 0
    # KID at every eval step of every class (tiny: steps 3 and 6), and the real-vs-real floor
    assert len(kid) == 5
    for r in kid:
        assert len(r) == 2 + 2 + 1 and all(math.isfinite(float(v)) for v in r[2:]), r
    # precision / recall (and their ½ and floor), near-copies with the real reference, CAS F1 both arms
    assert len(quality) == 5
    for r in quality:
        assert len(r) == 4 + 3 + 2 + 2, r
        for cell in r[4:7]:
            assert all(0 <= v <= 1 for v in _numbers(cell)) and len(_numbers(cell)) == 2, r
        assert 0 <= _numbers(r[7])[0] <= 100 and 0 <= _numbers(r[8])[0] <= 100
        assert 0 <= _numbers(r[9])[0] <= 1 and 0 <= float(r[10]) <= 1
    assert "**Verdict per class.** synthetic images of class" in md and "CAS macro F1" in md
    assert [r[1].split(" ")[0] for r in table] == ["none", "classic", "gan", "classic+gan"]
    for r in table:
        for cell in r[2:]:
            mean, std = _numbers(cell)
            assert 0 <= mean <= 1 and std >= 0
    assert [r[0] for r in diffs] == [d for d in ("gan - classic", "classic+gan - classic", "gan - none",
                                                 "classic - none") for _ in range(3)]
    for r in diffs:
        assert math.isfinite(float(r[3]))
        lo, hi = _numbers(r[4])
        assert lo <= float(r[3]) <= hi
    assert "Did GAN augmentation help here?" in md
    assert "`classic+gan - classic`: test macro F1" in md and "`gan - none`: test macro F1" in md
    # every figure exists, and the HTML inlines every one of them
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    # enhancement, per class (real, samples, losses), beside, KID, most-copied images, comparison
    assert len(images) == 1 + 3 * 5 + 1 + 1 + 1 + 1
    for rel in images:
        assert (out / rel).is_file(), rel
    assert html.count("src='data:image/png;base64,") == len(images)
    assert "<table>" in html and "Did GAN augmentation help here?" in html


def test_demo_resumes_without_redoing_stages(tiny_demo: Path, capsys) -> None:
    before = json.loads((tiny_demo / "demo.json").read_text())["stages"]
    gan_ckpt = tiny_demo / "gan" / "fold_0" / "class_00" / "checkpoints" / "last.pt"
    mtime = gan_ckpt.stat().st_mtime_ns
    code, out, _ = run_cli(["demo", "--tiny", "--out", str(tiny_demo), "--jobs", "1", "--device", "cpu"], capsys)
    assert code == 0
    assert "done before" in out
    after = json.loads((tiny_demo / "demo.json").read_text())["stages"]
    for stage in STAGES[:-1]:
        assert after[stage]["seconds"] == before[stage]["seconds"]
    assert gan_ckpt.stat().st_mtime_ns == mtime


def test_demo_bad_input(tmp_path: Path, tiny_demo: Path, capsys) -> None:
    # a folder that holds something else
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    code, _, err = run_cli(["demo", "--tiny", "--out", str(tmp_path / "busy")], capsys)
    assert_one_line_error(code, err, "not empty")
    # a demo folder made with another plan
    code, _, err = run_cli(["demo", "--quick", "--out", str(tiny_demo)], capsys)
    assert_one_line_error(code, err, "other options")
    # a per-class demo folder refuses the conditional mode (its identity, like the plan and seed)
    code, _, err = run_cli(["demo", "--tiny", "--gan", "conditional", "--out", str(tiny_demo)], capsys)
    assert_one_line_error(code, err, "other options", "--gan per-class")
    code, _, err = run_cli(["demo", "--tiny", "--gan", "both", "--out", str(tmp_path / "z")], capsys)
    assert_one_line_error(code, err, "--gan 'both'")
    code, _, err = run_cli(["demo", "--tiny", "--out", str(tmp_path / "x"), "--device", "tpu"], capsys)
    assert code != 0 and "Traceback" not in err
    code, _, err = run_cli(["demo", "--quick", "--tiny", "--out", str(tmp_path / "y")], capsys)
    assert_one_line_error(code, err, "--quick and --tiny")
    code, _, err = run_cli(["demo", "--tiny", "--synth-labels", "follow-real", "--out", str(tmp_path / "z")], capsys)
    assert_one_line_error(code, err, "--synth-labels follow-real: needs --gan conditional")
    assert not (tmp_path / "z").exists()


def test_demo_tiny_conditional(tmp_path: Path, capsys) -> None:
    """--gan conditional: one conditional run per fold (gan/fold_K/conditional, what train-gan's fan-out
    writes), read unchanged by synth, fid, evaluate and compare; the report names the mode."""
    from protgan.data import read_label_table
    from protgan.data.folds import read_folds

    out = _run_tiny_demo(tmp_path / "cond", "--gan", "conditional", "--synth-labels", "follow-real")
    plan = PLANS["tiny"]
    state = json.loads((out / "demo.json").read_text())
    assert state["gan"] == "conditional" and list(state["stages"]) == list(STAGES)
    assert state["stages"]["gan_beside"]["skipped"] and "--gan conditional" in state["stages"]["gan_beside"]["reason"]
    assert not (out / "gan-beside").exists()
    classes = sorted(json.loads((out / "gan" / "fold_0" / "conditional" / "config.json").read_text())["class_subset"])
    assert classes == [0, 2, 21, 23, 25]  # the top-5 classes
    fold_of = read_folds(out / "enhanced" / "folds.csv").fold_of
    for k in range(plan.folds):
        # one conditional generator per fold, nothing per class; 5 x the steps of one per-class generator
        runs = sorted(p.name for p in (out / "gan" / f"fold_{k}").iterdir())
        assert runs == ["conditional"], runs
        run = out / "gan" / f"fold_{k}" / "conditional"
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["conditional"] and cfg["class_index"] is None and cfg["fold"] == k and cfg["balance"] == "uniform"
        assert cfg["steps"] == 5 * plan.gan_steps and (run / "checkpoints" / "last.pt").is_file()
        # synthetic images for every class, each with the leakage record of its fold: the run's training
        # images, none of them in fold K's validation part
        syn = out / "synthetic" / f"fold_{k}"
        ids, targets = read_label_table(syn / "train.csv")
        # --synth-labels follow-real: each class's images carry it, with the label sets of real images carrying it
        real_ids, real_targets = read_label_table(out / "enhanced" / "train.csv")
        train_ids = set(cfg["train_ids"])
        for c in classes:
            sets = [tuple(sorted(t)) for i, t in zip(ids, targets) if i.startswith(f"syn-c{c:02d}")]
            real_sets = {tuple(sorted(x for x in t if x in classes)) for i, t in zip(real_ids, real_targets)
                         if i in train_ids and c in t}
            assert len(sets) == plan.per_class and set(sets) <= real_sets, (c, sets, real_sets)
        assert any(len(t) > 1 for t in targets)  # real combinations, not the class alone
        assert all((syn / "train" / f"{i}_{ch}.png").is_file() for i in ids for ch in ("red", "green", "blue"))
        manifest = json.loads((syn / "manifest.json").read_text())
        assert manifest["labels"] == "follow-real"
        assert sorted(e["class_index"] for e in manifest["classes"]) == classes
        generator_ids = json.loads((syn / "generator_ids.json").read_text())
        for e in manifest["classes"]:
            assert e["run"] == str(run) and e["conditional"]
            assert e["generator"]["fold"] == k and e["generator"]["train_ids_sha256"] == cfg["train_ids_sha256"]
            seen = generator_ids[str(e["class_index"])]
            assert seen == cfg["train_ids"] and not any(fold_of[i] == k for i in seen)
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "GAN mode `conditional`" in md and "3. One conditional DCGAN for the top-5 classes" in md
    assert "Skipped: --gan conditional" in md and "LEAKY" not in md
    assert "`--synth-labels follow-real`" in md
    # stage timings, class counts, enhancement, GAN, FID, KID during training, quality, comparison, differences
    timings, counts, enhance, gan, fid, kid, quality, table, diffs = _tables(md)
    assert len(gan) == plan.folds
    for k, r in enumerate(gan):
        assert sorted(map(int, r[0].split(","))) == classes and r[1] == "conditional"
        assert r[2] == f"{k} (training part)" and int(r[4]) == 5 * plan.gan_steps
        assert all(math.isfinite(float(v)) for v in r[5:10])
    assert sorted(int(r[0]) for r in fid) == classes
    _, syn_targets = read_label_table(out / "synthetic" / "fold_0" / "train.csv")
    for r in fid:  # fid's synthetic images of a class (select any): every image carrying it, other classes' too
        assert int(r[3]) == sum(int(r[0]) in t for t in syn_targets) >= plan.per_class and all(math.isfinite(v) for c in (r[4], r[5], r[7]) for v in _numbers(c))
    # per class: KID of the class's label alone at both evaluations (5 x the per-class interval), and the floor
    assert sorted(int(r[0]) for r in kid) == classes
    for r in kid:
        assert len(r) == 2 + 2 + 1 and all(math.isfinite(float(v)) for v in r[2:]), r
    assert sorted(int(r[0]) for r in quality) == classes and all(len(r) == 11 for r in quality)
    assert [r[1].split(" ")[0] for r in table] == ["none", "classic", "gan", "classic+gan"] and diffs
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    # enhancement, the conditional run (real, samples, losses), KID, most-copied images, comparison
    assert len(images) == 1 + 3 + 1 + 1 + 1
    assert all((out / rel).is_file() for rel in images)
    assert html.count("src='data:image/png;base64,") == len(images)
    # and the conditional folder refuses the per-class mode
    code, _, err = run_cli(["demo", "--tiny", "--out", str(out)], capsys)
    assert_one_line_error(code, err, "other options", "--gan conditional")
