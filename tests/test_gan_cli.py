"""`protgan train-gan`: a short run end to end, Ctrl-C, and bad input as one line."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from protgan.gan import load_checkpoint
from protgan.gan.train import GanTrainer
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    targets = [(0,)] * 10 + [(25,)] * 3 + [(0, 25)] * 2
    return make_dataset(tmp_path_factory.mktemp("cli") / "d", targets, size=32, channels=("red", "green", "blue"))


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train-gan", "--data", str(data), "--class", "0", "--out", str(out), "--size", "32", "--batch-size", "4",
            "--g-width", "32", "--d-width", "32", "--device", "cpu", "--workers", "0", *extra]


def test_train_gan_command(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    code, stdout, err = run_cli(_args(data, out, "--steps", "3", "--log-every", "1", "--sample-every", "2",
                                      "--class", "Nucleoplasm", "--diffaug", "color,cutout"), capsys)
    assert code == 0, err
    assert "10 images (--select only" in stdout and "done: step 3" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["class_index"] == 0 and config["diffaug"] == ["color", "cutout"] and config["g_width"] == 32
    assert (out / "samples" / "step_000002.png").exists() and (out / "samples" / "step_000003.png").exists()
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3
    # the same run (log/sample intervals may differ; a training option such as --diffaug may not)
    code, stdout, _ = run_cli(_args(data, out, "--steps", "3", "--diffaug", "color,cutout"), capsys)
    assert code == 0 and "already trained to step 3" in stdout
    code, _, err = run_cli(_args(data, out, "--steps", "3"), capsys)
    assert_one_line_error(code, err, "diffaug=['color', 'cutout'], not []")
    code, _, err = run_cli(_args(data, out, "--steps", "4", "--g-upsample", "resize"), capsys)
    assert_one_line_error(code, err, "g_upsample='transposed'", "not 'resize'")
    code, stdout, _ = run_cli(_args(data, out, "--steps", "4", "--select", "any"), capsys)
    assert_one_line_error(code, _, "select='only'", "not 'any'", "--resume never")


def test_ctrl_c_from_the_command_line(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_after_step = GanTrainer._after_step

    def after_step(self: GanTrainer) -> None:
        real_after_step(self)
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(GanTrainer, "_after_step", after_step)
    out = tmp_path / "run"
    code, _, err = run_cli(_args(data, out, "--steps", "100"), capsys)
    assert code == 130
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "interrupted at step 2" in lines[0] and "Traceback" not in err
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 2


BAD = {
    "size not a power of two": (["--size", "48"], ["--size 48", "power of two"]),
    "size too large": (["--size", "1024"], ["--size 1024"]),
    "unknown class name": (["--class", "Nucleus-ish"], ["unknown class 'Nucleus-ish'"]),
    "class out of range": (["--class", "28"], ["class index 28 out of range"]),
    # fewer images than a batch trains with replacement (test_retention_small_class.py); none is an error
    "no images": (["--class", "21"], ["class 21 (Plasma membrane) has no images"]),
    "class not in subset": (["--classes", "25,2"], ["--class 0 (Nucleoplasm) is not in --classes 25,2"]),
    "bad select": (["--select", "some"], ["--select 'some'"]),
    "bad channels": (["--channels", "purple"], ["--channels 'purple'"]),
    "bad diffaug": (["--diffaug", "zoom"], ["--diffaug", "'zoom'"]),
    "bad steps": (["--steps", "0"], ["--steps 0"]),
    "bad upsample": (["--g-upsample", "bilinear"], ["--g-upsample 'bilinear'"]),
    "missing data": (["--data", "/nonexistent/protgan"], ["/nonexistent/protgan"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line(case: str, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    extra, needles = BAD[case]
    code, _, err = run_cli(_args(data, tmp_path / "run", *extra), capsys)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "run").exists()  # nothing written


def test_missing_channel_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_dataset(tmp_path / "d", [(0,)] * 6, size=32, channels=("red", "green", "blue"))
    (root / "train" / "img0003_blue.png").unlink()
    code, _, err = run_cli(_args(root, tmp_path / "run"), capsys)
    assert_one_line_error(code, err, "img0003", "blue")
    code, _, err = run_cli(_args(root, tmp_path / "run", "--channels", "rgby"), capsys)
    assert_one_line_error(code, err, "yellow")


def test_resize_generator_run_reloads_as_resize(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from torch import nn

    from protgan.gan.checkpoint import load_generator

    out = tmp_path / "run"
    code, _, err = run_cli(_args(data, out, "--steps", "2", "--g-upsample", "resize"), capsys)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["g_upsample"] == "resize"
    g, _ = load_generator(out / "checkpoints" / "last.pt")  # strict load: the architecture must match
    assert any(isinstance(m, nn.Upsample) for m in g.modules())
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
