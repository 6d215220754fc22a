"""Bounded disk and small classes: train-gan --keep, classify --keep-checkpoints (in test_classify_cli),
--tensorboard event files, and a class smaller than one batch (batches drawn with replacement)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protgan.core.errors import ProtganError
from protgan.gan.train import EpochSampler, GanTrainer, TrainGanConfig
from tests.conftest import make_dataset


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(data: Path, out: Path, **kw) -> TrainGanConfig:
    base = dict(data=str(data), class_index=0, out=str(out), size=32, batch_size=4, g_width=16, d_width=16,
                steps=4, ckpt_every=2, sample_every=2, log_every=1, device="cpu", workers=0)
    return TrainGanConfig(**{**base, **kw})


def _events(logdir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc


def test_keep_all_checkpoints_and_tensorboard(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    data = make_dataset(tmp_path / "d", [(0,)] * 8, size=32, channels=("red", "green", "blue"))
    GanTrainer(_cfg(data, tmp_path / "last")).fit()
    assert sorted(p.name for p in (tmp_path / "last" / "checkpoints").glob("*.pt")) == ["last.pt"]
    assert not (tmp_path / "last" / "tensorboard").exists()
    GanTrainer(_cfg(data, tmp_path / "all", keep="all", tensorboard=True)).fit()
    ckpts = sorted(p.name for p in (tmp_path / "all" / "checkpoints").glob("*.pt"))
    assert ckpts == ["last.pt", "step_000002.pt", "step_000004.pt"]
    assert torch.load(tmp_path / "all" / "checkpoints" / "step_000002.pt", weights_only=True)["step"] == 2
    acc = _events(tmp_path / "all" / "tensorboard")
    steps = [e.step for e in acc.Scalars("train-gan/loss_D")]
    assert steps == [1, 2, 3, 4] and "train-gan/D_x" in acc.Tags()["scalars"]
    images = acc.Images("samples (fixed noise, EMA G)")
    assert [i.step for i in images] == [2, 4] and images[0].width > 32  # the 6 x 6 grid of 32 px samples


def test_classify_tensorboard_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from protgan.classify.train import ClassifyConfig, run_classify

    targets = [(0,), (25,), (0, 25), (25,), (0,), (0,)] * 3
    data = make_dataset(tmp_path / "d", targets, size=32, channels=("red", "green", "blue"))
    cfg = ClassifyConfig(data=str(data), out=str(tmp_path / "run"), model="resnet18", pretrained=False,
                         head="linear", classes="0,25", channels="rgb", size=32, folds=2, fold=0, epochs=2,
                         batch_size=4, augment="none", workers=0, device="cpu", tensorboard=True)
    run_classify(cfg, log=lambda m: None)
    acc = _events(tmp_path / "run" / "fold_0" / "tensorboard")
    for tag in ("train_loss", "val_loss", "val_macro_f1", "train_macro_f1", "lr"):
        assert [e.step for e in acc.Scalars(f"classify/fold_0/{tag}")] == [1, 2], tag
    assert sorted(p.name for p in (tmp_path / "run" / "fold_0").glob("*.pt")) == ["best_macro_f1.pt"]


def test_class_smaller_than_a_batch_draws_with_replacement(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", [(0,)] * 3 + [(25,)] * 2 + [(0, 25)], size=32, channels=("red", "green", "blue"))
    warnings: list[str] = []
    trainer = GanTrainer(_cfg(data, tmp_path / "run", steps=3, batch_size=8), warn=warnings.append)
    assert trainer.cfg.n_images == 3 and trainer.batches_per_epoch == 1
    result = trainer.fit()
    assert result.status == "done" and result.step == 3
    assert sum("fewer than one batch" in w and "with replacement" in w for w in warnings) == 1
    # the sampler: `batch` draws from the 3 images, a function of (seed, epoch) only (exact resume)
    s = EpochSampler(3, seed=5, batch_size=8)
    draws = [s.permutation(e) for e in range(20)]
    assert all(len(d) == 8 and set(d) <= {0, 1, 2} for d in draws)
    assert any(len(set(d)) < len(d) for d in draws) and draws[3] == EpochSampler(3, 5, 8).permutation(3)
    assert EpochSampler(10, 5, 4).permutation(0) == EpochSampler(10, 5).permutation(0)  # a big class: unchanged
    # a class with no image is still an error
    with pytest.raises(ProtganError, match=r"class 2 \(.*\) has no images with only this label"):
        GanTrainer(_cfg(data, tmp_path / "none", class_index=2))


def test_prune_checkpoints_of_a_finished_fold(tmp_path: Path) -> None:
    from protgan.classify.train import prune_checkpoints

    names = ["best_loss.pt", "best_macro_f1.pt", "best_micro_f1.pt", "last.pt", "weights_backup.pt"]
    for keep, left in (("best_macro_f1.pt", ["best_macro_f1.pt", "weights_backup.pt"]), (None, ["weights_backup.pt"])):
        fold = tmp_path / str(keep)
        fold.mkdir()
        for n in names + ["result.json"]:
            (fold / n).write_text("x")
        gone = prune_checkpoints(fold, keep=keep)
        assert sorted(p.name for p in fold.glob("*.pt")) == left  # files it does not own are left alone
        assert len(gone) == len(names) - len(left) and (fold / "result.json").exists()
