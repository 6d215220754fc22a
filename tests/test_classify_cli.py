"""`protgan classify` and `protgan predict` end to end on tiny datasets (a tiny registered model keeps
it fast): every output written, synthetic images only in training parts, resume, one-fold runs and
merging, Kaggle CSV, bad input as one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from protgan.data import read_folds, write_label_table
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset, record_generators, register_tiny_classifier

TINY = register_tiny_classifier("test_tiny_cli")
TARGETS = [(0,), (25,), (0, 25), (21,), (2, 0), (23,), (0, 21), (25, 2), (2,), (23, 0), (21, 25), (0,)] * 2



@pytest.fixture
def data_and_syn(tmp_path: Path) -> tuple[Path, Path]:
    data = make_dataset(tmp_path / "data", TARGETS, size=32, channels=("red", "green", "blue"))
    syn = tmp_path / "syn"
    make_dataset(syn, [(0,), (25,), (2,), (21,), (23,), (0,)], size=32, channels=("red", "green", "blue"), seed=7)
    for f in (syn / "train").iterdir():
        f.rename(f.with_name(f.name.replace("img", "syn")))
    write_label_table(syn / "train.csv", [f"syn{i:04d}" for i in range(6)], [(0,), (25,), (2,), (21,), (23,), (0,)])
    record_generators(syn, {c: [] for c in (0, 25, 2, 21, 23)})  # generators that saw no real image: clean
    return data, syn


def _base(data: Path, run: Path) -> list[str]:
    return ["classify", "--data", str(data), "--model", TINY, "--out", str(run), "--size", "32", "--folds", "2",
            "--epochs", "2", "--batch-size", "8", "--no-pretrained", "--workers", "0", "--device", "cpu"]


def test_two_epoch_run_writes_every_output_and_keeps_synthetic_out_of_validation(data_and_syn, tmp_path, capsys):
    data, syn = data_and_syn
    run = tmp_path / "run"
    code, out, err = run_cli(_base(data, run) + ["--augment", "classic+gan", "--synthetic", str(syn),
                                                 "--keep-checkpoints", "all"], capsys)
    assert code == 0, err
    assert "6 synthetic training images" in out
    for name in ("config.json", "metrics.csv", "per_class.csv", "summary.md", "thresholds.json", "curves.png",
                 "per_class.png"):
        assert (run / name).stat().st_size > 0, name
    for f in (0, 1):
        for name in ("best_loss.pt", "best_macro_f1.pt", "best_micro_f1.pt", "last.pt", "history.json",
                     "result.json", "thresholds.json", "ids.json"):
            assert (run / f"fold_{f}" / name).exists(), (f, name)
        assert len(json.loads((run / f"fold_{f}" / "history.json").read_text())) == 2

    # synthetic images: in every training part, never in validation; validation = the fold's real ids
    folds = read_folds(data / "folds.csv")
    syn_ids = {f"syn{i:04d}" for i in range(6)}
    all_val = set()
    for f in (0, 1):
        ids = json.loads((run / f"fold_{f}" / "ids.json").read_text())
        assert syn_ids <= set(ids["train"])
        assert not syn_ids & set(ids["val"])
        assert set(ids["val"]) == {i for i, k in folds.fold_of.items() if k == f}
        assert not set(ids["val"]) & set(ids["train"])
        all_val |= set(ids["val"])
    assert len(all_val) == len(TARGETS)

    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"] == TINY and cfg["lr"] == 5e-4 and cfg["head"] == "paper" and cfg["loss"] == "focal"
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert {r["fold"] for r in rows} == {"0", "1", "mean", "std"}
    assert {(r["split"], r["thresholds"]) for r in rows} == {(s, t) for s in ("train", "val") for t in ("tuned", "0.5", "positive-proportion")}
    md = (run / "summary.md").read_text()
    assert "| Metrics / Models | Macro F1 Train | Macro F1 Test |" in md and "paper eq. 8" in md
    th = json.loads((run / "thresholds.json").read_text())
    assert len(th["mean"]) == 5 and set(th["per_fold"]) == {"0", "1"}
    ckpt = torch.load(run / "fold_0" / "best_macro_f1.pt", weights_only=True)
    assert ckpt["thresholds"] == json.loads((run / "fold_0" / "result.json").read_text())["thresholds"]

    # predict: the Kaggle CSV with every Id, labels from the model's classes
    sub = tmp_path / "sub.csv"
    code, out, err = run_cli(["predict", "--checkpoint", str(run / "fold_0" / "best_macro_f1.pt"), str(data),
                              "--out", str(sub), "--device", "cpu"], capsys)
    assert code == 0, err
    assert "from the held-out 0.1 of the training part" in " ".join(out.split())
    lines = sub.read_text().splitlines()
    assert lines[0] == "Id,Predicted" and len(lines) == len(TARGETS) + 1
    for line in lines[1:]:
        id_, labels = line.split(",")
        assert set(int(c) for c in labels.split()) <= {0, 25, 2, 21, 23}
    # single image files work too
    one = sorted((data / "train").glob("img0003_*.png"))
    code, out, err = run_cli(["predict", "--checkpoint", str(run / "fold_0" / "best_loss.pt"), *map(str, one),
                              "--device", "cpu"], capsys)
    assert code == 0 and "img0003" in out and "no tuned thresholds" in out

    # the same command again: nothing retrained, same result
    before = (run / "fold_1" / "result.json").read_text()
    code, out, err = run_cli(_base(data, run) + ["--augment", "classic+gan", "--synthetic", str(syn)], capsys)
    assert code == 0 and "already done" in out
    assert (run / "fold_1" / "result.json").read_text() == before


def test_resume_from_last_checkpoint(data_and_syn, tmp_path, capsys):
    data, _ = data_and_syn
    run = tmp_path / "run"
    code, _, err = run_cli(_base(data, run) + ["--fold", "0", "--epochs", "1", "--augment", "none",
                                               "--keep-checkpoints", "all"], capsys)
    assert code == 0, err
    # pretend the fold stopped after epoch 1 of 2 (last.pt kept): drop the result, ask for 2 epochs
    (run / "fold_0" / "result.json").unlink()
    cfg = json.loads((run / "config.json").read_text())
    cfg["epochs"] = 2
    (run / "config.json").write_text(json.dumps(cfg))
    code, out, err = run_cli(_base(data, run) + ["--fold", "0", "--augment", "none"], capsys)
    assert code == 0, err
    assert "resuming at epoch 2/2" in out
    hist = json.loads((run / "fold_0" / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2]


def test_one_fold_at_a_time_then_merge(data_and_syn, tmp_path, capsys):
    data, _ = data_and_syn
    run = tmp_path / "run"
    base = _base(data, run) + ["--epochs", "1", "--augment", "classic", "--loss", "bce", "--head", "linear"]
    code, out, err = run_cli(base + ["--fold", "1"], capsys)
    assert code == 0, err
    assert (run / "fold_1" / "result.json").exists() and not (run / "fold_0").exists()
    # --keep-checkpoints selected (the default): a finished fold keeps only the evaluated checkpoint
    assert sorted(p.name for p in (run / "fold_1").glob("*.pt")) == ["best_macro_f1.pt"]
    assert not (run / "summary.md").exists() and "--collect" in out
    code, out, err = run_cli(["classify", "--collect", str(run)], capsys)
    assert_one_line_error(code, err, "fold 0", "result.json")
    code, out, err = run_cli(base + ["--fold", "0"], capsys)
    assert code == 0, err
    assert (run / "summary.md").exists() and (run / "per_class.png").exists()
    code, out, err = run_cli(["classify", "--collect", str(run)], capsys)
    assert code == 0 and "Micro F1" in out
    # options of a run cannot change under it
    code, out, err = run_cli(_base(data, run) + ["--epochs", "3", "--fold", "0"], capsys)
    assert_one_line_error(code, err, "config.json", "epochs")


@pytest.mark.parametrize("extra, needles", [
    (["--model", "alexnet9000"], ["--model", "unknown model"]),
    (["--fold", "2"], ["--fold 2", "out of range"]),
    (["--augment", "gan", "--synthetic", "MISSING"], ["--synthetic", "does not exist"]),
    (["--augment", "gan"], ["--augment gan", "--synthetic"]),
    (["--classes", "0,27"], ["class 27", "no images"]),
    (["--size", "4"], ["--size 4"]),
    (["--focal-alpha", "1.5"], ["--focal-alpha"]),
])
def test_bad_input_is_one_line(data_and_syn, tmp_path, capsys, extra, needles):
    data, _ = data_and_syn
    run = tmp_path / "run"
    args = _base(data, run)
    if "--model" in extra:
        i = args.index("--model")
        del args[i:i + 2]
    extra = [str(tmp_path / e) if e == "MISSING" else e for e in extra]
    code, out, err = run_cli(args + extra, capsys)
    assert_one_line_error(code, err, *needles)
    assert not (run / "fold_0").exists()


def test_synthetic_ids_colliding_with_real_ones(data_and_syn, tmp_path, capsys):
    data, _ = data_and_syn
    clash = make_dataset(tmp_path / "clash", [(0,), (25,)], size=32, channels=("red", "green", "blue"))
    code, out, err = run_cli(_base(data, tmp_path / "run") + ["--augment", "gan", "--synthetic", str(clash)], capsys)
    assert_one_line_error(code, err, "img0000", "also a real image")


def test_predict_bad_input(data_and_syn, tmp_path, capsys):
    data, _ = data_and_syn
    code, out, err = run_cli(["predict", "--checkpoint", str(tmp_path / "nope.pt"), str(data)], capsys)
    assert_one_line_error(code, err, "nope.pt", "not found")
    fake = tmp_path / "fake.pt"
    torch.save({"a": 1}, fake)
    code, out, err = run_cli(["predict", "--checkpoint", str(fake), str(data)], capsys)
    assert_one_line_error(code, err, "not a protgan classifier checkpoint")
