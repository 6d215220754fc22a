"""`protgan synth`: layout, manifest, determinism, Ids, where it refuses to write, truncation and filtering."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from protgan.core.atomic import write_json
from protgan.data import class_name, open_dataset, read_channel
from protgan.core.errors import ProtganError
from protgan.gan import build_discriminator, build_generator, save_checkpoint
from protgan.gan.synth import SynthConfig, run_synth, sample_noise, synth_id
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset

SIZE, WIDTH = 32, 64


def make_run(runs: Path, class_index: int, seed: int, channels=("red", "green", "blue"), data: Path | None = None,
             best: bool = False, step: int = 7) -> Path:
    """A train-gan run folder by the checkpoint contract, with small random G and D."""
    run = runs / f"class{class_index:02d}"
    torch.manual_seed(seed)
    g = build_generator(SIZE, len(channels), 100, WIDTH)
    d = build_discriminator(SIZE, len(channels), WIDTH)
    config = {"class_index": class_index, "class_name": class_name(class_index), "channels": list(channels),
              "size": SIZE, "z_dim": 100, "g_width": WIDTH, "d_width": WIDTH, "data": str(data or runs / "nodata")}
    write_json(run / "config.json", config)
    ema = build_generator(SIZE, len(channels), 100, WIDTH)  # different weights: --no-ema must differ
    state = {"G": g.state_dict(), "D": d.state_dict(), "G_ema": ema.state_dict(), "opt_G": {}, "opt_D": {},
             "scaler": {}, "step": step, "rng": {}, "config": config}
    save_checkpoint(run / "checkpoints" / "last.pt", state)
    if best:
        save_checkpoint(run / "checkpoints" / "best.pt", {**state, "step": step - 2})
    return run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(root, 0, 0, best=True)
    make_run(root, 25, 1)
    return root


def tree_bytes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_manifest_ids_and_determinism(tmp_path, runs, capsys):
    out1, out2 = tmp_path / "syn1", tmp_path / "syn2"
    def args(out: Path, seed: int = 3, batch: int = 2) -> list[str]:
        return ["synth", "--runs", str(runs), "--per-class", "5", "--seed", str(seed), "--batch", str(batch),
                "--device", "cpu", "--out", str(out)]

    code, out, err = run_cli(args(out1), capsys)
    assert code == 0, err
    assert "10 images" in out
    ds = open_dataset(out1)  # the dataset layout, readable by every stage
    assert ds.image_dir == out1 / "train"
    assert ds.ids[:5] == [synth_id(0, 3, k) for k in range(5)] and ds.ids[0] == "syn-c00-s3-000000"
    assert ds.targets == [(0,)] * 5 + [(25,)] * 5
    ds.require_channels(("red", "green", "blue"))
    assert not ds.missing(("red", "green", "blue")) and ds.channels_found() == ("red", "green", "blue")
    img = read_channel(ds.path(ds.ids[0], "green"))
    assert img.shape == (SIZE, SIZE) and img.dtype == np.uint8 and img.std() > 0

    man = json.loads((out1 / "manifest.json").read_text())
    assert man["tool"] == "protgan synth" and man["seed"] == 3 and man["total"] == 10 and man["size"] == SIZE
    assert man["channels"] == ["red", "green", "blue"] and man["truncation"] == 0.0 and man["filter"] is None
    c0 = man["classes"][0]
    ckpt = runs / "class00" / "checkpoints" / "last.pt"
    assert c0["checkpoint"] == str(ckpt) and c0["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert c0["step"] == 7 and c0["count"] == 5 and c0["weights"] == "G_ema"
    assert json.loads((out1 / "config.json").read_text())["per_class"] == 5

    # Same seed, other folder (and another batch size on CPU): the same bytes, file for file.
    code, _, err = run_cli(args(out2, batch=5), capsys)
    assert code == 0, err
    t1, t2 = tree_bytes(out1), tree_bytes(out2)
    t1.pop("config.json"), t2.pop("config.json")  # records --batch/--out
    man1, man2 = (json.loads((o / "manifest.json").read_text()) for o in (out1, out2))
    assert man1 == man2
    t1.pop("manifest.json"), t2.pop("manifest.json")
    assert t1 == t2
    # Re-running into the same (synth) folder is allowed and leaves the same files.
    before = tree_bytes(out1)
    code, _, err = run_cli(args(out1), capsys)
    assert code == 0, err
    assert tree_bytes(out1) == before
    # Another seed: other images.
    code, _, _ = run_cli(args(tmp_path / "s4", seed=4), capsys)
    assert code == 0
    a = (out1 / "train" / "syn-c00-s3-000000_green.png").read_bytes()
    b = (tmp_path / "s4" / "train" / "syn-c00-s4-000000_green.png").read_bytes()
    assert a != b


def test_smaller_rerun_removes_orphans_and_class_subset(tmp_path, runs):
    out = tmp_path / "syn"
    run_synth(SynthConfig(runs=str(runs), out=str(out), per_class=4, device="cpu"))
    man = run_synth(SynthConfig(runs=str(runs), out=str(out), per_class=2, classes="Nucleoplasm", device="cpu"))
    assert [e["class_index"] for e in man["classes"]] == [0]
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(
        f"{synth_id(0, 0, k)}_{ch}.png" for k in range(2) for ch in ("red", "green", "blue"))


def test_refuses_real_dataset_runs_and_foreign_folders(tmp_path, runs, capsys):
    real = make_dataset(tmp_path / "real", [(0,), (25,)], channels=("red", "green", "blue"))
    code, _, err = run_cli(["synth", "--runs", str(runs), "--out", str(real), "--per-class", "2"], capsys)
    assert_one_line_error(code, err, "train.csv", "real dataset")
    assert sorted(p.name for p in (real / "train").iterdir())[0] == "img0000_blue.png"  # nothing written
    assert not any(p.name.startswith("syn-") for p in (real / "train").iterdir())
    code, _, err = run_cli(["synth", "--runs", str(runs), "--out", str(real / "train" / "syn"), "--per-class", "2"], capsys)
    assert_one_line_error(code, err, "real dataset")
    code, _, err = run_cli(["synth", "--runs", str(runs), "--out", str(runs / "syn"), "--per-class", "2"], capsys)
    assert_one_line_error(code, err, "runs folder")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, _, err = run_cli(["synth", "--runs", str(runs), "--out", str(other), "--per-class", "2"], capsys)
    assert_one_line_error(code, err, "not empty")


def test_missing_generator_is_an_error_or_skipped(tmp_path, runs, capsys):
    args = ["synth", "--runs", str(runs), "--per-class", "2", "--device", "cpu", "--classes", "0,5"]
    code, _, err = run_cli(args + ["--out", str(tmp_path / "a")], capsys)
    assert_one_line_error(code, err, "class 5", "--skip-missing")
    assert not (tmp_path / "a" / "train.csv").exists()
    code, out, err = run_cli(args + ["--out", str(tmp_path / "b"), "--skip-missing"], capsys)
    assert code == 0, err
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert man["skipped_classes"] == [5] and [e["class_index"] for e in man["classes"]] == [0]
    # --checkpoint best: class 25 has none.
    code, _, err = run_cli(["synth", "--runs", str(runs), "--per-class", "2", "--checkpoint", "best",
                            "--out", str(tmp_path / "c")], capsys)
    assert_one_line_error(code, err, "best.pt", "class 25")
    man = run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "d"), per_class=2, checkpoint="best",
                                skip_missing=True, device="cpu"))
    assert man["classes"][0]["step"] == 5 and man["classes"][0]["checkpoint"].endswith("best.pt")


def test_ema_choice_changes_images(tmp_path, runs):
    run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "ema"), per_class=2, classes="0", device="cpu"))
    man = run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "raw"), per_class=2, classes="0",
                                use_ema=False, device="cpu"))
    assert man["classes"][0]["weights"] == "G"
    name = "train/syn-c00-s0-000000_red.png"
    assert (tmp_path / "ema" / name).read_bytes() != (tmp_path / "raw" / name).read_bytes()


def test_truncation_resamples_large_noise():
    z = sample_noise(2000, 100, seed=0, class_index=3, truncation=0.5)
    assert z.abs().max() <= 0.5 and z.std() > 0.2
    full = sample_noise(2000, 100, seed=0, class_index=3)
    assert full.abs().max() > 3.0
    assert torch.equal(z, sample_noise(2000, 100, seed=0, class_index=3, truncation=0.5))
    with pytest.raises(ProtganError, match="--truncation"):
        sample_noise(2, 100, seed=0, class_index=0, truncation=-1.0)


def test_truncation_option_reaches_the_images(tmp_path, runs):
    a = run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "a"), per_class=2, classes="25", device="cpu"))
    b = run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "b"), per_class=2, classes="25",
                              truncation=0.5, device="cpu"))
    assert a["truncation"] == 0.0 and b["truncation"] == 0.5
    name = "train/syn-c25-s0-000000_blue.png"
    assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_filter_by_discriminator_keeps_the_best_scored(tmp_path, runs):
    from protgan.data import to_signed_range
    from protgan.gan.checkpoint import load_checkpoint, load_generator
    from protgan.data import to_uint8_images

    man = run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "f"), per_class=4, classes="0",
                                filter_by="disc", keep=0.5, batch=3, device="cpu"))
    info = man["classes"][0]["filter"]
    assert info["candidates"] == 8 and info["kept"] == 4
    assert man["filter"] == {"by": "disc", "keep": 0.5}
    # Recompute the scores of all 8 candidates independently: the kept Ids are the 4 highest.
    ckpt = runs / "class00" / "checkpoints" / "last.pt"
    g, cfg = load_generator(ckpt)
    d = build_discriminator(SIZE, 3, WIDTH)
    d.load_state_dict(load_checkpoint(ckpt)["D"])
    d.eval()
    with torch.no_grad():
        imgs = to_uint8_images(g(sample_noise(8, 100, 0, 0)))
        scores = d(to_signed_range(imgs)).numpy()
    best = sorted(np.argsort(-scores, kind="stable")[:4].tolist())
    assert open_dataset(tmp_path / "f").ids == [synth_id(0, 0, k) for k in best]
    assert info["mean_score_kept"] > info["mean_score_dropped"]
    # The kept images are the candidates themselves.
    k = best[0]
    written = read_channel(tmp_path / "f" / "train" / f"{synth_id(0, 0, k)}_green.png")
    np.testing.assert_array_equal(written, imgs[k, 1].numpy())


def test_bad_options(tmp_path, runs, capsys):
    base = ["synth", "--runs", str(runs), "--out", str(tmp_path / "o")]
    for extra, needle in ((["--per-class", "0"], "--per-class"), (["--keep", "1.5", "--filter-by", "disc"], "--keep"),
                          (["--filter-by", "vibes"], "--filter-by"), (["--checkpoint", "first"], "--checkpoint"),
                          (["--filter-by", "ckpt:/no/such.pt"], "/no/such.pt"), (["--truncation", "-1"], "--truncation")):
        code, _, err = run_cli(base + extra, capsys)
        assert_one_line_error(code, err, needle)
    code, _, err = run_cli(["synth", "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "o")], capsys)
    assert_one_line_error(code, err, "none")
    make_run(runs, 3, 2, channels=("green",))
    code, _, err = run_cli(base, capsys)
    assert_one_line_error(code, err, "one format")


def make_classifier_checkpoint(path: Path, classes=(0, 25), channels=("red", "green", "blue"), size=32) -> Path:
    """A protgan classifier checkpoint (the classify engine's format) with random resnet18 weights."""
    from protgan.classify.models.registry import create_model
    from protgan.classify.train import CHECKPOINT_FORMAT, save_checkpoint as save_classifier

    torch.manual_seed(0)
    model = create_model("resnet18", len(classes), len(channels), pretrained=False, head="linear")
    save_classifier(path, {"format": CHECKPOINT_FORMAT, "meta": model.meta(), "model": model.state_dict(),
                           "classes": list(classes), "channels": list(channels), "size": size, "epoch": 1,
                           "metrics": {}, "thresholds": None, "config": {}})
    return path


@pytest.fixture(scope="module")
def classifier_ckpt(tmp_path_factory) -> Path:
    return make_classifier_checkpoint(tmp_path_factory.mktemp("clf") / "clf.pt")


def test_filter_by_classifier_confidence(tmp_path, runs, classifier_ckpt):
    from protgan.classify.embedding import classifier_scorer, load_protgan_classifier
    from protgan.gan.checkpoint import load_generator
    from protgan.data import to_uint8_images

    ckpt = classifier_ckpt
    man = run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "f"), per_class=3, classes="25",
                                filter_by=f"ckpt:{ckpt}", keep=0.5, device="cpu"),
                    classifier_scorer=classifier_scorer)
    assert man["classes"][0]["filter"]["candidates"] == 6
    model, _ = load_protgan_classifier(ckpt)
    g, _ = load_generator(runs / "class25" / "checkpoints" / "last.pt")
    with torch.no_grad():
        probs = model.predict_proba(to_uint8_images(g(sample_noise(6, 100, 0, 25))).float() / 255)[:, 1].numpy()
    best = sorted(np.argsort(-probs, kind="stable")[:3].tolist())
    assert open_dataset(tmp_path / "f").ids == [synth_id(25, 0, k) for k in best]
    # A class the classifier does not predict, and other channels: one-line errors.
    with pytest.raises(ProtganError, match="does not predict class 3"):
        make_run(runs, 3, 5)
        run_synth(SynthConfig(runs=str(runs), out=str(tmp_path / "g"), per_class=2, classes="3",
                              filter_by=f"ckpt:{ckpt}", device="cpu"), classifier_scorer=classifier_scorer)


def test_classifier_embedding_extractor(classifier_ckpt):
    from protgan.evaluation.fid import make_extractor

    ext = make_extractor(f"ckpt:{classifier_ckpt}", torch.device("cpu"))
    feats = ext(torch.randint(0, 255, (3, 3, 48, 48), dtype=torch.uint8), ("red", "green", "blue"))
    assert feats.shape == (3, 512) and ext.dim == 512  # resnet18's pooled features
    assert feats.std(0).mean() > 0
    with pytest.raises(ProtganError, match="takes channels red,green,blue"):
        ext(torch.zeros(1, 1, 32, 32, dtype=torch.uint8), ("green",))


def test_interrupted_run_resumes_finished_classes(tmp_path, runs):
    out = tmp_path / "syn"
    cfg = SynthConfig(runs=str(runs), out=str(out), per_class=3, batch=2, device="cpu")

    def stop_in_class_25(label: str, done: int, total: int) -> None:
        if "class 25" in label:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_synth(cfg, progress=stop_in_class_25)
    assert not (out / "train.csv").exists() and not (out / "manifest.json").exists()
    labels: list[str] = []
    run_synth(cfg, progress=lambda label, done, total: labels.append(label))
    assert "class 0 (done before)" in labels and any(lab.startswith("class 25") for lab in labels)
    clean = tmp_path / "clean"
    run_synth(SynthConfig(runs=str(runs), out=str(clean), per_class=3, batch=2, device="cpu"))
    resumed, fresh = tree_bytes(out), tree_bytes(clean)
    resumed.pop("config.json"), fresh.pop("config.json")  # they name their own --out
    assert resumed == fresh
    assert not (out / ".synth-progress.json").exists()


def test_classes_top_k_is_counted_on_the_generators_training_data(tmp_path):
    """`synth --classes top2` (the issue-14 drift: only classify/compare/train-gan took topK): the two most
    frequent classes of the runs' training table that have a generator; a table it cannot read is one line."""
    from tests.conftest import make_dataset

    data = make_dataset(tmp_path / "data", [(25,)] * 5 + [(0,)] * 3 + [(2,)] * 1, size=32, channels=("green",))
    root = tmp_path / "runs"
    for c, seed in ((0, 0), (25, 1), (2, 2)):
        make_run(root, c, seed, data=data)
    man = run_synth(SynthConfig(runs=str(root), out=str(tmp_path / "syn"), per_class=2, classes="top2", device="cpu"))
    assert [e["class_index"] for e in man["classes"]] == [25, 0]  # by frequency in DATA/train.csv
    with pytest.raises(ProtganError, match="--classes top5: counted on the generators' training data"):
        bad = tmp_path / "runs_nodata"
        make_run(bad, 0, 0)
        run_synth(SynthConfig(runs=str(bad), out=str(tmp_path / "syn2"), per_class=2, classes="top5", device="cpu"))
