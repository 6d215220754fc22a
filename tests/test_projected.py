"""Projected GAN (train-gan --arch projected): the frozen EfficientNet-Lite0 discriminator, its fixed random
projections, the hinge loss over heads, and a run's folder, resume and synth scorer."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

from protgan.core.errors import ProtganError
from protgan.gan import load_checkpoint
from protgan.gan.checkpoint import discriminator_from_config, generator_from_config, load_generator
from protgan.gan.fastgan import FastganGenerator
from protgan.gan.losses import ProjectedLoss, hinge_d, hinge_g
from protgan.gan.projected import FEATURE_CHANNELS, ProjectedDiscriminator, input_side
from protgan.gan.synth import discriminator_scorer
from protgan.gan.train import GanTrainer, TrainGanConfig
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import assert_same_gan_runs, make_dataset, read_metrics, tiny_gan_config, train_straight_and_split

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("projected") / "d", [(0,)] * 12, size=32, channels=("green",))


def _config(data: Path, out: Path, **kw) -> TrainGanConfig:
    base = dict(batch_size=4, steps=4, arch="projected", channels=["green"], projected_input=64)
    return tiny_gan_config(data, out, **{**base, **kw})


def _d_config(**kw) -> dict:
    return {"arch": "projected", "size": 32, "channels": ["green"], "d_width": 16, "projected_input": 64, "seed": 0, **kw}


@pytest.mark.parametrize("channels", [["green"], ["red", "green", "blue"], ["red", "green", "blue", "yellow"]])
@pytest.mark.parametrize("csm", [True, False])
def test_feature_shapes_per_scale(channels: list[str], csm: bool) -> None:
    d = discriminator_from_config(_d_config(channels=channels, projected_csm=csm))
    assert isinstance(d, ProjectedDiscriminator) and d.side == 64
    x = torch.rand(2, len(channels), 32, 32) * 2 - 1  # 32 px images, resized to 64 for the trunk
    with torch.no_grad():
        raw = d.backbone(torch.zeros(2, 3, 64, 64))
        mixed = d.projected_features(x)
        logits, patches = d(x)
    # the trunk's four stages at strides 4, 8, 16, 32
    assert [tuple(f.shape) for f in raw] == [(2, c, 64 // s, 64 // s) for c, s in zip(FEATURE_CHANNELS, (4, 8, 16, 32))]
    # CCM: 64, 128, 256, 512 channels; CSM: 64, 64, 128, 256 at twice the resolution
    expected = ([(64, 32), (64, 16), (128, 8), (256, 4)] if csm else [(64, 16), (128, 8), (256, 4), (512, 2)])
    assert [tuple(f.shape) for f in mixed] == [(2, c, r, r) for c, r in expected]
    # heads stride down to 8x8 then a 4x4 conv (5x5 patch logits); smaller maps: one logit
    assert [p.shape[1] for p in patches] == [25 if r >= 8 else 1 for _, r in expected]
    assert logits.shape == (2,)
    torch.testing.assert_close(logits, torch.stack([p.mean(1) for p in patches], 1).mean(1))


def test_input_side_auto() -> None:
    assert input_side(64) == 128 and input_side(32) == 128 and input_side(256) == 256 and input_side(64, 96) == 96


def test_backbone_is_frozen_and_outside_the_state() -> None:
    torch.manual_seed(0)
    d = discriminator_from_config(_d_config())
    trunk = {k: v.clone() for k, v in d.backbone.state_dict().items()}
    fixed = {k: v.clone() for k, v in d.state_dict().items() if k.startswith(("ccm.", "csm."))}
    assert all(not p.requires_grad for p in d.backbone.parameters())
    names = set(d.state_dict())
    assert not any(k.startswith("backbone") for k in names) and {"ccm.0.weight", "csm.3.weight"} <= names
    head_ids = {id(p) for p in d.heads.parameters()}
    assert {id(p) for p in d.parameters()} == head_ids  # D's parameters are its heads only
    _, opt_d = ProjectedLoss().optimizers(torch.nn.Linear(1, 1), d, 1e-3, 1e-3, (0.5, 0.999))
    assert {id(p) for group in opt_d.param_groups for p in group["params"]} == head_ids
    d.train().requires_grad_(True)  # what GanTrainer does before D's step
    assert not d.backbone.training and all(not p.requires_grad for p in d.backbone.parameters())
    real, fake = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    out = ProjectedLoss().d_loss(d, real, fake, lambda x: x)
    opt_d.zero_grad()
    out.loss.backward()
    opt_d.step()
    for key, value in d.backbone.state_dict().items():  # weights and BN running statistics alike
        assert torch.equal(value, trunk[key]), key
    for key, value in fixed.items():
        assert torch.equal(d.state_dict()[key], value), key
    # G's gradient flows through the frozen trunk to the image
    x = fake.clone().requires_grad_(True)
    ProjectedLoss().g_loss(d, x, lambda v: v).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_random_projections_rebuilt_identically_from_the_config() -> None:
    torch.manual_seed(1)
    a = discriminator_from_config(_d_config(seed=3))
    torch.manual_seed(2)  # the projections come from the run's seed alone, not from the global stream
    b = discriminator_from_config(_d_config(seed=3))
    other = discriminator_from_config(_d_config(seed=4))
    for key in ("ccm.0.weight", "ccm.3.bias", "csm.0.weight", "csm.2.weight"):
        assert torch.equal(a.state_dict()[key], b.state_dict()[key])
        assert not torch.equal(a.state_dict()[key], other.state_dict()[key])
    assert not torch.equal(a.state_dict()["heads.0.0.weight_orig"], b.state_dict()["heads.0.0.weight_orig"])


def test_loss_object_hinge_over_heads() -> None:
    class FakeD(torch.nn.Module):
        def forward(self, x):
            v = x.mean(dim=(1, 2, 3))[:, None]
            heads = [v.expand(-1, 25), 2 * v.expand(-1, 1)]
            return torch.stack([h.mean(1) for h in heads], 1).mean(1), heads

    real, fake = torch.full((2, 1, 4, 4), 0.5), torch.full((2, 1, 4, 4), -0.25)
    out = ProjectedLoss().d_loss(FakeD(), real, fake, lambda x: x)
    # head 1: relu(1 - 0.5) + relu(1 - 0.25) = 1.25; head 2: relu(1 - 1) + relu(1 - 0.5) = 0.5; mean 0.875
    assert float(out.loss) == pytest.approx(0.875) and out.extras.numel() == 0
    assert float(out.logit_real[0]) == pytest.approx(0.75)
    assert float(ProjectedLoss().g_loss(FakeD(), fake, lambda x: x)) == pytest.approx((0.25 + 0.5) / 2)


def test_discriminator_step_lowers_the_hinge_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    d = discriminator_from_config(_d_config(projected_csm=False)).train()
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    real = torch.stack([torch.exp(-((xx - c) ** 2 + yy ** 2) / 0.05)[None] * 2 - 1 for c in (-0.5, 0, 0.5, 0.2)])
    fake = torch.rand(4, 1, 32, 32) * 2 - 1  # noise against blobs
    opt = torch.optim.Adam(d.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        logit_real, heads_real = d(real)
        _, heads_fake = d(fake)
        loss = sum(hinge_d(r, f) for r, f in zip(heads_real, heads_fake)) / 4
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3, losses
    with torch.no_grad():
        assert float(hinge_g(d(fake)[1][0])) > 0  # D now calls the noise fake


def test_run_folder_load_generator_and_synth_scorer(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    warnings: list[str] = []
    trainer = GanTrainer(_config(data, run, steps=3, sample_every=3, eval_every=10), warn=warnings.append)
    assert any("--eval-features efficientnet_lite0" in w for w in warnings)  # the gamed feature space is named
    result = trainer.fit()
    assert result.status == "done"
    state = load_checkpoint(run / "checkpoints" / "last.pt")  # weights_only=True
    assert state["config"]["arch"] == "projected" and state["augment"]["mode"] == "ada"
    assert not any(k.startswith("backbone") for k in state["D"])  # rebuilt from the package, not saved
    assert {"r_t", "aug_p", "D_x"} <= set(read_metrics(run)[0])
    assert (run / "samples" / "step_000003.png").is_file() and (run / "losses.png").is_file()
    g, config = load_generator(run)
    assert isinstance(g, FastganGenerator)
    score = discriminator_scorer(state, config, torch.device("cpu"), run)  # synth --filter-by disc
    s = score(torch.randint(0, 256, (5, 1, 32, 32), dtype=torch.uint8))
    assert s.shape == (5,) and torch.isfinite(s).all()
    d = discriminator_from_config(config)
    d.load_state_dict(state["D"])
    torch.testing.assert_close(d.state_dict()["ccm.1.weight"], state["D"]["ccm.1.weight"])


def test_resume_matches_uninterrupted_run_with_ada(data: Path, tmp_path: Path) -> None:
    kw = dict(augment_p="ada:0.2", ada_kimg=0.02, ada_interval=2, lr_d=5e-3)  # p moves by 0.4 per update
    # stops mid-epoch and mid-ADA-interval
    straight, split = train_straight_and_split(partial(_config, data), tmp_path, stop=3, steps=5, **kw)
    assert any(float(r["aug_p"]) > 0 for r in read_metrics(straight))  # p did move
    assert_same_gan_runs(straight, split, ("loss_D", "loss_G", "D_x", "D_G_z", "r_t", "aug_p", "diversity"))


def test_defaults_and_refused_combinations(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = TrainGanConfig(data="d", class_index=0, out="o", arch="projected", size=64)
    cfg.validate()
    assert cfg.augment_p == "ada:0.6" and cfg.lr_d == 2e-4
    assert isinstance(generator_from_config({"arch": "projected", "size": 64, "channels": ["green"], "g_width": 16}),
                      FastganGenerator)
    with pytest.raises(ProtganError, match="--projected-input 100"):
        TrainGanConfig(data="d", class_index=0, out="o", arch="projected", size=64, projected_input=100).validate()
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "c"), "--arch", "projected",
                            "--class", "0", "--projected-input", "100"], capsys)
    assert_one_line_error(code, err, "--projected-input 100")
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "f"), "--arch", "fastgan",
                            "--class", "0", "--projected-pixel"], capsys)
    assert_one_line_error(code, err, "only with --arch projected")
    assert not (tmp_path / "f").exists()  # refused before anything is written


def test_pixel_head_is_a_fifth_head_on_the_image() -> None:
    plain = discriminator_from_config(_d_config())
    d = discriminator_from_config(_d_config(projected_pixel=True))
    assert len(plain.heads) == 4 and len(d.heads) == 5 and not plain.pixel and d.pixel
    # the four feature heads and the random projections are those of the paper's D (same seed)
    for key, value in plain.state_dict().items():
        if key.startswith(("ccm.", "csm.")):
            assert torch.equal(d.state_dict()[key], value), key
    assert d.heads[4][0].weight_orig.shape[1] == 1  # on the image's one channel, not on features
    x = torch.zeros(2, 1, 32, 32, requires_grad=True)
    logits, patches = d(x)
    assert len(patches) == 5 and patches[4].shape == (2, 25)  # 32 -> 16 -> 8, then 5x5 patch logits
    torch.testing.assert_close(logits, torch.stack([p.mean(1) for p in patches], 1).mean(1))
    patches[4].sum().backward()  # the pixel head reads the pixels directly: a gradient on every pixel
    assert (x.grad[0, 0].abs() > 0).float().mean() > 0.9
    conditional = discriminator_from_config(_d_config(projected_pixel=True, conditional=True, class_subset=[0, 3]))
    assert len(conditional.proj) == 5  # the pixel head is a projection discriminator on the labels too
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    with torch.no_grad():
        body = conditional.heads[4][:-1](x)
        _, by_label = conditional(x, y=y)
        torch.testing.assert_close(by_label[4], conditional.heads[4][-1](body).flatten(1) + conditional.proj[4](body, y)[:, None])
    with pytest.raises(ProtganError, match="only with --arch projected"):
        TrainGanConfig(data="d", class_index=0, out="o", arch="fastgan", size=64, projected_pixel=True).validate()


def test_pixel_head_learns_a_one_pixel_dot() -> None:
    """Fields of blobs with and without a one-pixel bright dot in each blob (the Nucleoli evidence): a few
    Adam steps of the pixel head alone tell them apart, at a shift it was not trained on."""
    torch.manual_seed(0)
    d = discriminator_from_config(_d_config(projected_pixel=True)).train()
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    centres = [(8, 8), (8, 24), (24, 8), (24, 24), (16, 16)]
    blobs = sum(torch.exp(-((xx - a) ** 2 + (yy - b) ** 2) / 8.0) for a, b in centres) * 0.5

    def field(dots: bool, shift: int) -> torch.Tensor:
        img = blobs.clone()
        if dots:
            for a, b in centres:
                img[b, a] = 1.0
        return torch.roll(img, (shift, -shift), (0, 1))[None] * 2 - 1

    real = torch.stack([field(True, s) for s in range(4)])
    fake = torch.stack([field(False, s) for s in range(4)])
    opt = torch.optim.Adam(d.heads[4].parameters(), lr=5e-3)
    for _ in range(30):
        _, heads_real = d(real)
        _, heads_fake = d(fake)
        loss = hinge_d(heads_real[4], heads_fake[4])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        d.eval()
        gap = d(field(True, 5)[None])[1][4].mean() - d(field(False, 5)[None])[1][4].mean()  # an unseen shift
    assert float(gap) > 1.0


def test_pixel_head_run_resumes_and_rebuilds(data: Path, tmp_path: Path) -> None:
    straight, split = train_straight_and_split(partial(_config, data), tmp_path, stop=2, steps=4, projected_pixel=True)
    assert_same_gan_runs(straight, split, ("loss_D", "loss_G", "D_x", "D_G_z"))
    state = load_checkpoint(straight / "checkpoints" / "last.pt")
    assert any(k.startswith("heads.4.") for k in state["D"])
    d = discriminator_from_config(state["config"])  # strict load: the config rebuilds the pixel head
    d.load_state_dict(state["D"])
    old = {k: v for k, v in state["config"].items() if k != "projected_pixel"}  # runs from before the option
    assert len(discriminator_from_config(old).heads) == 4
