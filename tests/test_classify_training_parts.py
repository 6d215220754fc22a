"""Focal loss against a hand computation, the LR and batch-size schedules, classic augmentation,
threshold tuning and the metrics against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from protgan.classify.augment import PROBABILITY_NAMES, AugmentTransform, ClassicAugment, parse_probabilities
from protgan.classify.losses import bce_loss, check_focal_alpha, focal_loss, make_loss
from protgan.classify.metrics import (
    evaluate, exact_match, label_accuracy, macro_f1, micro_f1, paper_macro_f1, per_class, roc_auc_per_class,
)
from protgan.classify.optim import EpochSchedule
from protgan.classify.schedules import batch_size_at
from protgan.classify.thresholds import GRID, apply_thresholds, tune_thresholds
from protgan.core.errors import ProtganError


# ------------------------------------------------------------------------------------ focal loss
def _hand_focal(logits, targets, gamma, alpha=None):
    total = 0.0
    for x, y in zip(logits, targets):
        p = 1 / (1 + math.exp(-x))
        pt = p if y == 1 else 1 - p
        a = 1.0 if alpha is None else (alpha if y == 1 else 1 - alpha)
        total += -a * (1 - pt) ** gamma * math.log(pt)
    return total / len(logits)


def test_focal_loss_matches_hand_computation():
    logits = [2.0, -1.0, 0.3, -3.0, 0.0, 4.0]
    targets = [1, 0, 0, 1, 1, 1]
    lt = torch.tensor(logits).view(2, 3)
    tt = torch.tensor(targets, dtype=torch.float32).view(2, 3)
    for gamma, alpha in [(2.0, None), (0.0, None), (2.0, 0.25), (1.0, 0.75)]:
        assert float(focal_loss(lt, tt, gamma, alpha)) == pytest.approx(_hand_focal(logits, targets, gamma, alpha), rel=1e-5)
    # gamma 0, no alpha: plain binary cross-entropy
    assert float(focal_loss(lt, tt, 0.0)) == pytest.approx(float(bce_loss(lt, tt)), rel=1e-6)


def test_focal_loss_is_finite_where_the_sigmoid_saturates():
    lt = torch.tensor([[80.0, -80.0]], requires_grad=True)
    tt = torch.tensor([[0.0, 1.0]])
    loss = focal_loss(lt, tt)
    loss.backward()
    assert torch.isfinite(loss) and float(loss.detach()) > 30 and torch.isfinite(lt.grad).all()


def test_focal_alpha_reading():
    assert check_focal_alpha(None) is None and check_focal_alpha(1.0) is None  # the paper's alpha = 1
    assert check_focal_alpha(0.25) == 0.25
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ProtganError, match="--focal-alpha"):
            check_focal_alpha(bad)
    with pytest.raises(ProtganError, match="--loss"):
        make_loss("hinge")


# ------------------------------------------------------------------------------------- schedules
def test_default_lr_schedule_is_the_papers_exponential_decay():
    """EpochSchedule("exp"), the schedule classify uses by default: lr during epoch e = lr0 exp(-0.01 e),
    also across a state_dict round trip (resume)."""
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-4)
    sched = EpochSchedule(opt, "exp")
    seen = []
    for epoch in range(50):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(val_loss=1.0)
        if epoch == 20:  # resume as classify does: a fresh optimizer and schedule, both states loaded
            opt_state, state = opt.state_dict(), sched.state_dict()
            opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-4)
            sched = EpochSchedule(opt, "exp")
            opt.load_state_dict(opt_state)
            sched.load_state_dict(state)
    assert seen == pytest.approx([1e-4 * math.exp(-0.01 * e) for e in range(50)], rel=1e-12)
    with pytest.raises(ProtganError, match="--lr-schedule"):
        sched.load_state_dict({"name": "plateau", "inner": {}})


def test_batch_size_schedule_doubles_every_15_epochs_up_to_128():
    sizes = [batch_size_at(e, 32, "paper") for e in range(35)]
    assert sizes[:15] == [32] * 15 and sizes[15:30] == [64] * 15 and sizes[30:] == [128] * 5
    assert batch_size_at(100, 32, "paper") == 128
    assert batch_size_at(40, 32, "fixed") == 32
    with pytest.raises(ProtganError, match="--batch-schedule"):
        batch_size_at(0, 32, "cosine")


# ---------------------------------------------------------------------------------- augmentation
@pytest.mark.parametrize("chans", [1, 3, 4])
def test_classic_augmentation_any_channel_count_same_transform_on_every_channel(chans):
    torch.manual_seed(0)
    aug = AugmentTransform(ClassicAugment(**{n: 1.0 for n in PROBABILITY_NAMES}), 32)
    base = torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8)
    for _ in range(5):
        out = aug(base.repeat(chans, 1, 1))
        assert out.shape == (chans, 32, 32) and out.dtype == torch.uint8
        assert (out == out[:1]).all()  # identical channels stay identical: one geometry for all


def test_augmentation_probabilities_are_used():
    torch.manual_seed(0)
    img = torch.arange(16 * 16, dtype=torch.int64).remainder(256).to(torch.uint8).view(1, 16, 16)
    off = AugmentTransform(ClassicAugment(**{n: 0.0 for n in PROBABILITY_NAMES}), 16)
    assert torch.equal(off(img), img)
    inv = AugmentTransform(parse_probabilities(",".join(f"{n}=0" for n in PROBABILITY_NAMES) + ",invert=1"), 16)
    assert torch.equal(inv(img), 255 - img)
    flips = AugmentTransform(parse_probabilities(",".join(f"{n}=0" for n in PROBABILITY_NAMES) + ",hflip=1"), 16)
    assert torch.equal(flips(img), img.flip(-1))
    with pytest.raises(ProtganError, match="--aug-probs"):
        parse_probabilities("blur=0.5")
    with pytest.raises(ProtganError, match="--aug-probs"):
        parse_probabilities("hflip=2")


# ------------------------------------------------------------------------------------ thresholds
def test_threshold_tuning_on_a_constructed_case():
    # class 0: positives score 0.30..0.39, negatives 0.00..0.29: only thresholds in (0.29, 0.30] separate them
    pos0 = np.linspace(0.30, 0.39, 10)
    neg0 = np.linspace(0.0, 0.29, 30)
    # class 1: positives at 0.8+, negatives below 0.6: F1 = 1 on the plateau 0.60 .. 0.80, nearest 0.5 is 0.60
    pos1 = np.linspace(0.805, 0.95, 10)
    neg1 = np.linspace(0.0, 0.595, 30)
    probs = np.stack([np.r_[pos0, neg0], np.r_[pos1, neg1]], 1)
    y = np.zeros((40, 2), np.int8)
    y[:10] = 1
    th = tune_thresholds(y, probs)
    assert th[0] == pytest.approx(0.30)
    assert th[1] == pytest.approx(0.60)
    assert macro_f1(y, apply_thresholds(probs, th)) == 1.0
    assert macro_f1(y, apply_thresholds(probs, 0.5)) < 1.0
    # a class without positives keeps 0.5
    assert tune_thresholds(np.zeros((5, 1)), np.random.default_rng(0).random((5, 1)))[0] == 0.5


def test_threshold_tuning_matches_brute_force():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    y = rng.random((200, 3)) < 0.3
    probs = np.clip(y * 0.3 + rng.random((200, 3)) * 0.7, 0, 1)
    th = tune_thresholds(y, probs)
    for c in range(3):
        scores = [f1_score(y[:, c], probs[:, c] >= t, zero_division=0) for t in GRID]
        assert f1_score(y[:, c], probs[:, c] >= th[c], zero_division=0) == pytest.approx(max(scores))


# --------------------------------------------------------------------------------------- metrics
def test_metrics_match_sklearn():
    from sklearn.metrics import (
        accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support, precision_score, recall_score,
        roc_auc_score,
    )

    rng = np.random.default_rng(0)
    y = (rng.random((300, 6)) < [0.5, 0.3, 0.1, 0.05, 0.4, 0.2]).astype(int)
    probs = np.clip(y * 0.35 + rng.random((300, 6)) * 0.65, 0, 1)
    y[:, 3] = 0  # a class without positives (precision/recall 0, AUC undefined)
    pred = apply_thresholds(probs, 0.5)
    assert macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert micro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="micro", zero_division=0))
    assert exact_match(y, pred) == pytest.approx(accuracy_score(y, pred))
    assert label_accuracy(y, pred) == pytest.approx(1 - hamming_loss(y, pred))
    p = precision_score(y, pred, average="macro", zero_division=0)
    r = recall_score(y, pred, average="macro", zero_division=0)
    assert paper_macro_f1(y, pred) == pytest.approx(2 * p * r / (p + r))
    sp, sr, sf, ss = precision_recall_fscore_support(y, pred, zero_division=0)
    pc = per_class(y, pred)
    np.testing.assert_allclose(pc.precision, sp)
    np.testing.assert_allclose(pc.recall, sr)
    np.testing.assert_allclose(pc.f1, sf)
    np.testing.assert_array_equal(pc.support, ss)
    auc = roc_auc_per_class(y, probs)
    assert np.isnan(auc[3])
    for c in (0, 1, 2, 4, 5):
        assert auc[c] == pytest.approx(roc_auc_score(y[:, c], probs[:, c]))
    res = evaluate(y, probs, 0.5)
    assert res["auc_classes_skipped"] == 1
    assert res["roc_auc_macro"] == pytest.approx(np.mean([roc_auc_score(y[:, c], probs[:, c]) for c in (0, 1, 2, 4, 5)]))
    assert res["macro_f1"] == pytest.approx(macro_f1(y, pred))


def test_paper_macro_f1_differs_from_mean_of_f1():
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    pred = np.array([[1, 1], [1, 1], [1, 0], [0, 0]])
    # class 0: P 2/3 R 1 F1 0.8; class 1: P 0 R 0 F1 0
    assert macro_f1(y, pred) == pytest.approx(0.4)
    assert paper_macro_f1(y, pred) == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
