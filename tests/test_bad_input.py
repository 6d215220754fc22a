"""The broken-dataset corpus: each case gives one clear line naming the file/row, a non-zero exit, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset


def _base(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "d", [(0,), (25,), (0, 21)], size=16)


def _csv(root: Path, text: str) -> None:
    (root / "train.csv").write_text(text)


CASES = {
    "wrong header": (lambda r: _csv(r, "Image,Label\nimg0000,0\n"), ["row 1", "header"]),
    "non-integer target": (lambda r: _csv(r, "Id,Target\nimg0000,3 x\n"), ["row 2", "'x'"]),
    "class out of range": (lambda r: _csv(r, "Id,Target\nimg0000,28\n"), ["row 2", "28 out of range"]),
    "duplicate id": (lambda r: _csv(r, "Id,Target\nimg0000,0\nimg0001,1\nimg0000,2\n"), ["row 4", "duplicate Id"]),
    "empty target": (lambda r: _csv(r, "Id,Target\nimg0000,\n"), ["row 2", "empty Target"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_label_table(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _base(tmp_path)
    CASES[case][0](root)
    code, _, err = run_cli(["info", str(root)], capsys)
    assert_one_line_error(code, err, "train.csv", *CASES[case][1])


def test_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(["info", str(tmp_path / "nope")], capsys)
    assert_one_line_error(code, err, "nope", "does not exist")


def test_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["info", str(tmp_path / "empty")], capsys)
    assert_one_line_error(code, err, "empty", "empty folder")


@pytest.mark.parametrize("damage", ["missing", "truncated", "zero-byte"])
def test_damaged_images_listed_by_info_and_fatal_for_cache(damage: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _base(tmp_path)
    target = root / "train" / "img0001_yellow.png"
    if damage == "missing":
        target.unlink()
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:60])
    else:
        target.write_bytes(b"")
    code, out, err = run_cli(["info", str(root)], capsys)
    assert code == 0 and "img0001_yellow.png" in out and "1 problems" in out
    code, out, err = run_cli(["info", str(root), "--strict"], capsys)
    assert code == 1
    code, _, err = run_cli(["cache", str(root), "--size", "16"], capsys)
    assert_one_line_error(code, err, "img0001_yellow.png")
    assert not list((root / "cache").glob("*.npy"))  # nothing half-written
    # A missing yellow is no problem for the channels that do not need it.
    if damage == "missing":
        code, out, _ = run_cli(["cache", str(root), "--size", "16", "--channels", "rgb"], capsys)
        assert code == 0


def test_class_with_no_images(tmp_path: Path) -> None:
    from protgan.data import open_dataset
    from protgan.core.errors import ProtganError

    ds = open_dataset(_base(tmp_path))
    with pytest.raises(ProtganError, match=r"class 5 \(Nuclear bodies\) has no images"):
        ds.require_classes([0, 5])


def test_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _base(tmp_path)
    code, _, err = run_cli(["cache", str(root), "--size", "4"], capsys)
    assert_one_line_error(code, err, "--size")
    code, _, err = run_cli(["info", str(root), "--classes", "Nucleus"], capsys)
    assert_one_line_error(code, err, "unknown class")
    code, _, err = run_cli(["info", str(root), "--channels", "purple"], capsys)
    assert_one_line_error(code, err, "--channels")


# ------------------------------------------------------------------ file-system faults (issue 15, item 6)
def _fs_world(tmp_path: Path) -> dict[str, Path]:
    import json

    data = make_dataset(tmp_path / "d", [(0,)] * 4 + [(25,)] * 4, size=16)
    taken = tmp_path / "taken.txt"
    taken.write_text("a file, not a folder")
    runs = tmp_path / "runs" / "class_0"
    (runs / "checkpoints").mkdir(parents=True)
    (runs / "config.json").write_text(json.dumps({"class_index": 0, "size": 16, "channels": ["red", "green", "blue"],
                                                  "data": str(data)}))
    (runs / "checkpoints" / "last.pt").write_bytes(b"never read: the --out check comes first")
    return {"data": data, "taken": taken, "runs": runs.parent, "tmp": tmp_path}


def _fs_command(name: str, w: dict[str, Path], out: Path) -> list[str]:
    d = str(w["data"])
    return {
        "train-gan": ["train-gan", "--data", d, "--class", "0", "--out", str(out), "--size", "32", "--batch-size", "2",
                      "--steps", "1", "--g-width", "8", "--d-width", "8", "--device", "cpu", "--workers", "0"],
        "classify": ["classify", "--data", d, "--model", "vgg16", "--no-pretrained", "--out", str(out),
                     "--classes", "0,25", "--size", "32", "--epochs", "1", "--device", "cpu"],
        "fid": ["fid", "--real", d, "--fake", d, "--out", str(out), "--device", "cpu"],
        "compare": ["compare", "--data", d, "--synthetic", d, "--out", str(out), "--device", "cpu"],
        "cache": ["cache", d, "--size", "16", "--out", str(out)],
        "enhance": ["enhance", d, "--out", str(out)],
        "synth": ["synth", "--runs", str(w["runs"]), "--out", str(out), "--per-class", "1", "--device", "cpu"],
        "predict": ["predict", d, "--checkpoint", str(w["tmp"] / "none.pt"), "--out", str(out), "--device", "cpu"],
    }[name]


@pytest.mark.parametrize("command", ["train-gan", "classify", "fid", "compare", "cache", "enhance", "synth"])
def test_out_that_is_an_existing_file(command: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    w = _fs_world(tmp_path)
    code, _, err = run_cli(_fs_command(command, w, w["taken"]), capsys)
    assert_one_line_error(code, err, str(w["taken"]))
    assert w["taken"].read_text() == "a file, not a folder"


def test_predict_out_that_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    w = _fs_world(tmp_path)
    (tmp_path / "folder").mkdir()
    code, _, err = run_cli(_fs_command("predict", w, tmp_path / "folder"), capsys)
    assert_one_line_error(code, err, str(tmp_path / "folder"), "is a folder")


@pytest.mark.parametrize("command", ["enhance", "train-gan", "synth", "predict", "classify"])
def test_unwritable_output_folder(command: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    w = _fs_world(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root: chmod does not stop writes; a path under a file cannot be made either
            target = w["taken"] / "out"
        else:
            target = ro / "out"
        out = target / "sub.csv" if command == "predict" else target
        code, _, err = run_cli(_fs_command(command, w, out), capsys)
        assert_one_line_error(code, err, str(target.parent))
        assert not (ro / "out").exists()
    finally:
        ro.chmod(0o755)


def test_os_error_during_a_run_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # a fault no up-front check can see (the disk fills, a folder turns read-only mid-run): one line, the path
    import errno

    import protgan.data.cache as cache

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "d" / "cache" / "x.npy"))

    monkeypatch.setattr(cache, "cache_paths", full)
    root = make_dataset(tmp_path / "d", [(0,)], size=16)
    code, _, err = run_cli(["cache", str(root), "--size", "16"], capsys)
    assert_one_line_error(code, err, "x.npy", "No space left", "disk is full")


# ------------------------------------------------- never inside an input, one line for the rest of issue 15
@pytest.mark.parametrize("command", ["train-gan", "classify", "fid", "compare", "enhance"])
@pytest.mark.parametrize("where", ["the dataset", "inside it"])
def test_out_inside_the_input_dataset(command: str, where: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # (cache is the exception by design: DATA/cache is where every loader looks for it)
    w = _fs_world(tmp_path)
    out = w["data"] if where == "the dataset" else w["data"] / "train" / "run"
    before = sorted(str(p) for p in w["data"].rglob("*"))
    code, _, err = run_cli(_fs_command(command, w, out), capsys)
    assert_one_line_error(code, err, "--out", "input")
    assert sorted(str(p) for p in w["data"].rglob("*")) == before


@pytest.mark.parametrize("args, needles", [
    (["info", "--bogus"], ["No such option", "--bogus"]),
    (["info"], ["Missing argument"]),
    (["cache", "x", "--size", "abc"], ["--size"]),
    (["train-gan", "--steps", "abc"], ["--steps"]),
])
def test_usage_errors_are_one_line(args: list[str], needles: list[str], capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert_one_line_error(code, err, *needles)


def test_malicious_checkpoint_for_predict(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.test_safe_load import _evil

    marker = tmp_path / "ran"
    evil = _evil(tmp_path / "evil.pt", marker)
    code, _, err = run_cli(["predict", str(_base(tmp_path)), "--checkpoint", str(evil), "--device", "cpu"], capsys)
    assert_one_line_error(code, err, "evil.pt", "unsafe unpickler")
    assert not marker.exists()


def test_classify_lists_every_damaged_image_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    w = _fs_world(tmp_path)
    (w["data"] / "train" / "img0001_green.png").write_bytes(b"")
    (w["data"] / "train" / "img0005_blue.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    code, _, err = run_cli(_fs_command("classify", w, tmp_path / "run"), capsys)
    assert_one_line_error(code, err, "2 damaged or missing images", "img0001_green.png", "img0005_blue.png")
    assert not list((tmp_path / "run").glob("fold_*"))


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_any_command_interrupted_says_so(sig: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # typer >= 0.20 turns a KeyboardInterrupt into a silent exit 130; enhance used to print nothing
    import signal
    import time

    import protgan.enhance.pipeline as pipeline

    def interrupted(*a, **k):
        os.kill(os.getpid(), getattr(signal, sig))
        time.sleep(5)
        raise AssertionError("the signal did not stop the command")

    monkeypatch.setattr(pipeline, "run_enhance", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = run_cli(["enhance", str(_base(tmp_path)), "--out", str(tmp_path / "enh")], capsys)
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is before


def test_rgb_png_given_as_one_channel_warns_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import cv2
    import numpy as np

    import protgan.data.imageio as imageio
    from protgan.data.imageio import read_channel_raw

    imageio._colour_warned.clear()
    grey3 = np.repeat(np.arange(64, dtype=np.uint8).reshape(8, 8)[..., None], 3, axis=2)
    cv2.imwrite(str(tmp_path / "grey.png"), grey3)
    assert read_channel_raw(tmp_path / "grey.png").shape == (8, 8)
    assert capsys.readouterr().err == ""  # equal planes: a grey image saved as RGB, nothing to say
    colour = grey3.copy()
    colour[..., 2] = 255
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), colour)
        read_channel_raw(tmp_path / name)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "a.png" in err and "colour (RGB)" in err
    imageio._colour_warned.clear()
