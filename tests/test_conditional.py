"""train-gan --conditional: one G/D for a class subset (protgan.gan.conditional), and synth --labels on it."""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from protgan.core.errors import ProtganError
from PIL import Image

from protgan.data import open_dataset
from protgan.gan import conditional, load_checkpoint
from protgan.gan.checkpoint import discriminator_from_config, find_runs, generator_from_config, image_logits
from protgan.gan.conditional import ConditionalBatchNorm2d, PerClassEval, Projection
from protgan.gan.synth import SynthConfig, run_synth
from protgan.gan.train import EpochSampler, GanTrainer
from tests.cli_helpers import assert_one_line_error, run_cli
from tests.conftest import assert_same_gan_runs, make_dataset, read_metrics, tiny_gan_config, train_straight_and_split

pytestmark = pytest.mark.usefixtures("one_thread")

SUBSET = [0, 25, 2]
# 0: 9 images (3 with 25, 1 with 2), 25: 7, 2: 4; 21 and 23 are outside the subset: img 17 keeps (0,),
# images 18-19 have no label of the subset and are dropped
TARGETS = ([(0,)] * 5 + [(25,)] * 4 + [(0, 25)] * 3 + [(2,)] * 3 + [(0, 2)] + [(2, 21)] + [(0, 23)]
           + [(21,), (23, 21)])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("cond") / "d", TARGETS, size=32, channels=("red", "green", "blue"))


def _config(data: Path, out: Path, **kw):
    base = dict(class_index=None, conditional=True, classes=",".join(map(str, SUBSET)), arch="fastgan",
                batch_size=4, steps=3)
    return tiny_gan_config(data, out, **{**base, **kw})


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cond_run") / "run"
    GanTrainer(_config(data, out, steps=2, sample_every=2)).fit()
    return out


def test_trains_on_every_image_of_the_subset_with_its_labels(data: Path, tmp_path: Path) -> None:
    trainer = GanTrainer(_config(data, tmp_path / "r"))
    ds = open_dataset(data)
    expected = [i for i, t in zip(ds.ids, ds.targets) if set(t) & set(SUBSET)]
    assert trainer.cfg.train_ids == sorted(expected) and len(expected) == 18
    assert trainer.n_unlabeled == 2 and trainer.cfg.class_subset == SUBSET
    every = GanTrainer(_config(data, tmp_path / "all", classes="all")).cfg.class_subset
    assert every == [0, 2, 21, 23, 25]  # `all`: the classes with an image, not 28 label dimensions
    target_of = dict(zip(ds.ids, ds.targets))
    for i, row in zip(trainer.dataset.ids, trainer.dataset.labels.tolist()):  # 21 and 23 dropped from the label sets
        assert row == [float(c in target_of[i]) for c in SUBSET], i


@pytest.mark.parametrize("arch", ["fastgan", "dcgan", "projected", "projected+class", "projected+patch",
                                  "fastgan+transition"])
def test_resume_matches_uninterrupted_run(data: Path, tmp_path: Path, arch: str) -> None:
    arch, *extras = arch.split("+")
    class_loss = "class" in extras
    kw = dict(arch=arch, g_width=32, d_width=32) if arch == "dcgan" else dict(arch=arch, g_width=16, d_width=16)
    if arch != "dcgan":
        kw.update(augment_p="ada:0.2", ada_kimg=0.05, ada_interval=3, lr_d=5e-3)
    if arch == "projected":
        kw.update(projected_input=64)
    if class_loss:
        kw.update(class_loss=1.0)
    if "patch" in extras:
        kw.update(projection="patch")
    if "transition" in extras:  # the resume (step 6) lands inside the ramp
        kw.update(cond_transition="2:9")
    columns = ("loss_D", "loss_G", "D_x", "D_G_z", "diversity", "aug_p", "r_t") + (("loss_cls",) if class_loss else ())
    columns += ("label_strength",) if "transition" in extras else ()
    # stops mid-epoch (4 batches of 18 draws)
    straight, split = train_straight_and_split(partial(_config, data), tmp_path, stop=6, steps=7, **kw)
    sa = assert_same_gan_runs(straight, split, columns)
    assert any("gain" in name for name in sa["G"])  # the conditional layers are in the state
    assert any(name.startswith("classifier.") for name in sa["D"]) == class_loss
    if class_loss:
        assert all(np.isfinite(float(r["loss_cls"])) for r in read_metrics(straight))


def test_transition_schedule_and_its_option_errors(data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """--cond-transition START:END: lambda 0 before START, linear to 1 at END; one-line errors otherwise."""
    from protgan.gan.config import parse_transition

    assert parse_transition("off") is None and parse_transition("") is None
    assert parse_transition("500:1500") == (500, 1500)
    strength = [conditional.label_strength_at(t, (2, 6)) for t in range(8)]
    assert strength == [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert [conditional.label_strength_at(t, (3, 3)) for t in (2, 3)] == [0.0, 1.0]  # START = END: a switch
    assert conditional.label_strength_at(0, None) == 1.0
    for bad in ("9:2", "5", "a:b", "-1:4"):
        with pytest.raises(ProtganError, match="--cond-transition"):
            parse_transition(bad)
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "c"), "--conditional",
                            "--classes", "0,25", "--cond-transition", "9:2", "--size", "32"], capsys)
    assert_one_line_error(code, err, "--cond-transition '9:2': expected START:END steps")
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "c"), "--class", "0",
                            "--cond-transition", "1:2", "--size", "32"], capsys)
    assert_one_line_error(code, err, "--cond-transition 1:2: only with --conditional")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("arch", ["dcgan", "fastgan", "projected"])
def test_transition_scales_the_labels_g_and_d_see(arch: str) -> None:
    """A transitional model at strength lambda is the plain conditional model given lambda * y: at 0 it ignores
    the labels (G's output and D's logits are those of y = 0, D's those of no labels at all)."""
    config = dict(arch=arch, size=32, channels=["red", "green", "blue"], g_width=32, d_width=32, z_dim=8,
                  projected_input=64, conditional=True, class_subset=SUBSET,
                  projection="patch" if arch == "projected" else "pooled")
    torch.manual_seed(0)
    plain_g, plain_d = generator_from_config(config).eval(), discriminator_from_config(config).eval()
    for m in list(plain_g.modules()) + list(plain_d.modules()):  # trained-like label maps (fresh ones are zero)
        for name in ("gain", "shift"):
            if isinstance(m, ConditionalBatchNorm2d):
                torch.nn.init.normal_(getattr(m, name).weight, 0, 0.5)
    g = generator_from_config({**config, "cond_transition": "10:20"}).eval()
    d = discriminator_from_config({**config, "cond_transition": "10:20"}).eval()
    g.load_state_dict(plain_g.state_dict(), strict=False)
    d.load_state_dict(plain_d.state_dict(), strict=False)
    assert "label_strength.value" in g.state_dict() and "label_strength.value" in d.state_dict()
    z, x = torch.randn(3, 8), torch.rand(3, 3, 32, 32) * 2 - 1
    y1, y2 = torch.eye(3)[[0, 1, 2]], torch.eye(3)[[1, 2, 0]] + torch.eye(3)[[0, 0, 1]]
    with torch.no_grad():
        for value in (1.0, 0.5, 0.0):
            conditional.set_label_strength((g, d), value)
            torch.testing.assert_close(g(z, y1), plain_g(z, value * y1))
            torch.testing.assert_close(image_logits(d(x, y=y2)), image_logits(plain_d(x, y=value * y2)))
        assert (plain_g(z, y1) - plain_g(z, y2)).abs().max() > 1e-3  # the labels matter at full strength
        torch.testing.assert_close(g(z, y1), g(z, y2))  # and not at all at 0
        torch.testing.assert_close(image_logits(d(x, y=y1)), image_logits(plain_d(x)))


def test_transition_run_logs_lambda_and_synth_samples_at_it(data: Path, tmp_path: Path) -> None:
    """The trainer writes lambda before each step (metrics.csv's label_strength); the checkpoint's G, G_ema and D
    carry the value the run reached, which synth's generator loads."""
    from protgan.gan.checkpoint import load_generator

    out = tmp_path / "r"
    GanTrainer(_config(data, out, steps=5, cond_transition="1:5", ckpt_every=0)).fit()
    logged = [float(r["label_strength"]) for r in read_metrics(out)]
    assert logged == [0.0, 0.25, 0.5, 0.75, 1.0]  # after steps 1..5: the strength of the coming step
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    # the last step (index 4) trained at 0.75; G_ema copied G's buffer after it
    for key in ("G", "G_ema", "D"):
        assert float(state[key]["label_strength.value"]) == 0.75, key
    g, _ = load_generator(out / "checkpoints" / "last.pt")
    assert float(g.label_strength.value) == 0.75


def _expected_sets(table: list[tuple[int, ...]], c: int) -> Counter:
    carrying = [tuple(sorted(t)) for t in table if c in t]
    return Counter({s: n / len(carrying) for s, n in Counter(carrying).items()})


def test_follow_real_reproduces_the_pair_cooccurrence() -> None:
    rng = np.random.default_rng(0)
    k, n_draw = 5, 4000  # a table with real-like co-occurrence: pairs and a triple, imbalanced
    table = [tuple(sorted(set(rng.choice(k, size=rng.choice([1, 1, 2, 3]), replace=True, p=[.4, .3, .15, .1, .05]))))
             for _ in range(300)]
    for c in range(k):
        draws = conditional.follow_real_sets(table, c, n_draw, np.random.default_rng(c))
        assert all(c in s for s in draws)
        carrying = [t for t in table if c in t]
        for other in range(k):  # P(other | c): binomial, 4 sigma
            p = sum(other in t for t in carrying) / len(carrying)
            got = sum(other in s for s in draws) / n_draw
            assert abs(got - p) <= 4 * np.sqrt(p * (1 - p) / n_draw) + 1e-12, (c, other, got, p)


def test_synth_follow_real_and_single(run: Path, data: Path, tmp_path: Path) -> None:
    n = 300
    m = run_synth(SynthConfig(runs=str(run), out=str(tmp_path / "fr"), per_class=n, labels="follow-real",
                              device="cpu", writers=1))
    assert m["labels"] == "follow-real" and {e["class_index"]: e["count"] for e in m["classes"]} == {c: n for c in SUBSET}
    syn = open_dataset(tmp_path / "fr")
    ds = open_dataset(data)
    real = [tuple(sorted(c for c in t if c in SUBSET)) for t in ds.targets]
    for c in SUBSET:  # each class's label sets follow the real ones carrying it (binomial, 4 sigma)
        got = Counter(tuple(t) for i, t in zip(syn.ids, syn.targets) if i.startswith(f"syn-c{c:02d}"))
        for labels, p in _expected_sets(real, c).items():
            assert abs(got[labels] / n - p) <= 4 * np.sqrt(p * (1 - p) / n), (c, labels, got, p)
        assert set(got) <= set(_expected_sets(real, c))
    single = run_synth(SynthConfig(runs=str(run), out=str(tmp_path / "single"), per_class=4, device="cpu", writers=1))
    assert single["labels"] == "single"
    syn = open_dataset(tmp_path / "single")
    assert [(i[:7], t) for i, t in zip(syn.ids, syn.targets)] == [(f"syn-c{c:02d}", (c,)) for c in sorted(SUBSET)
                                                                  for _ in range(4)]  # the class alone
    # provenance: each class's record is the run's training images (the leakage check reads it)
    ids = json.loads((tmp_path / "single" / "generator_ids.json").read_text())
    assert {int(c) for c in ids} == set(SUBSET)
    assert all(v == load_checkpoint(run / "checkpoints" / "last.pt")["config"]["train_ids"] for v in ids.values())


def test_find_runs_maps_every_class_of_a_conditional_run(run: Path) -> None:
    assert find_runs(run) == {c: run for c in SUBSET}  # what synth --runs and compare --gan-runs look up


@pytest.mark.parametrize("arch", ["dcgan", "fastgan", "projected"])
def test_projection_discriminator_and_unconditional_builds(arch: str) -> None:
    config = dict(arch=arch, size=32, channels=["red", "green", "blue"], g_width=32, d_width=32, z_dim=8,
                  projected_input=64)
    torch.manual_seed(0)
    d = discriminator_from_config({**config, "conditional": True, "class_subset": SUBSET}).eval()
    projections = [m for m in d.modules() if isinstance(m, Projection)]
    assert projections
    for p in projections:  # a trained embedding (fresh ones of dcgan are tiny)
        torch.nn.init.normal_(p.embed.weight if arch == "dcgan" else p.embed.weight_orig, 0, 1)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    y1, y2 = torch.eye(3)[[0, 0, 0]], torch.eye(3)[[1, 2, 1]]
    with torch.no_grad():
        l1, l2, l0 = image_logits(d(x, y=y1)), image_logits(d(x, y=y2)), image_logits(d(x))
    assert l1.shape == (3,) and (l1 - l2).abs().min() > 1e-4 and (l1 - l0).abs().min() > 1e-4
    if arch == "fastgan":  # the projection is added to every patch logit: the image logit is their mean
        with torch.no_grad():
            logits, patches, _ = d(x, y=y1)
        torch.testing.assert_close(logits, patches.mean(1))
    if arch == "projected":  # per head: the same patch logits as unconditional, each shifted by its projection
        with torch.no_grad():
            _, plain_heads = d(x)
            logits, heads = d(x, y=y1)
        assert len(projections) == len(heads) == 4
        for h, p in zip(heads, plain_heads):
            shift = h - p  # an untrained D's logits are large (up to ~1e5): float32 rounding scales with them
            torch.testing.assert_close(shift, shift[:, :1].expand_as(shift), rtol=0, atol=1e-6 * float(p.abs().max()))
            assert shift.abs().min() > 1e-3
        torch.testing.assert_close(logits, torch.stack([h.mean(1) for h in heads], 1).mean(1))
    g = generator_from_config({**config, "conditional": True, "class_subset": SUBSET}).eval()
    for m in g.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            torch.nn.init.normal_(m.gain.weight, 0, 0.5)
    z = torch.randn(3, 8)
    with torch.no_grad():
        assert (g(z, y1) - g(z, y2)).abs().max() > 1e-3
    for plain in (generator_from_config(config), discriminator_from_config(config)):  # no conditional piece
        assert not any(isinstance(m, (ConditionalBatchNorm2d, Projection)) for m in plain.modules())
        assert not any(k for k in plain.state_dict() if "gain" in k or "shift" in k or "embed" in k or "proj" in k)


def test_patch_projection_shifts_each_patch_by_its_labels_class_maps() -> None:
    """--projection patch: each head's patch logits are the unconditional ones plus, per patch, the sum over
    the image's labels of that class's patch-logit map (a per-class conv on the head's body)."""
    from protgan.gan.conditional import PatchProjection

    torch.manual_seed(0)
    d = discriminator_from_config(dict(arch="projected", size=32, channels=["red", "green", "blue"], d_width=16,
                                       projected_input=64, projected_pixel=True, conditional=True,
                                       class_subset=SUBSET, projection="patch")).eval()
    assert len(d.proj) == len(d.heads) == 5 and all(isinstance(p, PatchProjection) for p in d.proj)
    assert not any(isinstance(m, Projection) for m in d.modules())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    eye = torch.eye(3)
    with torch.no_grad():
        _, plain = d(x)
        inputs = d.projected_features(x) + [x]
        bodies = [h[:-1](f) for h, f in zip(d.heads, inputs)]
        for c in range(3):  # one label: the shift is class c's map, patch by patch
            _, heads = d(x, y=eye[[c, c]])
            for h, p, proj, body in zip(heads, plain, d.proj, bodies):
                expected = proj.conv(body)[:, c].flatten(1)
                torch.testing.assert_close(h - p, expected, rtol=1e-4, atol=1e-5 * float(p.abs().max()))
                if expected.shape[1] > 1:  # not one term for the whole image (the pooled form)
                    assert expected.std(dim=1).min() > 1e-4
        assert max(p.shape[1] for p in plain) == 25  # 5 x 5 patches at the finest heads
        _, both = d(x, y=(eye[0] + eye[2]).expand(2, 3))  # a label set: the sum of its classes' maps
        _, first = d(x, y=eye[[0, 0]])
        _, last = d(x, y=eye[[2, 2]])
        for b, f, l, p in zip(both, first, last, plain):
            torch.testing.assert_close(b - p, (f - p) + (l - p), rtol=1e-4, atol=1e-5 * float(p.abs().max()))


def test_projection_patch_only_with_conditional_projected(data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ProtganError, match="--projection patch: only with --conditional --arch projected"):
        GanTrainer(_config(data, tmp_path / "r", projection="patch"))  # fastgan
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "c"), "--class", "0",
                            "--arch", "projected", "--projection", "patch", "--size", "32"], capsys)
    assert_one_line_error(code, err, "--projection patch: only with --conditional --arch projected")
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "c"), "--conditional",
                            "--classes", "0,25", "--arch", "projected", "--projection", "pixel", "--size", "32"],
                           capsys)
    assert code != 0 and "pixel" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()


def test_class_loss_teaches_d_the_real_labels_and_g_the_label_evidence() -> None:
    """--class-loss: D's class head learns real images' label sets, and G's loss pulls fakes towards being
    classified as their labels (the gradient reaches the image through the class head)."""
    from protgan.gan.losses import ProjectedLoss

    torch.manual_seed(0)
    d = discriminator_from_config(dict(arch="projected", size=32, channels=["red", "green", "blue"], d_width=16,
                                       projected_input=64, projected_pixel=True, conditional=True,
                                       class_subset=SUBSET, class_loss=1.0))
    assert len(d.classifier) == len(d.heads) == 5  # four feature heads and the pixel head
    loss = ProjectedLoss(class_weight=1.0)
    assert loss.extra_names == ("loss_cls",) and ProjectedLoss().extra_names == ()
    gen = torch.Generator().manual_seed(1)
    colour = torch.eye(3)[:, :, None, None]  # class k: channel k bright (a learnable label signal)
    y = torch.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]]
    real = (0.8 * (y @ colour.flatten(1)).reshape(8, 3, 1, 1) + 0.2 * torch.rand(8, 3, 32, 32, generator=gen)) * 2 - 1
    fake = torch.rand(8, 3, 32, 32, generator=gen) * 2 - 1
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        out = loss.d_loss(d, real, fake, lambda t: t, y, y)
        first = float(out.extras[0]) if first is None else first
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert float(loss.d_loss(d, real, fake, lambda t: t, y, y).extras[0]) < 0.3 * first  # BCE of the real labels
    d.requires_grad_(False)
    start = torch.rand(8, 3, 32, 32, generator=gen) * 2 - 1  # G's output, as a leaf
    target = torch.eye(3)[[2, 1, 0, 2, 1, 0, 2, 1]]

    def pulled(objective: ProjectedLoss) -> float:
        """The class head's BCE of `target` on `start` after 30 Adam steps on the image against objective.g_loss."""
        image = start.clone().requires_grad_(True)
        step = torch.optim.Adam([image], lr=2e-2)
        for _ in range(30):
            step.zero_grad()
            objective.g_loss(d, image, lambda t: t, target).backward()
            step.step()
            image.data.clamp_(-1, 1)
        with torch.no_grad():
            return float(torch.nn.functional.binary_cross_entropy_with_logits(d(image, classify=True)[2], target))

    with torch.no_grad():
        before = float(torch.nn.functional.binary_cross_entropy_with_logits(d(start, classify=True)[2], target))
    with_class, without = pulled(loss), pulled(ProjectedLoss())  # without: the class head has no say
    assert with_class < 0.7 * before and with_class < without - 0.1, (before, with_class, without)


def test_class_loss_only_with_conditional_projected(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ProtganError, match="--class-loss 1.0: only with --conditional --arch projected"):
        GanTrainer(_config(data, tmp_path / "r", class_loss=1.0))  # fastgan
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "c"), "--class", "0",
                            "--arch", "projected", "--class-loss", "1", "--size", "32"], capsys)
    assert_one_line_error(code, err, "--class-loss 1.0: only with --conditional --arch projected")
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "c"), "--conditional",
                            "--classes", "0,25", "--arch", "projected", "--class-loss", "-1", "--size", "32"], capsys)
    assert_one_line_error(code, err, "--class-loss -1.0: must be >= 0")
    assert not (tmp_path / "c").exists()
    plain = discriminator_from_config(dict(arch="projected", size=32, channels=["red", "green", "blue"], d_width=16,
                                           projected_input=64, conditional=True, class_subset=SUBSET))
    assert plain.classifier is None and not any(k.startswith("classifier") for k in plain.state_dict())


def test_balance_uniform_draws_classes_equally(tmp_path: Path) -> None:
    labels = conditional.multi_hot([(0,)] * 60 + [(1,)] * 12 + [(2,)] * 3, 3)  # imbalanced, 20:4:1
    n = 30_000
    for balance, rates in (("uniform", [1 / 3] * 3), ("real", [60 / 75, 12 / 75, 3 / 75])):
        weights = conditional.balance_weights(labels, balance)
        if balance == "uniform":
            drawn = EpochSampler(len(labels), seed=1, batch_size=4, weights=weights)
            order = [i for e in range(n // len(labels) + 1) for i in drawn.permutation(e)][:n]
        else:
            order = torch.multinomial(weights.float(), n, replacement=True).tolist()
        counts = labels[order].sum(0) / n
        for got, p in zip(counts.tolist(), rates):
            assert abs(got - p) <= 4 * np.sqrt(p * (1 - p) / n), (balance, counts, rates)
    # multi-label: each image weighs the mean of 1/count over its labels; single-label images 1/count exactly
    w = conditional.balance_weights(conditional.multi_hot([(0,), (0, 1), (1,), (1,)], 2), "uniform")
    torch.testing.assert_close(w, torch.tensor([1 / 2, (1 / 2 + 1 / 3) / 2, 1 / 3, 1 / 3], dtype=torch.float64))


def test_fake_labels_follow_the_balance(data: Path, tmp_path: Path) -> None:
    trainer = GanTrainer(_config(data, tmp_path / "r", balance="uniform"))
    torch.manual_seed(0)
    y = trainer._fake_labels(20_000)
    rows = {tuple(r) for r in y.tolist()}
    assert rows <= {tuple(r) for r in trainer.dataset.labels.tolist()}  # real label sets only
    rate = y.sum(0) / y.sum()
    assert (rate.max() - rate.min()) < 0.12, rate  # near equal (multi-label sets make it approximate)
    real = GanTrainer(_config(data, tmp_path / "q", balance="real"))._fake_labels(20_000)
    freq = trainer.dataset.labels.mean(0)  # real: the images' own frequencies
    torch.testing.assert_close(real.mean(0), freq, atol=0.02, rtol=0)


def test_grids_have_one_row_per_class(run: Path) -> None:
    cols = conditional.grid_columns(4, len(SUBSET))  # tiny_gan_config's n_samples = 4
    for name in ("real.png", "step_000002.png"):
        grid = np.asarray(Image.open(run / "samples" / name))
        assert grid.shape[:2] == (len(SUBSET) * 34 + 2, cols * 34 + 2), name  # 32 px + 2 px gaps


def test_per_class_eval_columns_and_best_checkpoint(data: Path, tmp_path: Path) -> None:
    seen: dict[int, tuple[int, torch.Tensor]] = {}

    class StubEval:  # a stub KID: the class's position, after generating with the label vectors it was given
        n_fake = 200
        conditions: torch.Tensor | None = None

        def __call__(self, proxy, step):
            assert self.conditions is not None
            images = proxy.generate(z=torch.zeros(2, proxy.cfg.z_dim), y=self.conditions[:2])
            seen[proxy.position] = (len(proxy.dataset), self.conditions)
            return {"kid": float(proxy.position) + step, "kid_std": 0.1, "fid": 1.0 + images.shape[0]}

    out = tmp_path / "r"
    GanTrainer(_config(data, out, steps=2, eval_every=2), eval_fn=PerClassEval(StubEval)).fit()
    row = read_metrics(out)[-1]
    assert float(row["kid_c0"]) == 2 and float(row["kid_c25"]) == 3 and float(row["kid_c2"]) == 4
    assert float(row["score"]) == pytest.approx(3.0) and (out / "checkpoints" / "best.pt").is_file()
    # each class's real images: every training image carrying it; its fakes: the label sets of those images
    assert {p: n for p, (n, _) in seen.items()} == {0: 10, 1: 7, 2: 5}
    real_sets = {0: {(0,): 6, (0, 1): 3, (0, 2): 1}, 1: {(1,): 4, (0, 1): 3}, 2: {(2,): 4, (0, 2): 1}}
    for position, (n, y) in seen.items():
        drawn = Counter(tuple(torch.nonzero(r).flatten().tolist()) for r in y)
        assert set(drawn) == set(real_sets[position]) and sum(drawn.values()) == 200
        for labels, count in real_sets[position].items():  # binomial: within 4 sigma of n_fake * share
            share = count / n
            assert abs(drawn[labels] - 200 * share) <= 4 * (200 * share * (1 - share)) ** 0.5 + 1


def test_bad_input_one_line(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ProtganError, match="no image carries a label of 5"):
        GanTrainer(_config(data, tmp_path / "r", classes="5"))
    with pytest.raises(ProtganError, match="--conditional with --class 0"):
        GanTrainer(_config(data, tmp_path / "r", class_index=0))
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "c"), "--conditional",
                            "--classes", "4,5", "--size", "32", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, "no image carries a label of 4, 5")
    code, _, err = run_cli(["train-gan", "--data", str(data), "--out", str(tmp_path / "c"), "--conditional",
                            "--class", "0", "--size", "32"], capsys)
    assert_one_line_error(code, err, "--conditional with --class 0")


def test_fanout_plans_one_conditional_job_per_fold(tmp_path: Path) -> None:
    from protgan.gan.fanout import plan_jobs

    data = make_dataset(tmp_path / "d", TARGETS, size=32, channels=("red", "green", "blue"))
    base = {k: v for k, v in vars(_config(data, tmp_path / "runs")).items() if k != "class_index"}
    jobs = plan_jobs({**base, "folds": 2, "fold": None}, "0,25,2", tmp_path / "runs")
    assert [(j.label, j.out) for j in jobs] == [(f"conditional fold {f}", tmp_path / "runs" / f"fold_{f}" / "conditional")
                                                for f in (0, 1)]
    assert all(j.config["conditional"] and j.config["class_index"] is None and j.config["fold"] == j.fold for j in jobs)


def test_collapse_indicator_is_per_class(data: Path, tmp_path: Path) -> None:
    """One collapsed class among healthy ones: the conditional diversity is that class's ratio, and it warns."""
    from protgan.gan.conditional import class_spreads

    rows = torch.rand(3, 4, 3, 8, 8)
    rows[1] = rows[1, :1]  # class position 1: four copies of one image
    spreads = class_spreads(rows.flatten(0, 1), 3)
    assert spreads[1] == 0 and bool((spreads[[0, 2]] > 0.2).all())
    assert torch.allclose(spreads[0], rows[0].std(dim=0).mean())
    trainer = GanTrainer(_config(data, tmp_path / "r"))
    real = trainer.real_class_spreads
    assert real.shape == (len(SUBSET),) and bool((real > 0).all())
    healthy = trainer.generate  # the untrained G: every row spread out
    trainer._collapse_armed = True
    cols = trainer.grid_cols

    def one_class_collapsed(**kw):
        out = healthy(**kw).clone()
        out[2 * cols:3 * cols] = out[2 * cols]  # the third class (position 2): one image repeated
        return out

    trainer.generate = one_class_collapsed
    assert trainer.diversity() == 0.0
    assert f"diversity (class {SUBSET[2]}) fell to 0.00" in trainer.warnings[-1]


def test_conditional_batch_norm_loads_checkpoints_of_the_subclass_layout() -> None:
    """Runs saved while ConditionalBatchNorm2d subclassed BatchNorm2d hold PREFIX.weight, not PREFIX.norm.weight:
    they load into the composed layer and compute the same outputs."""
    torch.manual_seed(0)
    layer = torch.nn.Sequential(ConditionalBatchNorm2d(6, 3))
    torch.nn.init.normal_(layer[0].gain.weight)
    layer.train()[0](torch.randn(8, 6, 4, 4), torch.ones(8, 3))  # running statistics away from 0 / 1
    old = {k.replace("norm.", ""): v for k, v in layer.state_dict().items()}
    assert "0.weight" in old and "0.running_var" in old
    fresh = torch.nn.Sequential(ConditionalBatchNorm2d(6, 3))
    fresh.load_state_dict(old)
    x, y = torch.randn(2, 6, 4, 4), torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    torch.testing.assert_close(fresh.eval()[0](x, y), layer.eval()[0](x, y))


def test_training_eval_hands_each_fake_its_label_vector(data: Path) -> None:
    """TrainingEval.conditions: fake k is generated with row k of the label vectors, whatever the slices."""
    from types import SimpleNamespace

    from protgan.data import ChannelStackDataset
    from protgan.evaluation.fid import TrainingEval

    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Recorder:  # what TrainingEval reads of a trainer; generate writes images that depend on y
        device, cfg = torch.device("cpu"), SimpleNamespace(z_dim=8, channels=["red", "green", "blue"])
        dataset = ChannelStackDataset(open_dataset(data), ["red", "green", "blue"], 32, [0], cache=None)

        def generate(self, z, use_ema=True, y=None):
            calls.append((z, y))
            return (y[:, :1, None, None] * 2 - 1).expand(len(z), 3, 32, 32).clone()

    evaluate = TrainingEval("efficientnet_lite0", n_fake=7, batch=3, kid_subsets=2)
    evaluate.conditions = conditional.multi_hot([(0,), (1,), (0, 2), (1,), (0,), (2,), (0, 1)], 3)
    evaluate(Recorder(), 1)
    assert [len(z) for z, _ in calls] == [3, 3, 1]
    torch.testing.assert_close(torch.cat([y for _, y in calls]), evaluate.conditions)
    torch.testing.assert_close(torch.cat([z for z, _ in calls]), evaluate.z)
