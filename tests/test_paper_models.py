"""The from-scratch architectures of the three related papers: shapes and parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from protgan.classify.models.concat_cnn import ConcatCNN, min_input_size
from protgan.classify.models.gapnet import GapNetPL
from protgan.classify.models.liimatainen import LiimatainenCNN, LiimatainenFCN
from protgan.core.errors import ProtganError

# Aggarwal et al. Table 3, layer by layer (512 x 512 x 3 input, 28 classes): (kind, output side, params).
AGGARWAL_TABLE3 = [
    ("conv", 510, 896), ("bn", None, 128), ("conv", 508, 9248), ("bn", None, 128),
    ("conv", 252, 18496), ("bn", None, 256), ("conv", 250, 36928), ("bn", None, 256),
    ("conv", 123, 73856), ("bn", None, 512), ("conv", 121, 147584), ("bn", None, 512),
    ("conv", 58, 295168), ("bn", None, 1024), ("conv", 56, 590080), ("bn", None, 1024),
    ("dense", 512, 245760), ("bn1d", None, 2048), ("dense", 256, 131072),
    # Printed as 4,096: a misprint, batch norm keeps 4 numbers per unit and this layer has 256 units.
    ("bn1d", None, 1024),
    ("dense", 28, 7168),
]
AGGARWAL_POOLED_SIDES = [254, 125, 60, 28]  # the GAP inputs in Table 3


def keras_count(m: nn.Module) -> int:
    """Parameters as Keras counts them: weights and biases, plus BN's moving mean and variance."""
    n = sum(p.numel() for p in m.parameters(recurse=False))
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        n += m.running_mean.numel() + m.running_var.numel()
    return n


def test_concat_cnn_matches_table3_layer_by_layer():
    model = ConcatCNN(num_classes=28, in_chans=3)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d))]
    kinds = {nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.Linear: "dense", nn.BatchNorm1d: "bn1d"}
    assert [kinds[type(m)] for m in layers] == [k for k, _, _ in AGGARWAL_TABLE3]
    assert [keras_count(m) for m in layers] == [p for _, _, p in AGGARWAL_TABLE3]
    total = sum(p for _, _, p in AGGARWAL_TABLE3)
    assert sum(keras_count(m) for m in model.modules()) == total


@torch.no_grad()
def test_concat_cnn_output_shapes_at_512():
    model = ConcatCNN(num_classes=28, in_chans=3).eval()  # one real 512 px image (meta tensors are slower here)
    x = torch.rand(1, 3, 512, 512)
    feats = model.forward_features(x)
    sides, pooled = [], []
    model.apply(lambda m: m.register_forward_hook(
        lambda mod, i, o: sides.append(o.shape[-1])) if isinstance(m, nn.Conv2d) else None)
    model.apply(lambda m: m.register_forward_hook(
        lambda mod, i, o: pooled.append(o.shape)) if isinstance(m, nn.MaxPool2d) else None)
    out = model(x)
    assert sides == [s for k, s, _ in AGGARWAL_TABLE3 if k == "conv"]
    assert [p[-1] for p in pooled] == AGGARWAL_POOLED_SIDES
    assert [p[1] for p in pooled] == [32, 64, 128, 256]
    assert tuple(feats.shape) == (1, 480)
    assert tuple(out.shape) == (1, 28)


def test_concat_cnn_rejects_too_small_inputs_with_one_line():
    assert min_input_size() == 76
    model = ConcatCNN(num_classes=5, in_chans=3).eval()
    assert model(torch.rand(1, 3, 76, 76)).shape == (1, 5)
    with pytest.raises(ProtganError, match="at least 76 px"):
        model(torch.rand(1, 3, 64, 64))


def conv_params(cin: int, cout: int, k: int = 3) -> int:
    return k * k * cin * cout + cout


@pytest.mark.parametrize("activation", ["selu", "prelu"])
def test_gapnet_pl_layers_shapes_and_parameter_count(activation):
    model = GapNetPL(num_classes=28, in_chans=4, activation=activation)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (4, 32, 2), (32, 64, 2), (64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 1), (128, 128, 1), (128, 128, 1)]
    expected = (conv_params(4, 32) + conv_params(32, 64) + 3 * conv_params(64, 64) + conv_params(64, 128)
                + 2 * conv_params(128, 128) + (224 * 256 + 256) + (256 * 256 + 256) + (256 * 28 + 28))
    if activation == "prelu":  # one slope per channel after every conv and hidden dense layer
        expected += 32 + 4 * 64 + 3 * 128 + 2 * 256
        assert any(isinstance(m, nn.PReLU) for m in model.modules())
        assert not any(isinstance(m, nn.SELU) for m in model.modules())
    else:
        assert any(isinstance(m, nn.AlphaDropout) for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) == expected
    with torch.device("meta"):
        m = GapNetPL(num_classes=28, in_chans=4, activation=activation)
        b1 = m.block1(torch.empty(2, 4, 299, 299))  # the preset's 299 x 299 x 4 input
        b2 = m.block2(b1)
        b3 = m.block3(b2)
        out = m(torch.empty(2, 4, 299, 299))
    assert tuple(b1.shape) == (2, 32, 75, 75)  # conv /2 -> 150, pool -> 75 ('SAME' padding)
    assert tuple(b2.shape) == (2, 64, 19, 19)  # conv /2 -> 38, pool -> 19
    assert tuple(b3.shape) == (2, 128, 19, 19)
    assert tuple(out.shape) == (2, 28)


def test_gapnet_selu_is_self_normalising_at_init():
    torch.manual_seed(0)
    model = GapNetPL(num_classes=28, in_chans=4, activation="selu").eval()
    x = torch.randn(8, 4, 64, 64)
    b3 = model.block3(model.block2(model.block1(x)))
    # LeCun-normal init keeps SELU activations near zero mean / unit variance through 8 convs
    assert abs(b3.mean().item()) < 0.5 and 0.3 < b3.std().item() < 2.0


def test_gapnet_rejects_unknown_activation():
    with pytest.raises(ProtganError, match="--activation"):
        GapNetPL(activation="relu")


def test_liimatainen_shared_base_and_heads():
    cnn = LiimatainenCNN(num_classes=13, in_chans=4)
    fcn = LiimatainenFCN(num_classes=13, in_chans=4)
    for model in (cnn, fcn):
        convs = [m for m in model.base.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 10  # "In total, 10 convolutional layers were used in the base network"
        assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
        assert sum(isinstance(m, nn.BatchNorm2d) for m in model.base.modules()) == 5
    assert sum(isinstance(m, nn.MaxPool2d) for m in cnn.base.modules()) == 5
    assert sum(isinstance(m, nn.MaxPool2d) for m in fcn.base.modules()) == 4  # the FCN drops the last pool
    assert sum(isinstance(m, nn.Linear) for m in cnn.modules()) == 3  # three dense layers
    assert fcn.classifier.kernel_size == (1, 1) and fcn.classifier.out_channels == 13
    # the base is the same network: identical parameter shapes, layer by layer
    assert [p.shape for p in cnn.base.parameters()] == [p.shape for p in fcn.base.parameters()]


def test_liimatainen_output_shapes_at_256():
    with torch.device("meta"):
        fcn = LiimatainenFCN(num_classes=13, in_chans=4)
        cnn = LiimatainenCNN(num_classes=13, in_chans=4)
        maps = fcn.forward_maps(torch.empty(2, 4, 256, 256))
        conf = fcn(torch.empty(2, 4, 256, 256))
        feats = cnn.base(torch.empty(2, 4, 256, 256))
        logits = cnn(torch.empty(2, 4, 256, 256))
    assert tuple(maps.shape) == (2, 13, 16, 16)  # "13 heat maps of size 16 x 16 pixels"
    assert tuple(conf.shape) == (2, 13)
    assert tuple(feats.shape) == (2, 512, 8, 8)
    assert tuple(logits.shape) == (2, 13)


def test_fcn_confidence_is_the_map_maximum():
    torch.manual_seed(0)
    fcn = LiimatainenFCN(num_classes=3, in_chans=4).eval()
    x = torch.rand(2, 4, 64, 64)
    maps = torch.sigmoid(fcn.forward_maps(x))
    assert torch.allclose(torch.sigmoid(fcn(x)), maps.amax(dim=(2, 3)), atol=1e-6)


def test_liimatainen_cnn_any_size_divisible_by_32_and_glorot_init():
    cnn = LiimatainenCNN(num_classes=5, in_chans=3).eval()
    assert cnn(torch.rand(1, 3, 64, 64)).shape == (1, 5)
    with pytest.raises(ProtganError, match="divisible by 32"):
        cnn(torch.rand(1, 3, 48, 48))
    w = cnn.base[0].weight  # Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out))
    a = (6 / (3 * 9 + 32 * 9)) ** 0.5
    assert w.abs().max() <= a and w.abs().max() > 0.8 * a
    assert torch.all(cnn.base[0].bias == 0)


def test_presets_carry_the_papers_recipes():
    from protgan.classify.train import ClassifyConfig

    g = ClassifyConfig("d", "o", preset="gapnet").resolved()
    assert (g.model, g.size, g.channels, g.optimizer, g.lr, g.momentum, g.batch_size, g.loss, g.lr_schedule,
            g.plateau_factor, g.balance, g.classes, g.pretrained) == (
        "gapnet-pl", 299, "rgby", "sgd", 0.1, 0.9, 80, "bce", "plateau", 0.5, "median:500", "all", False)
    assert ClassifyConfig("d", "o", preset="gapnet", activation="prelu").resolved().model == "gapnet-pl-prelu"
    a = ClassifyConfig("d", "o", preset="aggarwal").resolved()
    assert (a.model, a.size, a.channels, a.optimizer, a.lr, a.weight_decay, a.batch_size, a.loss, a.lr_schedule,
            a.plateau_factor, a.plateau_patience) == ("concat-cnn", 512, "rgb", "adam", 1e-3, 1e-8, 32, "bce",
                                                      "plateau", 0.1, 3)
    li = ClassifyConfig("d", "o", preset="liimatainen").resolved()
    assert (li.model, li.size, li.channels, li.optimizer, li.lr, li.batch_size, li.loss, li.lr_schedule,
            li.plateau_patience, li.epochs) == ("fcn13", 256, "rgby", "adam", 1e-3, 64, "bce", "plateau", 8, 100)
    assert abs(li.plateau_factor - 1 / 3) < 1e-12
    assert ClassifyConfig("d", "o", preset="liimatainen", model="cnn13").resolved().model == "cnn13"
    # the fine-tuning presets are unchanged: Adam with the exponential decay, 512 px RGB
    p = ClassifyConfig("d", "o", preset="paper28").resolved()
    assert (p.optimizer, p.lr_schedule, p.size, p.channels, p.augment, p.balance) == ("adam", "exp", 512, "rgb",
                                                                                       "classic", "none")


def test_plateau_schedule_cuts_after_patience_and_resumes():
    from protgan.classify.optim import EpochSchedule, make_optimizer

    def run(losses, state=None):
        opt = make_optimizer([nn.Parameter(torch.zeros(1))], "adam", 1e-3)
        sched = EpochSchedule(opt, "plateau", factor=1 / 3, patience=8)
        if state:
            sched.load_state_dict(state)
            opt.param_groups[0]["lr"] = state["lr"]
        lrs = []
        for loss in losses:
            sched.step(loss)
            lrs.append(opt.param_groups[0]["lr"])
        return lrs, {**sched.state_dict(), "lr": opt.param_groups[0]["lr"]}

    losses = [1.0, 0.9] + [0.95] * 12
    lrs, _ = run(losses)
    # best at epoch 2; epochs 3..10 are 8 epochs without a decrease -> lr / 3 from epoch 10 on
    assert lrs[:9] == [1e-3] * 9 and abs(lrs[9] - 1e-3 / 3) < 1e-12
    first, state = run(losses[:5])
    rest, _ = run(losses[5:], state)
    assert first + rest == lrs
    sgd = make_optimizer([nn.Parameter(torch.zeros(1))], "sgd", 0.1, momentum=0.9)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9


def test_dice_thresholds_are_the_f1_thresholds():
    # Liimatainen et al. pick each class's threshold by the Dice coefficient on the training data;
    # per class, Dice = 2TP / (2TP + FP + FN) = F1, so the engine's F1 tuning (step 0.01) is that rule.
    import numpy as np

    from protgan.classify.thresholds import GRID, tune_thresholds

    rng = np.random.default_rng(0)
    y = (rng.random((300, 3)) < 0.3).astype(int)
    p = np.clip(y * 0.35 + rng.random((300, 3)) * 0.65, 0, 1)
    for c in range(3):
        dice = [2 * ((p[:, c] >= t) & (y[:, c] == 1)).sum() / ((p[:, c] >= t).sum() + y[:, c].sum()) for t in GRID]
        best = GRID[np.flatnonzero(np.isclose(dice, max(dice)))]
        assert tune_thresholds(y, p)[c] in best
