"""FastGAN (train-gan --arch fastgan), adaptive augmentation (--augment-p) and --max-minutes."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

from protgan.core.errors import ProtganError
from protgan.gan import load_checkpoint
from protgan.gan import train as train_module
from protgan.gan.ada import AdaptiveAugment, parse_augment_p
from protgan.gan.checkpoint import discriminator_from_config, generator_from_config, load_generator
from protgan.gan.diffaug import diff_augment
from protgan.gan.fastgan import SLE, FastganDiscriminator, FastganGenerator, quadrant, rec_size, sle_pairs
from protgan.gan.losses import FastganLoss, hinge_d, hinge_g, reconstruction_loss
from protgan.gan.synth import discriminator_scorer
from protgan.gan.train import GanTrainer, TrainGanConfig
from tests.conftest import assert_same_gan_runs, make_dataset, read_metrics, tiny_gan_config, train_straight_and_split


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("fastgan") / "d", [(0,)] * 20, size=32, channels=("red", "green", "blue"))


def _config(data: Path, out: Path, **kw) -> TrainGanConfig:
    return tiny_gan_config(data, out, **{**dict(batch_size=8, steps=6, arch="fastgan"), **kw})


def _validated(cfg: TrainGanConfig) -> TrainGanConfig:
    cfg.validate()
    return cfg


@pytest.mark.parametrize("size", [32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_shapes(size: int, channels: int) -> None:
    config = {"arch": "fastgan", "size": size, "channels": ["x"] * channels, "z_dim": 8, "g_width": 16, "d_width": 16}
    g, d = generator_from_config(config), discriminator_from_config(config)
    assert isinstance(g, FastganGenerator) and isinstance(d, FastganDiscriminator)
    with torch.no_grad():
        x = g(torch.randn(2, 8))
        assert x.shape == (2, channels, size, size) and x.abs().max() <= 1
        logits, patches, recs = d(x, recon=True, part=1)
        assert logits.shape == (2,) and patches.shape == (2, 50)
        torch.testing.assert_close(logits, patches.mean(1))  # the image's logit: the mean of its patch logits
        r = rec_size(size)
        assert {k: tuple(v.shape) for k, v in recs.items()} == {k: (2, channels, r, r) for k in ("big", "small", "part")}
        assert d(x)[2] is None


def test_sle_pairs_and_gating() -> None:
    assert sle_pairs(32) == [(4, 32)] and sle_pairs(64) == [(4, 64)]
    assert sle_pairs(256) == [(4, 64), (8, 128), (16, 256)]
    assert sle_pairs(1024) == [(4, 64), (8, 128), (16, 256), (32, 512)]
    torch.manual_seed(0)
    sle = SLE(8, 6)
    small, big = torch.randn(2, 8, 4, 4), torch.randn(2, 6, 16, 16)
    for _ in range(20):  # spectral norm's power iteration converges while training
        sle(small, big)
    sle.eval()  # then it stops, and the gate is a fixed function of the small map
    gate = sle.gate(small)
    assert gate.shape == (2, 6, 1, 1) and (gate > 0).all() and (gate < 1).all()
    torch.testing.assert_close(sle(small, big), big * gate)  # channel-wise excitation of the big map
    assert not torch.allclose(sle(small + 1, big), sle(small, big))  # the gate is computed from the small map
    # the 64 px generator gates its 64x64 map with a function of its 4x4 map
    g = FastganGenerator(64, 3, 8, 16).eval()
    seen: list[tuple[torch.Size, torch.Size]] = []
    g.sle["64"].register_forward_hook(lambda m, inp, out: seen.append((inp[0].shape, inp[1].shape)))
    g(torch.randn(2, 8))
    assert seen == [(torch.Size([2, 16, 4, 4]), torch.Size([2, 16, 64, 64]))]


def test_quadrant() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert quadrant(x, 0).flatten().tolist() == [0, 1, 4, 5]
    assert quadrant(x, 3).flatten().tolist() == [10, 11, 14, 15]


def test_hinge_loss_against_hand_computed_values() -> None:
    real = torch.tensor([[2.0, 0.5], [-1.0, 1.0]])  # relu(1 - x) = 0, 0.5, 2, 0 -> mean 0.625
    fake = torch.tensor([[-2.0, 0.0], [0.5, 3.5]])  # relu(1 + x) = 0, 1, 1.5, 4.5 -> mean 1.75
    assert float(hinge_d(real, fake)) == pytest.approx(2.375)
    assert float(hinge_g(fake)) == pytest.approx(-0.5)


def test_reconstruction_loss_hand_computed() -> None:
    real = torch.zeros(1, 1, 4, 4)
    real[..., :2, :2] = 1.0  # quadrant 0 is all ones; the 2x2 area downscale is [[1, 0], [0, 0]]
    recs = {"big": torch.zeros(1, 1, 2, 2), "small": torch.zeros(1, 1, 2, 2), "part": torch.zeros(1, 1, 2, 2)}
    # big and small: |0 - [[1,0],[0,0]]| mean 0.25 each; part (quadrant 0 = ones): 1
    assert float(reconstruction_loss(real, recs, 0)) == pytest.approx(1.5)
    assert float(reconstruction_loss(real, recs, 3)) == pytest.approx(0.5)  # quadrant 3 is zeros


def test_discriminator_reconstruction_loss_decreases_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    d = FastganDiscriminator(32, 3, 16)
    # a fixed batch of smooth images (blobs), so a decoder from 8x8 features can describe them
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    centres = torch.rand(8, 2) - 0.5
    real = torch.stack([(torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.1) * 2 - 1).expand(3, 32, 32)
                        for cx, cy in centres])
    opt = torch.optim.Adam(d.parameters(), lr=2e-3)
    losses = []
    for step in range(30):
        part = step % 4
        _, _, recs = d(real, recon=True, part=part)
        loss = reconstruction_loss(real, recs, part)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4, losses


def test_fastgan_loss_object_uses_hinge_and_reconstruction() -> None:
    class FakeD(torch.nn.Module):
        def forward(self, x, recon=False, part=0):
            patches = x.mean(dim=(1, 2, 3))[:, None].expand(-1, 50)
            recs = {k: torch.zeros(x.shape[0], x.shape[1], 2, 2) for k in ("big", "small", "part")} if recon else None
            return patches.mean(1), patches, recs

    real, fake = torch.full((2, 1, 4, 4), 0.5), torch.full((2, 1, 4, 4), -0.25)
    out = FastganLoss().d_loss(FakeD(), real, fake, lambda x: x)
    # hinge: relu(1 - 0.5) + relu(1 - 0.25) = 1.25; reconstruction of a constant 0.5 image by zeros: 3 x 0.5
    assert float(out.loss) == pytest.approx(1.25 + 1.5) and float(out.extras[0]) == pytest.approx(1.5)
    assert float(FastganLoss().g_loss(FakeD(), fake, lambda x: x)) == pytest.approx(0.25)


def test_augment_p_parsing() -> None:
    assert parse_augment_p("off") == ("off", 1.0)
    assert parse_augment_p("fixed:0.3") == ("fixed", 0.3)
    assert parse_augment_p("ada:0.6") == ("ada", 0.6)
    for bad in ("ada", "ada:1.5", "fixed:x", "sometimes:0.5"):
        with pytest.raises(ProtganError, match="--augment-p"):
            parse_augment_p(bad)
    assert _validated(TrainGanConfig(data="d", class_index=0, out="o")).augment_p == "off"  # dcgan: the paper's recipe
    fast = _validated(TrainGanConfig(data="d", class_index=0, out="o", arch="fastgan"))
    assert fast.augment_p == "ada:0.6" and fast.lr_d == 2e-4


def test_diff_augment_probability() -> None:
    x = torch.rand(16, 3, 8, 8)
    policy = ("color", "translation", "cutout")
    assert torch.equal(diff_augment(x, policy, torch.tensor(0.0)), x)  # p = 0: nothing applied
    torch.manual_seed(0)
    y = diff_augment(x, ("cutout",), torch.tensor(0.5))
    changed = (y != x).flatten(1).any(1)
    assert 0 < int(changed.sum()) < 16  # p = 0.5: some samples cut out, others untouched


def test_ada_p_moves_with_the_overfitting_heuristic() -> None:
    ada = AdaptiveAugment("ada:0.6", (), global_batch=16, ada_kimg=1.0, interval=4, device=torch.device("cpu"))
    assert ada.policy == ("color", "translation", "cutout") and float(ada.p) == 0.0
    step_size = 16 * 4 / 1000
    unsure = torch.tensor([3.0, 2.0, 1.0, -0.5])  # r_t = mean(sign) = 0.5
    sure = torch.ones(8)  # D says "real" to every real image: r_t = 1 > 0.6
    for s in range(1, 9):
        ada.observe(sure)
        ada.update(s)
        if s == 3:
            assert float(ada.p) == 0.0  # only every `interval` steps
    assert float(ada.p) == pytest.approx(2 * step_size)
    for s in range(9, 13):  # r_t = 0.5 < 0.6: D is not overfitting, p goes down
        ada.observe(unsure)
        ada.update(s)
    assert float(ada.p) == pytest.approx(step_size)
    for s in range(13, 41):
        ada.observe(-sure)
        ada.update(s)
    assert float(ada.p) == 0.0  # clamped at 0
    fixed = AdaptiveAugment("fixed:0.3", ("color",), 16, 1.0, 4, torch.device("cpu"))
    fixed.observe(sure)
    fixed.update(4)
    assert float(fixed.p) == pytest.approx(0.3)


def test_ada_in_training_raises_p_when_d_overfits(data: Path, tmp_path: Path) -> None:
    # 20 images, a D with a fast learning rate: it soon says "real" to every real image (r_t -> 1)
    run = tmp_path / "run"
    GanTrainer(_config(data, run, steps=12, augment_p="ada:0.1", ada_kimg=0.05, ada_interval=2, lr_d=5e-3)).fit()
    rows = read_metrics(run)
    p = [float(r["aug_p"]) for r in rows]
    rt = [float(r["r_t"]) for r in rows]
    assert p[-1] > 0, (p, rt)
    # each update moved p by +-0.32 in the direction of sign(r_t - 0.1) (clamped to [0, 1])
    assert all(-1 <= v <= 1 for v in rt) and all(0 <= v <= 1 for v in p)
    assert (run / "ada.png").stat().st_size > 5000


def test_fastgan_run_folder_synth_scorer_and_generator(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = GanTrainer(_config(data, run, steps=3, sample_every=3)).fit()
    assert result.status == "done"
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["config"]["arch"] == "fastgan" and state["augment"]["mode"] == "ada"
    assert {"loss_rec", "r_t", "aug_p"} <= set(read_metrics(run)[0])
    assert (run / "samples" / "step_000003.png").is_file() and (run / "losses.png").is_file()
    g, config = load_generator(run)
    assert isinstance(g, FastganGenerator)
    with torch.no_grad():
        a, b = g(torch.ones(2, 100)), g(torch.ones(2, 100))
    torch.testing.assert_close(a, b)  # eval mode: fixed noise maps, a deterministic function of z
    score = discriminator_scorer(state, config, torch.device("cpu"), run)  # synth --filter-by disc
    s = score(torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8))
    assert s.shape == (5,) and torch.isfinite(s).all()


def test_fastgan_resume_matches_uninterrupted_run_with_ada(data: Path, tmp_path: Path) -> None:
    kw = dict(augment_p="ada:0.2", ada_kimg=0.05, ada_interval=3, lr_d=5e-3)  # p moves by 0.48 per update
    # stops mid-epoch and mid-ADA-interval
    straight, split = train_straight_and_split(partial(_config, data), tmp_path, stop=4, steps=7, **kw)
    assert any(float(r["aug_p"]) > 0 for r in read_metrics(straight))  # p did move
    assert_same_gan_runs(straight, split, ("loss_D", "loss_G", "D_x", "D_G_z", "loss_rec", "r_t", "aug_p", "diversity"))


@pytest.mark.parametrize("arch", ["dcgan", "fastgan", "projected"])
def test_max_minutes_stops_cleanly_and_a_larger_budget_continues(data: Path, tmp_path: Path, arch: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter(range(10_000))
    monkeypatch.setitem(train_module.CLOCKS, "wall", lambda: float(next(ticks)))  # one second per reading
    run = tmp_path / "run"
    extra = {"dcgan": {"g_width": 32, "d_width": 32}, "fastgan": {}, "projected": {"projected_input": 64}}[arch]
    result = GanTrainer(_config(data, run, steps=50, arch=arch, max_minutes=3 / 60, **extra)).fit()
    assert result.status == "time-limit" and result.step == 3  # one clock reading per step: 3 s after 3 steps
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 3 and state["train_seconds"] == pytest.approx(3.0)
    assert (run / "samples" / "step_000003.png").is_file()
    assert read_metrics(run)[-1]["step"] == "3"
    again = GanTrainer(_config(data, run, steps=50, arch=arch, max_minutes=3 / 60, **extra)).fit()
    assert again.status == "time-limit" and again.step == 3  # budget already spent: nothing to do
    more = GanTrainer(_config(data, run, steps=50, arch=arch, max_minutes=5 / 60, **extra)).fit()
    assert more.status == "time-limit" and more.step == 5
    assert [r["step"] for r in read_metrics(run)] == [str(s) for s in range(1, 6)]


def test_bad_arch_and_size() -> None:
    with pytest.raises(ProtganError, match="--arch 'stylegan'"):
        _validated(TrainGanConfig(data="d", class_index=0, out="o", arch="stylegan"))
    with pytest.raises(ProtganError, match="--size 1024"):
        _validated(TrainGanConfig(data="d", class_index=0, out="o", size=1024))  # dcgan stops at 512
    _validated(TrainGanConfig(data="d", class_index=0, out="o", size=1024, arch="fastgan"))


def test_intensity_power_round_trip_and_finite_gradient_at_black() -> None:
    from protgan.data.ranges import from_intensity_power, to_intensity_power

    x = torch.linspace(-1, 1, 11)
    torch.testing.assert_close(to_intensity_power(x[1:], 0.5), ((x[1:] + 1) / 2).sqrt() * 2 - 1)  # sqrt of [0, 1]
    torch.testing.assert_close(from_intensity_power(to_intensity_power(x, 0.5), 0.5), x, atol=1e-5, rtol=0)
    # intensity 0.01 (a dim pixel) -> 0.1: the dark end is spread out for D
    assert to_intensity_power(torch.tensor([-0.98]), 0.5).item() == pytest.approx(-0.8)
    t = torch.full((3,), -1.0, requires_grad=True)  # G's tanh saturated at black: no NaN through D's input
    to_intensity_power(from_intensity_power(t, 0.5), 0.5).sum().backward()
    assert torch.isfinite(t.grad).all()


@pytest.mark.parametrize("arch", ["dcgan", "fastgan", "projected"])
def test_intensity_gamma_models_are_the_linear_ones_composed_with_the_power(arch: str) -> None:
    from protgan.data.ranges import from_intensity_power, to_intensity_power

    config = {"arch": arch, "size": 32, "channels": ["green"], "z_dim": 8, "g_width": 16, "d_width": 16}
    g1, d1 = generator_from_config(config), discriminator_from_config(config)
    g5, d5 = (f({**config, "intensity_gamma": 0.5}) for f in (generator_from_config, discriminator_from_config))
    g5.load_state_dict(g1.state_dict())  # the same weights: the power is no parameter
    d5.load_state_dict(d1.state_dict())
    for m in (g1, d1, g5, d5):
        m.eval()
    z, x = torch.randn(3, 8), torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(g5(z), from_intensity_power(g1(z), 0.5))  # G's output is made linear
        out1, out5 = d1(to_intensity_power(x, 0.5)), d5(x)  # D sees the power of what it is given
        plain = d1(x)
    logits = [o[0] if isinstance(o, tuple) else o for o in (out1, out5, plain)]
    torch.testing.assert_close(logits[0], logits[1])
    assert not torch.allclose(logits[1], logits[2])  # the power did change what D sees


def test_intensity_gamma_run_is_saved_resumed_and_sampled_linear(data: Path, tmp_path: Path) -> None:
    from protgan.data.ranges import from_intensity_power

    run = tmp_path / "run"
    GanTrainer(_config(data, run, steps=3, intensity_gamma=0.5)).fit()
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["config"]["intensity_gamma"] == 0.5
    g, _ = load_generator(run)  # synth / fid / the demo rebuild G with its power
    plain = generator_from_config({**state["config"], "intensity_gamma": 1.0}).eval()
    plain.load_state_dict(state["G_ema"])
    z = torch.randn(4, 100)
    with torch.no_grad():
        torch.testing.assert_close(g(z), from_intensity_power(plain(z), 0.5))
    with pytest.raises(ProtganError, match="intensity_gamma"):  # a resume with another power is another run
        GanTrainer(_config(data, run, steps=5, intensity_gamma=1.0)).fit()
    assert GanTrainer(_config(data, run, steps=5, intensity_gamma=0.5)).fit().step == 5
    with pytest.raises(ProtganError, match="--intensity-gamma 0"):
        _validated(TrainGanConfig(data="d", class_index=0, out="o", intensity_gamma=0.0))
