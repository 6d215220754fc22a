"""No checkpoint runs code: every .pt protgan reads is loaded with torch.load(weights_only=True). A file whose
pickle would create a marker file is refused with one line (the marker never appears); an older protgan
checkpoint that needs the full unpickler gets a one-line error naming the converter."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from protgan.core.errors import ProtganError
from protgan.core.safeload import CONVERT_HINT, convert_legacy, load_weights, rng_state, set_rng_state
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import make_dataset


class _Payload:
    """What a malicious .pt holds: unpickling it calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"G": {}, "config": _Payload(marker), "step": 1, "format": "protgan-classifier/1",
                "model": {}, "meta": _Payload(marker)}, path)
    return path


def test_the_payload_is_real(tmp_path: Path) -> None:
    # the test below means something only if the unsafe unpickler would run the payload
    marker = tmp_path / "ran"
    torch.load(_evil(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    data = make_dataset(tmp_path / "data", [(0,)] * 4 + [(25,)] * 4, size=16, channels=("red", "green", "blue"))
    fake = make_dataset(tmp_path / "fake", [(0,)] * 4, size=16, channels=("red", "green", "blue"), seed=1)
    return {"data": data, "fake": fake, "marker": tmp_path / "PAYLOAD_RAN", "tmp": tmp_path}


def _cases(w: dict[str, Path]) -> dict[str, tuple[list[str], Path]]:
    tmp, m = w["tmp"], w["marker"]
    evil = _evil(tmp / "evil.pt", m)
    run = tmp / "runs" / "class_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"class_index": 0, "size": 16, "channels": ["red", "green", "blue"]}))
    _evil(run / "checkpoints" / "last.pt", m)
    resume = tmp / "gan_run"
    _evil(resume / "checkpoints" / "last.pt", m)
    return {
        "predict --checkpoint": (["predict", str(w["data"]), "--checkpoint", str(evil), "--device", "cpu"], evil),
        "fid --features ckpt:": (["fid", "--real", str(w["data"]), "--fake", str(w["fake"]), "--class", "0",
                                  "--features", f"ckpt:{evil}", "--device", "cpu"], evil),
        "synth --runs": (["synth", "--runs", str(tmp / "runs"), "--out", str(tmp / "syn"), "--per-class", "2",
                          "--device", "cpu"], run / "checkpoints" / "last.pt"),
        "synth --filter-by ckpt:": None,  # needs a real generator: covered by the classifier loader below
        "train-gan resume": (["train-gan", "--data", str(w["data"]), "--class", "0", "--out", str(resume),
                              "--size", "32", "--steps", "2", "--batch-size", "2", "--g-width", "16",
                              "--d-width", "16", "--device", "cpu", "--workers", "0"],
                             resume / "checkpoints" / "last.pt"),
    }


@pytest.mark.parametrize("case", ["predict --checkpoint", "fid --features ckpt:", "synth --runs", "train-gan resume"])
def test_malicious_checkpoint_never_runs(case: str, world: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    args, evil = _cases(world)[case]
    code, _, err = run_cli(args, capsys)
    assert not world["marker"].exists(), "the pickle's payload ran"
    assert_one_line_error(code, err, str(evil), "unsafe unpickler", CONVERT_HINT)


def test_classify_resume_from_a_malicious_last_pt(world: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    out = world["tmp"] / "cls"
    args = ["classify", "--data", str(world["data"]), "--model", "vgg16", "--no-pretrained", "--classes", "0,25",
            "--size", "32", "--epochs", "1", "--batch-size", "2", "--folds", "2", "--fold", "0", "--augment", "none",
            "--device", "cpu", "--workers", "0", "--out", str(out)]
    evil = _evil(out / "fold_0" / "last.pt", world["marker"])
    code, _, err = run_cli(args, capsys)
    assert not world["marker"].exists()
    assert_one_line_error(code, err, str(evil), "unsafe unpickler")


def test_every_loader_is_weights_only() -> None:
    # the one weights_only=False in the package is the converter a user runs by name on a trusted file
    root = Path(__file__).resolve().parents[1] / "protgan"
    hits = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if "torch.load(" in line and "weights_only=True" not in line]
    assert hits == ["core/safeload.py:" + str(next(
        i for i, line in enumerate((root / "core/safeload.py").read_text().splitlines(), 1)
        if "weights_only=False" in line and "torch.load(" in line))]


def test_legacy_checkpoint_error_and_conversion(tmp_path: Path) -> None:
    # an older train-gan checkpoint: numpy / python RNG states as the pickled objects they are
    legacy = tmp_path / "old.pt"
    torch.save({"G": {"w": torch.ones(2)}, "config": {"size": 32}, "step": 3,
                "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                        "cuda": None}, "score": np.float64(0.5)}, legacy)
    with pytest.raises(ProtganError, match=rf"old.pt: .*unsafe unpickler.*{CONVERT_HINT} .*old.pt") as exc:
        load_weights(legacy)
    assert "\n" not in str(exc.value)
    convert_legacy(legacy)
    state = load_weights(legacy)
    assert state["step"] == 3 and state["score"] == 0.5
    set_rng_state(state["rng"])  # the converted states still restore
    assert isinstance(state["rng"]["python"], list)


def test_conversion_without_a_terminal_asks_nobody_and_converts_nothing(tmp_path: Path, monkeypatch) -> None:
    import io

    from protgan.core.safeload import main

    legacy = tmp_path / "old.pt"
    torch.save({"step": 1, "score": np.float64(0.5)}, legacy)
    before = legacy.read_bytes()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a pipe or batch job: EOF at the prompt
    with pytest.raises(SystemExit, match="not converted .*--yes"):
        main([str(legacy)])
    assert legacy.read_bytes() == before
    main([str(legacy), "--yes"])
    assert load_weights(legacy)["score"] == 0.5


def test_rng_state_round_trip_through_a_safe_file(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # a cached gaussian in numpy's state
    torch.save({"rng": rng_state()}, tmp_path / "s.pt")
    want = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    set_rng_state(load_weights(tmp_path / "s.pt")["rng"])
    assert (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()) == want


def test_not_a_checkpoint_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(ProtganError, match="junk.pt: not a readable checkpoint"):
        load_weights(tmp_path / "junk.pt")
    with pytest.raises(ProtganError, match="is a folder"):
        load_weights(tmp_path)
