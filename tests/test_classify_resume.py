"""classify after Ctrl-C / SIGTERM equals the uninterrupted run (tensors equal, metrics.csv identical), its
results do not depend on --workers, and a damaged image is refused before any training, all listed at once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from protgan.classify.train import ClassifyConfig, run_classify
from protgan.core.errors import ProtganError
from tests.conftest import make_dataset
from tests.test_classify_cli import TARGETS, TINY  # registers the tiny test network


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("cr") / "d", TARGETS, size=32, channels=("red", "green", "blue"))


def _cfg(data: Path, out: Path, **kw) -> ClassifyConfig:
    base = dict(data=str(data), out=str(out), model=TINY, size=32, folds=2, epochs=3, batch_size=8,
                pretrained=False, workers=0, device="cpu", augment="classic")
    base.update(kw)
    return ClassifyConfig(**base)


def _tensors(run: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(run.glob("fold_*/*.pt")):
        state = torch.load(f, weights_only=True)
        for k, v in state["model"].items():
            out[f"{f.parent.name}/{f.name}/{k}"] = v
        out[f"{f.parent.name}/{f.name}/epoch"] = torch.tensor(state["epoch"])
    return out


def _assert_same_run(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys() and len(ta) > 10
    unequal = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not unequal, f"{len(unequal)} of {len(ta)} tensors differ, e.g. {unequal[:3]}"
    for name in ("metrics.csv", "per_class.csv", "fold_0/history.json", "fold_1/history.json",
                 "fold_0/val_predictions.csv"):
        assert (a / name).read_text() == (b / name).read_text(), name


@pytest.fixture(scope="module")
def straight(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("straight") / "run"
    assert run_classify(_cfg(data, run), log=lambda m: None) is not None
    return run


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_then_resumed_equals_uninterrupted(sig: int, data: Path, straight: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    logs: list[str] = []

    def progress(name: str, done: int, total: int) -> None:  # mid-epoch 2 of fold 0, as Ctrl-C / SLURM would
        if name.startswith("fold 0 epoch 2/") and done >= 8:
            os.kill(os.getpid(), sig)

    before = signal.getsignal(sig)
    with pytest.raises(KeyboardInterrupt):
        run_classify(_cfg(data, run), log=logs.append, progress=progress)
    assert signal.getsignal(sig) is before  # handlers restored
    assert any("interrupted: fold 0 keeps the state after epoch 1" in m for m in logs)
    assert torch.load(run / "fold_0" / "last.pt", weights_only=True)["next_epoch"] == 1
    assert not (run / "fold_0" / ".protgan.lock").exists()
    assert run_classify(_cfg(data, run), log=logs.append) is not None
    assert any("resuming at epoch 2/3" in m for m in logs)
    _assert_same_run(straight, run)


def test_results_do_not_depend_on_workers(data: Path, straight: Path, tmp_path: Path) -> None:
    run = tmp_path / "w2"
    run_classify(_cfg(data, run, workers=2), log=lambda m: None)
    _assert_same_run(straight, run)


def test_damaged_images_are_all_listed_before_training(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "d", TARGETS, size=32, channels=("red", "green", "blue"))
    (root / "train" / "img0003_green.png").write_bytes(b"")
    p = root / "train" / "img0007_red.png"
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(ProtganError, match=r"2 damaged or missing images, nothing trained: "
                                           r"img0003_green.png \(empty.*img0007_red.png \(truncated"):
        run_classify(_cfg(root, tmp_path / "run"), log=lambda m: None)
    assert not list((tmp_path / "run").glob("fold_*"))
