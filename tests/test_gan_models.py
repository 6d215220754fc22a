"""The paper's DCGAN architecture (Verma et al. 2020, Fig. 4) and DiffAugment."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from protgan.core.errors import ProtganError
from protgan.gan import build_discriminator, build_generator, num_layers
from protgan.gan.diffaug import diff_augment, parse_policy, rand_cutout, rand_translation


def _count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def _output_shapes(model: nn.Module, x: torch.Tensor, kind: type) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for m in model.modules() if isinstance(m, kind)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return shapes


def test_paper_512_model_layers_and_shapes() -> None:
    g = build_generator(512, 3).eval()
    d = build_discriminator(512, 3).eval()
    assert _count(g, nn.ConvTranspose2d) == 6 and _count(g, nn.Conv2d) == 0
    assert _count(d, nn.Conv2d) == 6 and _count(d, nn.ConvTranspose2d) == 0
    # BN between G's layers (after the dense and after each deconv but the last), none on D's input layer.
    assert _count(g, nn.BatchNorm2d) == 6 and _count(d, nn.BatchNorm2d) == 5
    assert _count(d, nn.Dropout) == 6 and all(m.p == 0.25 for m in d.modules() if isinstance(m, nn.Dropout))
    # Keras momentum 0.8 == PyTorch momentum 0.2.
    assert all(m.momentum == pytest.approx(0.2) for m in [*g.modules(), *d.modules()] if isinstance(m, nn.BatchNorm2d))
    assert g.fc.in_features == 100 and g.fc.out_features == 8 * 8 * 1024
    for conv in [m for m in [*g.modules(), *d.modules()] if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]:
        assert conv.kernel_size == (3, 3) and conv.stride == (2, 2)
    assert d.fc.out_features == 1
    z = torch.randn(1, 100)
    assert _output_shapes(g, z, nn.ConvTranspose2d) == [
        (1, 512, 16, 16), (1, 256, 32, 32), (1, 128, 64, 64), (1, 64, 128, 128), (1, 32, 256, 256), (1, 3, 512, 512)]
    with torch.no_grad():
        img = g(z)
    assert img.shape == (1, 3, 512, 512) and img.abs().max() <= 1.0
    assert _output_shapes(d, img, nn.Conv2d) == [
        (1, 32, 256, 256), (1, 64, 128, 128), (1, 128, 64, 64), (1, 256, 32, 32), (1, 512, 16, 16), (1, 1024, 8, 8)]
    with torch.no_grad():
        assert d(img).shape == (1,)


@pytest.mark.parametrize("size,layers", [(32, 2), (64, 3), (128, 4), (256, 5), (512, 6)])
def test_layers_per_size(size: int, layers: int) -> None:
    assert num_layers(size) == layers
    g = build_generator(size, 4, width=64)
    d = build_discriminator(size, 4, width=64)
    assert _count(g, nn.ConvTranspose2d) == layers and _count(d, nn.Conv2d) == layers


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_forward_shapes_at_32(channels: int) -> None:
    g, d = build_generator(32, channels), build_discriminator(32, channels)
    x = g(torch.randn(5, 100))
    assert x.shape == (5, channels, 32, 32)
    assert d(x).shape == (5,)
    x.mean().backward()  # trainable end to end


def test_resize_generator_layers_match_the_paper_model() -> None:
    t, r = build_generator(512, 3), build_generator(512, 3, upsample="resize")
    assert _count(r, nn.ConvTranspose2d) == 0 and _count(r, nn.Conv2d) == 6 and _count(r, nn.Upsample) == 6
    assert sum(p.numel() for p in r.parameters()) == sum(p.numel() for p in t.parameters())
    assert _count(r, nn.BatchNorm2d) == 6
    with torch.no_grad():
        assert r(torch.randn(2, 100)).shape == (2, 3, 512, 512)
    with pytest.raises(ProtganError, match="--g-upsample 'bilinear'"):
        build_generator(64, 3, upsample="bilinear")


def _constant_weights_output(upsample: str) -> torch.Tensor:
    """G with every weight a positive constant and identity BN: a constant 8 x 8 grid goes in."""
    g = build_generator(32, 1, width=32, upsample=upsample).eval()
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                cin = m.in_channels
                m.weight.fill_(1.0 / (9 * cin))  # a 3x3 mean over all inputs: unit gain, tanh stays unsaturated
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.fill_(0.005)
                if m.bias is not None:
                    m.bias.zero_()
        return g(torch.ones(1, 100))[0, 0]


def test_resize_generator_has_no_checkerboard() -> None:
    # 3x3 stride-2 transposed convs give output pixels 1, 2 or 4 overlapping taps: a fixed periodic
    # pattern even from a constant input. Nearest upsample + 3x3 conv keeps a constant field constant.
    inner = (slice(4, -4), slice(4, -4))
    t, r = _constant_weights_output("transposed")[inner], _constant_weights_output("resize")[inner]
    assert r.std() < 1e-6 * r.abs().mean() + 1e-7
    assert t.std() > 0.1 * t.abs().mean()
    assert 0.3 < float(r.mean()) < 0.9  # a real signal, not a saturated tanh
    # the transposed pattern is periodic (period 2 per layer: 4 after two layers), the checkerboard
    assert float(t[0::4, 0::4].std()) < 1e-6 and float(t[1::4, 1::4].std()) < 1e-6


def test_dcgan_init() -> None:
    g = build_generator(64, 3)
    w = torch.cat([m.weight.detach().flatten() for m in g.modules() if isinstance(m, (nn.ConvTranspose2d, nn.Linear))])
    assert w.mean().abs() < 1e-3 and w.std() == pytest.approx(0.02, rel=0.02)
    gamma = torch.cat([m.weight.detach() for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert gamma.mean() == pytest.approx(1.0, abs=0.01) and gamma.std() == pytest.approx(0.02, rel=0.2)


@pytest.mark.parametrize("size", [16, 48, 100, 1024])
def test_bad_size(size: int) -> None:
    with pytest.raises(ProtganError, match=f"--size {size}: must be a power of two"):
        build_generator(size, 3)


def test_diffaug_policies() -> None:
    torch.manual_seed(0)
    x = torch.ones(16, 3, 32, 32, requires_grad=True)
    assert diff_augment(x, ()) is x
    # translation of a constant image: pixels are the constant or the zero padding shifted in, <= 1/8 per side
    t = rand_translation(x)
    assert set(t.unique().tolist()) <= {0.0, 1.0}
    rows_zero = (t[:, 0] == 0).all(dim=2).sum(dim=1)
    assert rows_zero.max() <= 4 and (t == 0).any()
    # cutout: one zeroed square of half the side (16 x 16), maybe clipped at the border
    c = rand_cutout(x)
    zeros = (c[:, 0] == 0).sum(dim=(1, 2))
    assert (zeros > 0).all() and (zeros <= 16 * 16).all() and (zeros == 256).any()
    y = diff_augment(x, parse_policy("color,translation,cutout"))
    assert y.shape == x.shape and not torch.equal(y, x)
    y.sum().backward()  # differentiable: G's gradient passes through it
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_diffaug_parse() -> None:
    assert parse_policy("") == () and parse_policy("none") == ()
    assert parse_policy("cutout, color") == ("cutout", "color")
    with pytest.raises(ProtganError, match="--diffaug.*'flip'"):
        parse_policy("color,flip")
