"""The DCGAN training loop: learning, exact resume, NaN stop, Ctrl-C, EMA, eval hook, run folder contract."""

from __future__ import annotations

import json
import math
import os
import signal
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from protgan.data import open_dataset, write_label_table, write_png
from protgan.core.errors import ProtganError
from protgan.gan import find_runs, load_checkpoint, load_generator
from protgan.gan.checkpoint import CHECKPOINT_KEYS
from protgan.data.selection import select_class_ids
from protgan.gan.train import GanTrainer, TrainGanConfig, TrainingDiverged
from tests.conftest import assert_same_gan_runs, make_dataset, read_metrics, tiny_gan_config, train_straight_and_split


# Tiny models on a shared 2-core machine: one thread avoids OpenMP contention (3x faster here).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    targets = [(0,)] * 24 + [(0, 25)] * 3 + [(25,)] * 5
    return make_dataset(tmp_path_factory.mktemp("gan") / "d", targets, size=32, channels=("red", "green", "blue"))


def _config(data: Path, out: Path, **kw) -> TrainGanConfig:
    return tiny_gan_config(data, out, **{**dict(batch_size=8, steps=6, g_width=32, d_width=32, n_samples=8), **kw})


def test_select_only_vs_any(tiny_dataset: Path) -> None:
    ds = open_dataset(tiny_dataset)
    # targets: (0,) (25,) (0,25) (21,) (2,0) (23,) (0,) (25,21) (2,) (23,0) (0,) (21,)
    assert select_class_ids(ds.ids, ds.targets, 0, list(range(28)), "only") == ["img0000", "img0006", "img0010"]
    assert len(select_class_ids(ds.ids, ds.targets, 0, list(range(28)), "any")) == 6
    # within the subset {0, 25}, (2, 0) and (23, 0) count as "only 0"
    assert select_class_ids(ds.ids, ds.targets, 0, [0, 25], "only") == ["img0000", "img0004", "img0006", "img0009", "img0010"]


def test_run_folder_contract(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run0"
    result = GanTrainer(_config(data, run, steps=4, ckpt_every=2, sample_every=2)).fit()
    assert result.status == "done" and result.step == 4 and result.n_images == 24
    config = json.loads((run / "config.json").read_text())
    assert config["class_index"] == 0 and config["class_name"] == "Nucleoplasm"
    assert config["channels"] == ["red", "green", "blue"] and config["size"] == 32 and config["z_dim"] == 100
    assert config["data"] == str(data) and config["n_images"] == 24
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert set(CHECKPOINT_KEYS) <= set(state) and state["step"] == 4 and state["config"] == config
    assert {p.name for p in (run / "samples").iterdir()} == {"real.png", "step_000002.png", "step_000004.png"}
    rows = read_metrics(run)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert {"loss_D", "loss_G", "D_x", "D_G_z", "lr_G", "lr_D", "img_per_s", "diversity"} <= set(rows[0])
    assert (run / "losses.png").stat().st_size > 5000
    assert not list(run.rglob(".*tmp"))  # nothing half-written left behind
    g, cfg = load_generator(run / "checkpoints" / "last.pt")
    assert not g.training and cfg["class_index"] == 0
    with torch.no_grad():
        x = g(torch.randn(3, 100))
    assert x.shape == (3, 3, 32, 32) and x.abs().max() <= 1
    assert torch.equal(g.state_dict()["fc.weight"], state["G_ema"]["fc.weight"])
    g_raw, _ = load_generator(run, use_ema=False)
    assert torch.equal(g_raw.state_dict()["fc.weight"], state["G"]["fc.weight"])
    # a finished run asked for the same steps does nothing
    again = GanTrainer(_config(data, run, steps=4)).fit()
    assert again.status == "already-done"


def test_find_runs(tmp_path: Path) -> None:
    for name, cls in (("a", 0), ("b", 25)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"class_index": cls}))
    (tmp_path / "notes").mkdir()
    assert find_runs(tmp_path) == {0: tmp_path / "a", 25: tmp_path / "b"}
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text(json.dumps({"class_index": 25}))
    with pytest.raises(ProtganError, match="two runs for class 25: b and c"):
        find_runs(tmp_path)
    with pytest.raises(ProtganError, match="does not exist"):
        find_runs(tmp_path / "nope")


def test_discriminator_learns_separable_toy(tmp_path: Path) -> None:
    # Real images are all white; G (barely trained) makes ~mid-grey: D must quickly tell them apart.
    root = tmp_path / "white"
    (root / "train").mkdir(parents=True)
    ids = [f"w{i:02d}" for i in range(16)]
    for i in ids:
        for ch in ("red", "green", "blue"):
            write_png(root / "train" / f"{i}_{ch}.png", np.full((32, 32), 255, np.uint8))
    write_label_table(root / "train.csv", ids, [(0,)] * 16)
    trainer = GanTrainer(_config(root, tmp_path / "run", steps=12, lr_g=1e-6, label_flip=0.0))
    trainer.fit()
    losses = [float(r["loss_D"]) for r in read_metrics(tmp_path / "run")]
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses
    d_x = [float(r["D_x"]) for r in read_metrics(tmp_path / "run")]
    assert d_x[-1] > 0.6


def test_resume_matches_uninterrupted_run(data: Path, tmp_path: Path) -> None:
    # epochs of 3 batches: stops one batch into the second epoch, resumes mid-epoch
    straight, split = train_straight_and_split(partial(_config, data), tmp_path, stop=4, steps=7)
    assert_same_gan_runs(straight, split, ("loss_D", "loss_G", "D_x", "D_G_z", "diversity"))
    # --resume never starts over and reproduces the same first losses
    fresh = GanTrainer(_config(data, split, steps=2, resume="never")).fit()
    assert fresh.step == 2
    first = read_metrics(straight)[0]["loss_D"]
    assert float(read_metrics(split)[0]["loss_D"]) == pytest.approx(float(first), abs=1e-6)


def test_resume_refuses_other_architecture(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    GanTrainer(_config(data, run, steps=1)).fit()
    with pytest.raises(ProtganError, match="trained with g_width=32, not 64"):
        GanTrainer(_config(data, run, steps=2, g_width=64)).fit()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"

    def poison(trainer: GanTrainer, step: int) -> dict[str, float]:
        if step == 3:  # after the step-2 checkpoint: D's output becomes NaN at step 4
            with torch.no_grad():
                trainer.D.fc.weight.fill_(float("nan"))
        return {}

    trainer = GanTrainer(_config(data, run, steps=8, ckpt_every=2, eval_every=1, log_every=4), eval_fn=poison)
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at step 4.*last good checkpoint .*last.pt kept"):
        trainer.fit()
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(t).all() for t in state["D"].values() if t.is_floating_point())
    assert max(int(r["step"]) for r in read_metrics(run)) == 3


def test_ctrl_c_saves_and_stops(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"

    def interrupt(trainer: GanTrainer, step: int) -> dict[str, float]:
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C delivers
        return {}

    before = signal.getsignal(signal.SIGINT)
    result = GanTrainer(_config(data, run, steps=50, eval_every=1), eval_fn=interrupt).fit()
    assert result.status == "interrupted" and result.step == 2
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
    resumed = GanTrainer(_config(data, run, steps=4)).fit()
    assert resumed.status == "done" and resumed.step == 4


def test_ema_follows_the_documented_rule(data: Path, tmp_path: Path) -> None:
    decay = 0.5
    trainer = GanTrainer(_config(data, tmp_path / "run", steps=4, ema_decay=decay))
    expected = [p.detach().clone() for p in trainer.G.parameters()]
    snapshots: list[list[torch.Tensor]] = []
    trainer.on_step = lambda s: snapshots.append([p.detach().clone() for p in trainer.G.parameters()])
    trainer.fit()
    for s, params in enumerate(snapshots, start=1):
        d = min(decay, s / (9 + s))  # min(decay, (1 + t) / (10 + t)) with t = s - 1 updates before
        expected = [e + (1 - d) * (p - e) for e, p in zip(expected, params)]
    for e, p in zip(expected, trainer.G_ema.parameters()):
        torch.testing.assert_close(p, e, atol=1e-6, rtol=1e-5)
    assert not torch.equal(list(trainer.G_ema.parameters())[0], list(trainer.G.parameters())[0])
    for eb, b in zip(trainer.G_ema.buffers(), trainer.G.buffers()):
        assert torch.equal(eb, b)


def test_eval_hook_logs_and_keeps_best(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    scores = {2: 5.0, 4: 1.5, 6: 3.0}

    def fake_fid(trainer: GanTrainer, step: int) -> dict[str, float]:
        assert trainer.generate(4).shape == (4, 3, 32, 32)
        return {"score": scores[step], "fid": scores[step] * 10}

    GanTrainer(_config(data, run, steps=6, eval_every=2, log_every=3), eval_fn=fake_fid).fit()
    rows = {int(r["step"]): r for r in read_metrics(run)}
    assert float(rows[4]["score"]) == 1.5 and float(rows[6]["fid"]) == 30.0 and rows[3]["score"] == ""
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["step"] == 4 and best["best_score"] == 1.5
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 6


def test_collapse_indicator_warns(data: Path, tmp_path: Path) -> None:
    warnings: list[str] = []
    trainer = GanTrainer(_config(data, tmp_path / "run", steps=1), warn=warnings.append)
    trainer.fit()
    assert trainer.diversity() > 0 and not warnings
    trainer._collapse_armed = True  # as after a healthy stretch (diversity >= 1.5 x threshold)
    with torch.no_grad():  # a generator whose output ignores z: every sample identical
        last = [m for m in trainer.G_ema.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
        last.weight.zero_()
    assert trainer.diversity() == pytest.approx(0.0, abs=1e-6)
    assert len(warnings) == 1 and "mode collapse" in warnings[0]
    trainer.diversity()
    assert len(warnings) == 1  # warned when it fell, not on every log
    # The armed state survives a resume (else a resumed run would warn again, or never).
    for armed in (True, False):
        trainer._collapse_armed = armed
        path = trainer.save(tmp_path / f"armed_{armed}.pt")
        resumed = GanTrainer(_config(data, tmp_path / f"resumed_{armed}", steps=1))
        resumed.load(path)
        assert resumed._collapse_armed is armed


def _d_inputs(trainer: GanTrainer) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    trainer.D.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    return seen


def test_diffaug_reaches_the_discriminator(data: Path, tmp_path: Path) -> None:
    """With cutout, every image D sees (real and fake) has a square of exact zeros; without it none has:
    uint8 images in [-1, 1] never hit 0 exactly (k / 127.5 - 1 = 0 has no integer k), tanh outputs
    practically never. So this fails if the policy were ignored."""
    def zero_pixels_per_image(cfg_kw: dict) -> torch.Tensor:
        trainer = GanTrainer(_config(data, tmp_path / f"run{len(cfg_kw)}", steps=2, **cfg_kw))
        seen = _d_inputs(trainer)
        assert trainer.fit().status == "done"
        assert len(seen) >= 4  # D on real and on fake, for each of 2 steps
        return torch.cat([(x == 0).all(dim=1).flatten(1).sum(dim=1) for x in seen])

    with_cutout = zero_pixels_per_image({"diffaug": ["cutout"]})
    assert (with_cutout >= 16).all()  # a 16 x 16 square at 32 px, at least a quarter left after clipping
    assert (zero_pixels_per_image({}) == 0).all()
    assert all(math.isfinite(float(r["loss_D"])) for r in read_metrics(tmp_path / "run1"))


def test_a_class_without_images_is_refused(data: Path, tmp_path: Path) -> None:
    """A class with no image is one error line and no run folder (one smaller than a batch trains: its
    batches are drawn with replacement, tests/test_retention_small_class.py)."""
    with pytest.raises(ProtganError, match=r"class 3 \(Nucleoli fibrillar center\) has no images with only this label"):
        GanTrainer(_config(data, tmp_path / "run", class_index=3))
    assert not (tmp_path / "run").exists()
    assert GanTrainer(_config(data, tmp_path / "small", class_index=25, select="any", batch_size=16)).cfg.n_images == 8
