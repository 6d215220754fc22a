"""GAN reliability: the NaN guard (weights and buffers checked for
finiteness before every save; a loss above LOSS_BOUND counts as divergence) and metrics rows across Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protgan.gan import load_checkpoint
from protgan.gan.train import LOSS_BOUND, GanTrainer, TrainGanConfig, TrainingDiverged
from tests.conftest import make_dataset, tiny_gan_config


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("div") / "d", [(0,)] * 8, size=32, channels=("red", "green", "blue"))


def _cfg(data: Path, out: Path, **kw) -> TrainGanConfig:
    return tiny_gan_config(data, out, **{**dict(steps=60, log_every=2, ckpt_every=2), **kw})


def _all_finite(state: dict) -> bool:
    return all(bool(torch.isfinite(t).all()) for key in ("G", "D", "G_ema") for t in state[key].values()
               if t.is_floating_point())


def test_lr_d_1_diverges_and_keeps_the_last_good_checkpoint(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    rows: list[dict] = []
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at step \d+ \(or \|loss\| > 10000\).*last good checkpoint"):
        GanTrainer(_cfg(data, run, lr_d=1.0), on_log=rows.append).fit()
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert _all_finite(state) and 0 < state["step"] < 60
    assert all(abs(r["loss_D"]) < LOSS_BOUND and abs(r["loss_G"]) < LOSS_BOUND for r in rows)
    assert state["step"] == max(r["step"] for r in rows)  # the last logged (good) interval was checkpointed


def test_non_finite_buffer_is_never_saved(data: Path, tmp_path: Path) -> None:
    # the case: D's batch-norm running_var already inf while the logged loss is still a number
    run = tmp_path / "run"
    trainer = GanTrainer(_cfg(data, run, steps=2))
    trainer.fit()
    good = (run / "checkpoints" / "last.pt").read_bytes()
    bn = next(m for m in trainer.D.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var[0] = float("inf")
    with pytest.raises(TrainingDiverged, match=r"D\..*running_var holds NaN/inf.*last.pt kept"):
        trainer.save()
    assert (run / "checkpoints" / "last.pt").read_bytes() == good


def test_ctrl_c_then_resume_writes_the_uninterrupted_metrics_rows(data: Path, tmp_path: Path) -> None:
    import csv
    import os
    import signal

    def rows(run: Path) -> list[dict]:
        with (run / "metrics.csv").open() as f:
            return [{k: v for k, v in r.items() if k != "img_per_s"} for r in csv.DictReader(f)]

    straight = tmp_path / "straight"
    GanTrainer(_cfg(data, straight, steps=6, log_every=2, ckpt_every=0)).fit()
    split = tmp_path / "split"

    def interrupt(step: int) -> None:
        if step == 3:  # mid log interval
            os.kill(os.getpid(), signal.SIGINT)

    first = GanTrainer(_cfg(data, split, steps=6, log_every=2, ckpt_every=0), on_step=interrupt).fit()
    assert first.status == "interrupted" and first.step == 3
    assert [r["step"] for r in rows(split)] == ["2"]  # no extra row for the interrupted interval
    GanTrainer(_cfg(data, split, steps=6, log_every=2, ckpt_every=0)).fit()
    assert rows(split) == rows(straight)
