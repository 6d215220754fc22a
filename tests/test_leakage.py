"""GAN augmentation without leakage: generators trained per fold (train-gan --fold K), their training Ids
recorded through synth's manifest, and classify/compare refusing synthetic images whose generator saw the
fold's validation images unless --allow-leakage (which every table then says)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import torch

from protgan.classify.train import ClassifyConfig, prepare
from protgan.core.errors import ProtganError
from protgan.data import FOLDS_FILE, make_folds, open_dataset, read_folds
from protgan.data.provenance import GENERATOR_IDS_FILE, check_fold, ids_sha256
from protgan.data.selection import select_class_ids
from protgan.experiments.compare import CompareConfig, run_compare
from protgan.gan.checkpoint import last_checkpoint, load_checkpoint
from protgan.gan.fanout import plan_jobs
from protgan.gan.synth import SynthConfig, run_synth
from protgan.gan.train import GanTrainer, TrainGanConfig
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset, register_tiny_classifier

TINY = register_tiny_classifier("test_tiny_leak")
RGB = ("red", "green", "blue")
TARGETS = [(0,)] * 24 + [(25,)] * 10 + [(0, 25)] * 6



pytestmark = pytest.mark.usefixtures("one_thread")


def _gan(data: Path, out: Path, fold: int | None, **kw) -> TrainGanConfig:
    base = dict(data=str(data), class_index=0, out=str(out), size=32, batch_size=4, steps=2, g_width=16, d_width=16,
                log_every=1, ckpt_every=0, sample_every=0, workers=0, device="cpu", n_samples=4, fold=fold,
                folds=None if fold is None else 2)
    base.update(kw)
    return TrainGanConfig(**base)


def _val_ids(data: Path, fold: int) -> list[str]:
    folds = read_folds(data / FOLDS_FILE)
    return [i for i in open_dataset(data).ids if folds.fold_of[i] == fold]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A dataset, a class-0 generator trained on fold 0's training part (of 2 folds), its synthetic set."""
    root = tmp_path_factory.mktemp("leak")
    data = make_dataset(root / "data", TARGETS, size=32, channels=RGB)
    torch.set_num_threads(1)
    GanTrainer(_gan(data, root / "runs" / "class_0", fold=0)).fit()
    syn = root / "syn"
    run_synth(SynthConfig(runs=str(root / "runs"), out=str(syn), per_class=4, device="cpu"))
    return {"root": root, "data": data, "run": root / "runs" / "class_0", "syn": syn}


def test_fold_run_trains_on_the_training_part_and_records_its_ids(world) -> None:
    data, run = world["data"], world["run"]
    ds = open_dataset(data)
    # DATA/folds.csv made exactly as classify makes it (the full label table, seed 0)
    assert read_folds(data / FOLDS_FILE).fold_of == make_folds(ds.ids, ds.targets, 2, seed=0).fold_of
    val0 = set(_val_ids(data, 0))
    expected = sorted(i for i in select_class_ids(ds.ids, ds.targets, 0, list(range(28)), "only") if i not in val0)
    cfg = json.loads((run / "config.json").read_text())
    ckpt = load_checkpoint(last_checkpoint(run))["config"]
    for rec in (cfg, ckpt):
        assert rec["fold"] == 0 and rec["folds"] == 2
        assert rec["train_ids"] == expected and rec["n_train_ids"] == len(expected) == rec["n_images"]
        assert rec["train_ids_sha256"] == hashlib.sha256("\n".join(expected).encode()).hexdigest()
    # classify reads the same split
    prep = prepare(ClassifyConfig(data=str(data), out=str(world["root"] / "c"), model=TINY, classes="0,25", folds=2,
                                  size=32, epochs=1, batch_size=4, pretrained=False))
    assert prep.fold_of == read_folds(data / FOLDS_FILE).fold_of


def test_manifest_records_the_generators_training_ids(world) -> None:
    man = json.loads((world["syn"] / "manifest.json").read_text())
    gen = man["classes"][0]["generator"]
    cfg = json.loads((world["run"] / "config.json").read_text())
    assert gen["fold"] == 0 and gen["folds"] == 2 and gen["n_train_ids"] == len(cfg["train_ids"])
    assert gen["train_ids_sha256"] == cfg["train_ids_sha256"] == ids_sha256(cfg["train_ids"])
    assert json.loads((world["syn"] / GENERATOR_IDS_FILE).read_text()) == {"0": cfg["train_ids"]}


def test_fold0_generator_refused_for_fold1_and_accepted_for_fold0(world, capsys) -> None:
    data, syn = world["data"], world["syn"]
    seen = set(json.loads((world["run"] / "config.json").read_text())["train_ids"])
    n1 = len(seen & set(_val_ids(data, 1)))
    assert n1 > 0  # fold 0's training part is fold 1's validation part
    assert check_fold(syn, [0, 25], _val_ids(data, 0), 0).seen == {0: 0}
    with pytest.raises(ProtganError, match=rf"class 0's generator saw {n1} of fold 1's validation images"):
        check_fold(syn, [0, 25], _val_ids(data, 1), 1)
    allowed = check_fold(syn, [0, 25], _val_ids(data, 1), 1, allow_leakage=True)
    assert allowed.leaky and allowed.seen == {0: n1}
    # classify: fold 0 alone is fine, fold 1 (and so all folds) refused before anything trains
    base = ["classify", "--data", str(data), "--model", TINY, "--classes", "0,25", "--size", "32", "--folds", "2",
            "--epochs", "1", "--batch-size", "4", "--no-pretrained", "--workers", "0", "--device", "cpu",
            "--augment", "gan", "--synthetic", str(syn)]
    ok = prepare(ClassifyConfig(data=str(data), out=str(world["root"] / "c0"), model=TINY, classes="0,25", folds=2,
                                fold=0, augment="gan", synthetic=str(syn), size=32, epochs=1, pretrained=False))
    assert ok.synthetic_for(0) is not None and not ok.leakage[0].leaky
    code, _, err = run_cli(base + ["--out", str(world["root"] / "c1"), "--fold", "1"], capsys)
    assert_one_line_error(code, err, "class 0", "fold 1", f"saw {n1}", "--allow-leakage")
    assert not (world["root"] / "c1" / "fold_1").exists()


def test_unrecorded_synthetic_images_refused_unless_allowed(world, tmp_path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(world["syn"], old)
    (old / GENERATOR_IDS_FILE).unlink()  # as an older synth wrote it
    with pytest.raises(ProtganError, match="no record of its training images.*--allow-leakage"):
        check_fold(old, [0], _val_ids(world["data"], 0), 0)
    assert check_fold(old, [0], _val_ids(world["data"], 0), 0, allow_leakage=True).unrecorded == [0]
    (old / GENERATOR_IDS_FILE).write_text(json.dumps({"0": ["img0000"]}))  # not the manifest's Ids
    with pytest.raises(ProtganError, match="do not match the sha256"):
        check_fold(old, [0], _val_ids(world["data"], 0), 0, allow_leakage=True)


def test_leaked_images_counted_once_when_classes_share_a_generator(world, tmp_path) -> None:
    """A conditional run is the generator of every class of its subset (one training list for all): the
    fold's leak is the distinct validation images seen, not the sum over classes (which counted them K times)."""
    import shutil

    syn = tmp_path / "shared"
    shutil.copytree(world["syn"], syn)
    lines = (syn / "train.csv").read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + ",0 25"  # one image of both classes, as follow-real writes
    (syn / "train.csv").write_text("\n".join(lines) + "\n")
    manifest = json.loads((syn / "manifest.json").read_text())
    manifest["classes"].append({**manifest["classes"][0], "class_index": 25})
    (syn / "manifest.json").write_text(json.dumps(manifest))
    ids = json.loads((syn / GENERATOR_IDS_FILE).read_text())
    (syn / GENERATOR_IDS_FILE).write_text(json.dumps({"0": ids["0"], "25": ids["0"]}))
    n1 = len(set(ids["0"]) & set(_val_ids(world["data"], 1)))
    check = check_fold(syn, [0, 25], _val_ids(world["data"], 1), 1, allow_leakage=True)
    assert check.seen == {0: n1, 25: n1} and check.n_val_seen == n1 > 0


def _compare(world: dict, out: Path, **kw) -> CompareConfig:
    base = dict(data=str(world["data"]), out=str(out), models=TINY, classes="0,25", folds=2, size=32, epochs=1,
                seeds="0", batch_size=4, pretrained=False, workers=0, device="cpu")
    base.update(kw)
    return CompareConfig(**base)


def test_allow_leakage_lets_it_through_and_the_comparison_says_so(world, tmp_path) -> None:
    with pytest.raises(ProtganError, match="fold 1"):
        run_compare(_compare(world, tmp_path / "refused", synthetic=str(world["syn"])), log=lambda m: None)
    assert not (tmp_path / "refused" / "cells").exists()  # refused before any cell trained
    out = tmp_path / "leaky"
    result = run_compare(_compare(world, out, synthetic=str(world["syn"]), allow_leakage=True), log=lambda m: None)
    n1 = len(set(json.loads((world["run"] / "config.json").read_text())["train_ids"]) & set(_val_ids(world["data"], 1)))
    cells = {(r["arm"], r["fold"]): r for r in csv.DictReader(open(out / "cells.csv"))}
    assert (cells[("gan", "0")]["leakage"], cells[("gan", "1")]["leakage"]) == ("clean", "LEAKY")
    assert int(cells[("gan", "1")]["n_val_seen"]) == n1 and cells[("classic", "1")]["leakage"] == ""
    md = (out / "comparison.md").read_text()
    assert "**LEAKY (--allow-leakage)**" in md and "gan (+4 synthetic, LEAKY)" in md and "gan - classic (LEAKY)" in md
    assert "LEAKY" in result.leakage
    table = {r["arm"]: r for r in csv.DictReader(open(out / "comparison.csv"))}
    assert table["gan"]["leakage"] == "LEAKY" and table["classic"]["leakage"] == ""
    assert int(table["gan"]["n_val_seen"]) == n1  # fold 0 clean, fold 1 n1
    assert {r["leakage"] for r in csv.DictReader(open(out / "differences.csv"))} == {"LEAKY"}


def test_arm_row_counts_each_folds_leak_once_over_seeds() -> None:
    from protgan.experiments.compare import _metric_keys, _table

    cfg = _compare({"data": "unused"}, Path("unused"), seeds="0,1")
    metrics = {f"{split}_{k}": 0.5 for split in ("train", "test") for k in _metric_keys()}
    rows = [{"model": TINY, "arm": arm, "fold": fold, "seed": seed, "n_train_synthetic": 4 * ("gan" in arm),
             "leakage": "LEAKY" if "gan" in arm else "", "n_val_seen": (7, 5)[fold] if "gan" in arm else 0, **metrics}
            for arm in ("classic", "gan") for fold in (0, 1) for seed in (0, 1)]
    table = {r["arm"]: r for r in _table(cfg, rows)}
    assert table["gan"]["n_val_seen"] == 12 and table["classic"]["n_val_seen"] == 0


def test_compare_with_per_fold_gan_runs_is_clean(world, tmp_path) -> None:
    runs = tmp_path / "runs"
    for k in (0, 1):
        GanTrainer(_gan(world["data"], runs / f"fold_{k}" / "class_0", fold=k)).fit()
    out = tmp_path / "cmp"
    run_compare(_compare(world, out, gan_runs=str(runs), per_class=3, classes="0"), log=lambda m: None)
    for k in (0, 1):  # fold K's synthetic set came from fold K's generator
        man = json.loads((out / "synthetic" / f"fold_{k}" / "manifest.json").read_text())
        assert man["classes"][0]["generator"]["fold"] == k
        ids = json.loads((out / "cells" / TINY / "gan" / "seed_0" / f"fold_{k}" / "ids.json").read_text())
        assert len(ids["synthetic"]) == 3
        assert json.loads((out / "cells" / TINY / "gan" / "seed_0" / f"fold_{k}" / "result.json").read_text())[
            "leakage"]["n_val_seen"] == 0
    assert "LEAKY" not in (out / "comparison.md").read_text()
    assert {r["leakage"] for r in csv.DictReader(open(out / "cells.csv")) if r["arm"] == "gan"} == {"clean"}


@pytest.mark.parametrize("labels", ["single", "follow-real"])
def test_compare_with_per_fold_conditional_runs_is_clean(world, tmp_path, labels) -> None:
    """compare --gan-runs takes train-gan --conditional's per-fold runs (RUNS/fold_K/conditional) for every class
    of their subset: fold K's synthetic images of each class come from fold K's conditional generator, with
    --synth-labels' label sets."""
    runs = tmp_path / "runs"
    for k in (0, 1):
        GanTrainer(_gan(world["data"], runs / f"fold_{k}" / "conditional", fold=k, class_index=None, conditional=True,
                        classes="0,25")).fit()
    out = tmp_path / "cmp"
    run_compare(_compare(world, out, gan_runs=str(runs), per_class=12, synth_labels=labels), log=lambda m: None)
    assert json.loads((out / "synthetic" / "manifest.json").read_text())["labels"] == labels
    for k in (0, 1):
        rows = list(csv.DictReader(open(out / "synthetic" / f"fold_{k}" / "train.csv")))
        sets = {tuple(sorted(int(t) for t in r["Target"].split())) for r in rows}
        # single: each image its class alone; follow-real: the real label sets carrying it, (0, 25) among them
        assert sets == ({(0,), (25,)} if labels == "single" else {(0,), (25,), (0, 25)})
        man = json.loads((out / "synthetic" / f"fold_{k}" / "manifest.json").read_text())
        assert man["labels"] == labels
        assert sorted(e["class_index"] for e in man["classes"]) == [0, 25]
        assert all(e["conditional"] for e in man["classes"])
        assert {e["generator"]["fold"] for e in man["classes"]} == {k}
        assert {Path(e["run"]).name for e in man["classes"]} == {"conditional"}
        result = json.loads((out / "cells" / TINY / "gan" / "seed_0" / f"fold_{k}" / "result.json").read_text())
        assert result["leakage"]["n_val_seen"] == 0
    assert {r["leakage"] for r in csv.DictReader(open(out / "cells.csv")) if r["arm"] == "gan"} == {"clean"}


def test_fold_options_resume_and_errors(world, tmp_path) -> None:
    with pytest.raises(ProtganError, match="fold=0, not 1"):  # a fold-0 run never resumes as fold 1
        GanTrainer(_gan(world["data"], world["run"], fold=1)).prepare_run()
    with pytest.raises(ProtganError, match="--folds 2: needs --fold"):
        _gan(world["data"], tmp_path / "x", fold=None, folds=2).validate()
    with pytest.raises(ProtganError, match="--fold 2 out of range 0..1"):
        _gan(world["data"], tmp_path / "x", fold=2).validate()


def test_fanout_schedules_class_x_fold(tmp_path) -> None:
    data = make_dataset(tmp_path / "data", TARGETS, size=32, channels=RGB)
    base = {"data": str(data), "size": 32, "steps": 5, "batch_size": 4, "folds": 2}
    jobs = plan_jobs(base, "0,25", tmp_path / "runs")
    assert [(j.class_index, j.fold, j.out) for j in jobs] == [
        (c, f, tmp_path / "runs" / f"fold_{f}" / f"class_{c}") for f in (0, 1) for c in (0, 25)]
    assert (data / FOLDS_FILE).is_file()  # made once, before the jobs
    for j in jobs:  # each job's serialised config trains that fold's training part
        assert (j.config["fold"], j.config["folds"], j.config["class_index"], j.config["steps"]) == (
            j.fold, 2, j.class_index, 5)
    assert [(j.class_index, j.fold) for j in plan_jobs({**base, "fold": 1}, "0,25", tmp_path / "r2")] == [
        (0, 1), (25, 1)]
    plain = plan_jobs({"data": str(data), "size": 32}, "0,25", tmp_path / "r3")
    assert [(j.fold, j.out.name, j.config["fold"]) for j in plain] == [(None, "class_0", None), (None, "class_25", None)]
