"""The broken-dataset corpus: each case gives one clear line naming the file/row, a non-zero exit, no traceback."""

from __future__ import annotations

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
