"""The run-folder contract (protgan.core.runfolder) and train-gan under it: never inside an input dataset,
one run per folder (a lock), a resume with other training options refused naming them, --out faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from protgan.core.errors import ProtganError
from protgan.core.runfolder import (
    LOCK_FILE, RunLock, check_inputs, check_out_file, check_out_path, check_same_options, option_differences,
)
from protgan.gan.train import GanTrainer, TrainGanConfig
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset, tiny_gan_config


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("rf") / "d", [(0,)] * 8, size=32, channels=("red", "green", "blue"))


def _cfg(data: Path, out: Path, **kw) -> TrainGanConfig:
    return tiny_gan_config(data, out, **kw)


def _gan_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train-gan", "--data", str(data), "--class", "0", "--out", str(out), "--size", "32", "--steps", "2",
            "--batch-size", "4", "--g-width", "16", "--d-width", "16", "--device", "cpu", "--workers", "0",
            "--sample-every", "0", *extra]


# ----------------------------------------------------------------------------------- the module
def test_out_inside_or_equal_to_an_input_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    for out in (d, d / "train" / "run", tmp_path / "x" / ".." / "d"):
        with pytest.raises(ProtganError, match=r"--out .*(is|is inside) the input --data .*never writes inside"):
            check_inputs(out, {"--data": d})
    check_inputs(tmp_path / "elsewhere", {"--data": d})
    # the other direction: an input inside out is refused where the stage writes over it
    with pytest.raises(ProtganError, match="would write over"):
        check_inputs(tmp_path, {"--data": d}, writes=("d", "config.json"))
    check_inputs(tmp_path, {"--data": d}, writes=("checkpoints", "config.json"))
    with pytest.raises(ProtganError, match="would write over"):
        check_inputs(tmp_path, {"--data": d}, writes=None)


def test_out_path_faults(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ProtganError, match=r"file.txt: is an existing file, not a folder"):
        check_out_path(f)
    with pytest.raises(ProtganError, match=r"file.txt is a file, so no folder can be made"):
        check_out_path(f / "sub" / "run")
    with pytest.raises(ProtganError, match=r"is a folder; give a file name"):
        check_out_file(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes (the file cases above cover it)")
        with pytest.raises(ProtganError, match=r"ro/run: not writable"):
            check_out_path(ro / "run")
    finally:
        ro.chmod(0o755)


def test_same_options_names_every_difference() -> None:
    saved = {"seed": 0, "batch_size": 8, "lr_d": 0.01, "data": "/a", "steps": 10, "device": "cpu", "old": 1}
    new = {"seed": 1, "batch_size": 16, "lr_d": 1.0, "data": "/b", "steps": 20, "device": "cuda", "old": 1, "added": 3}
    diffs = option_differences(saved, new, may_differ=("steps",), path_keys=("data",))
    assert [d.split("=")[0] for d in diffs] == ["seed", "batch_size", "lr_d", "data"]
    with pytest.raises(ProtganError, match=r"trained with seed=0, not 1; batch_size=8, not 16; lr_d=0.01, not 1.0"):
        check_same_options("RUN", saved, new, may_differ=("steps",))
    check_same_options("RUN", saved, {**saved, "steps": 99, "device": "cuda", "workers": 4}, may_differ=("steps",))


def test_lock_refuses_a_live_holder_and_takes_over_a_stale_one(tmp_path: Path) -> None:
    warnings: list[str] = []
    with RunLock(tmp_path, "a") as lock:
        info = json.loads((tmp_path / LOCK_FILE).read_text())
        assert info["pid"] == os.getpid() and info["host"] and info["time"]
        with pytest.raises(ProtganError, match=rf"another a is writing this folder \(pid {os.getpid()}"):
            RunLock(tmp_path, "b").acquire()
        assert lock.held
    assert not (tmp_path / LOCK_FILE).exists()
    # a lock left by a process that died (kill -9): taken over, with a warning
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "time": "t"}))
    with RunLock(tmp_path, warn=warnings.append):
        pass
    assert len(warnings) == 1 and "stale lock" in warnings[0] and str(dead.pid) in warnings[0]
    # another host's lock cannot be checked: refused
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "time": "t"}))
    with pytest.raises(ProtganError, match="pid 1 on elsewhere"):
        RunLock(tmp_path).acquire()


# ------------------------------------------------------------------------------------- train-gan
@pytest.mark.parametrize("where", ["D", "D/train/run"])
def test_train_gan_never_writes_into_its_data(where: str, data: Path, capsys: pytest.CaptureFixture) -> None:
    out = data if where == "D" else data / "train" / "run"
    before = sorted(p.name for p in data.rglob("*"))
    code, _, err = run_cli(_gan_args(data, out), capsys)
    assert_one_line_error(code, err, "--out", "input --data", "never writes inside")
    assert sorted(p.name for p in data.rglob("*")) == before


def test_train_gan_two_runs_into_one_folder(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from protgan.core.runfolder import RunLock; "
         f"RunLock({str(out)!r}, 'train-gan').acquire(); print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli(_gan_args(data, out, "--seed", "1"), capsys)
        assert_one_line_error(code, err, str(out), "another train-gan is writing this folder", f"pid {holder.pid}")
        assert not (out / "config.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the holder was killed (-9): its lock is stale, the next run takes over with a warning
    code, _, err = run_cli(_gan_args(data, out), capsys)
    assert code == 0 and "stale lock" in err
    assert not (out / LOCK_FILE).exists()


@pytest.mark.parametrize("change", [{"seed": 1}, {"batch_size": 2}, {"lr_d": 0.5}, {"data": "other"},
                                    {"seed": 3, "lr_d": 0.5}])
def test_resume_with_other_training_options_is_refused(change: dict, data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    GanTrainer(_cfg(data, run)).fit()
    if change.get("data") == "other":
        other = make_dataset(tmp_path / "other", [(0,)] * 8, size=32, channels=("red", "green", "blue"), seed=5)
        change = {"data": str(other)}
    config_before = (run / "config.json").read_text()
    with pytest.raises(ProtganError) as exc:
        GanTrainer(_cfg(**{"data": data, "out": run, "steps": 3, **change})).fit()
    for key in change:
        assert f"{key}=" in str(exc.value)
    assert "trained with" in str(exc.value) and "\n" not in str(exc.value)
    assert (run / "config.json").read_text() == config_before  # config.json does not claim the new values
    assert not (run / LOCK_FILE).exists()


def test_resume_accepts_more_steps_and_run_independent_options(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    GanTrainer(_cfg(data, run)).fit()
    same_folder = f"{data.parent}/./{data.name}/"  # the same --data spelled otherwise
    result = GanTrainer(_cfg(same_folder, run, steps=3, log_every=3, workers=0, device="cpu")).fit()
    assert result.status == "done" and result.step == 3
    # the same run asked again: already done (no lock left behind)
    assert GanTrainer(_cfg(data, run, steps=3)).fit().status == "already-done"
    assert not (run / LOCK_FILE).exists()


def test_train_gan_out_is_a_file(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "taken"
    f.write_text("x")
    code, _, err = run_cli(_gan_args(data, f), capsys)
    assert_one_line_error(code, err, str(f), "existing file")
    code, _, err = run_cli(_gan_args(data, f / "run"), capsys)
    assert_one_line_error(code, err, str(f), "is a file")
