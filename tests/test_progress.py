"""Progress that reaches a log file: plain lines when stdout is not a terminal, at --log-interval, with
each loop's own figures; rank 0 only. Tested on the Reporter and through a pipe on train-gan and classify."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from protgan.core.progress import LogOptions, Reporter, format_seconds
from tests.conftest import make_dataset

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?P<cmd>\S+) (?P<stage>.+?) (?P<done>\d+)/(?P<total>\d+) "
                  r"(?P<pct>[\d.]+)%")


def _pipe_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200), buf  # a StringIO is not a terminal: plain lines


def test_plain_lines_at_the_interval_with_figures(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("protgan.core.progress.time.monotonic", lambda: clock[0])
    console, buf = _pipe_console()
    with Reporter("train-gan", console, LogOptions(log_interval=30), unit="step") as r:
        for step in range(1, 11):
            clock[0] += 10  # 10 s a step: a line at the first update, then every 3 steps (30 s), and the last
            r.update("train", step, 10)
            r.figures(D=0.51234, G=1.5, **{"D(x)": 0.7})
    lines = buf.getvalue().strip().splitlines()
    steps = [int(LINE.match(ln)["done"]) for ln in lines]
    assert steps == [1, 4, 7, 10]
    first, last = lines[1], lines[-1]
    assert " train-gan train 4/10 40.0% " in first and "step/s" in first and "ETA 1m00s" in first
    assert first.endswith("| D 0.5123  G 1.5  D(x) 0.7")
    assert "ETA" not in last and "elapsed" in last


def test_interval_zero_prints_every_update_and_stages_close(monkeypatch) -> None:
    console, buf = _pipe_console()
    with Reporter("classify", console, LogOptions(log_interval=0), unit="img") as r:
        for done in (8, 16, 24):
            r.update("fold 0 epoch 1/2", done, 24)
        r.log("fold 0 epoch 1/2: train loss 0.6 macro F1 0.3")
        r.update("fold 0 epoch 2/2", 8, 24)
    lines = buf.getvalue().strip().splitlines()
    assert [LINE.match(ln)["done"] for ln in lines if LINE.match(ln)] == ["8", "16", "24", "8", "8"]
    assert "fold 0 epoch 1/2: train loss 0.6 macro F1 0.3" in lines


def test_only_rank_zero_reports(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "1")
    console, buf = _pipe_console()
    with Reporter("train-gan", console, LogOptions(log_interval=0)) as r:
        r.update("train", 1, 2)
        r.log("hello")
    assert buf.getvalue() == ""


def test_bad_log_options() -> None:
    from protgan.core.errors import ProtganError

    with pytest.raises(ProtganError, match="--log-format"):
        Reporter("x", _pipe_console()[0], LogOptions(log_format="fancy"))
    with pytest.raises(ProtganError, match="--log-interval"):
        Reporter("x", _pipe_console()[0], LogOptions(log_interval=-1))
    assert format_seconds(59) == "59s" and format_seconds(61) == "1m01s" and format_seconds(3700) == "1h01m"


def _piped(args: list[str]) -> list[str]:
    proc = subprocess.run([sys.executable, "-m", "protgan", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout.splitlines()


def test_train_gan_through_a_pipe(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", [(0,)] * 8, size=32, channels=("red", "green", "blue"))
    lines = _piped(["train-gan", "--data", str(data), "--class", "0", "--out", str(tmp_path / "run"), "--size", "32",
                    "--batch-size", "4", "--g-width", "16", "--d-width", "16", "--steps", "4", "--log-every", "2",
                    "--device", "cpu", "--workers", "0", "--log-interval", "0"])
    progress = [ln for ln in lines if LINE.match(ln)]
    assert [LINE.match(ln)["done"] for ln in progress] == ["1", "2", "3", "4"]
    assert all(LINE.match(ln)["cmd"] == "train-gan" and LINE.match(ln)["stage"] == "train" for ln in progress)
    assert "D(x)" in progress[-1] and "G " in progress[-1]  # the loop's figures (from step 2's metrics row)
    assert any(ln.startswith("done: step 4") for ln in lines)
    assert not any("\x1b[" in ln or "━" in ln for ln in lines)  # no terminal control codes or bars in a log


def test_classify_through_a_pipe(tmp_path: Path) -> None:
    targets = [(0,), (25,), (0, 25), (21,), (2, 0), (23,), (0, 21), (25, 2), (2,), (23, 0), (21, 25), (0,)] * 2
    data = make_dataset(tmp_path / "d", targets, size=32, channels=("red", "green", "blue"))
    lines = _piped(["classify", "--data", str(data), "--model", "resnet18", "--out", str(tmp_path / "run"),
                    "--size", "32", "--folds", "2", "--fold", "0", "--epochs", "1", "--batch-size", "8",
                    "--no-pretrained", "--head", "linear", "--augment", "none", "--workers", "0", "--device", "cpu",
                    "--log-interval", "0"])
    progress = [LINE.match(ln) for ln in lines if LINE.match(ln)]
    assert progress and all(m["cmd"] == "classify" and m["stage"] == "fold 0 epoch 1/1" for m in progress)
    assert progress[-1]["done"] == progress[-1]["total"]
    assert any(re.search(r"fold 0 epoch 1/1: .*train loss [\d.]+ macro F1 [\d.]+ \| val loss", ln) for ln in lines)


def test_a_line_every_interval_even_without_progress() -> None:
    """A stage that makes no progress for a while (one long epoch, one compare cell) still shows up."""
    import time

    console, buf = _pipe_console()
    with Reporter("compare", console, LogOptions(log_interval=0.2)) as r:
        r.update("cells", 0, 8)
        time.sleep(1.0)  # the heartbeat looks every min(interval, 5 s)
    lines = [ln for ln in buf.getvalue().splitlines() if LINE.match(ln)]
    assert len(lines) >= 3 and all(" compare cells 0/8 0.0% " in ln for ln in lines)
