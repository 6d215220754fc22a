"""One conditional GAN for a class subset (`train-gan --conditional`): the label pieces and the layers.

Labels: a run covers the K classes of `--classes` (its `class_subset`, in that order); an image's label
vector y is multi-hot over them (labels outside the subset are dropped, images left without one are
not trained on). G takes (z, y): y is embedded by a linear map (no bias) added to z, and every batch
norm of G is conditional: BN(x) * (1 + Linear(y)) + Linear(y) (de Vries et al. 2017; the BigGAN
recipe). D is a projection discriminator (Miyato & Koyama 2018): logit(x, y) = psi(phi(x)) +
<embed(y), phi(x)>, phi = D's last feature map averaged over space; fastgan adds each branch's
projection to each of its patch logits, so the image logit (their mean) carries it too.

Transition (`--cond-transition START:END`, Shahbazi et al. 2022, "Collapse by conditioning"): with few
images per class a conditional GAN collapses more readily than an unconditional one. A transitional run
scales the label vector y by a strength lambda before G and D see it: 0 until step START (an unconditional
GAN: every class trains the shared structure), rising linearly to 1 at END (the conditional GAN). Every
path from y into G (embedding, batch-norm maps) and D (projection) is linear without bias, so lambda * y is
exactly their G(z, lambda e(y)) and D_uncond + lambda D_cond. lambda is a buffer of the models
(`label_strength.value`), saved with them: synth samples at the strength the run reached.

Class balance (`--balance`) of the training images: `real` draws every image equally often (the real
label frequencies); `uniform` weighs an image by the mean over its labels of 1 / count(label), so every
class of the subset is drawn about equally often. Fake batches get label sets drawn from the training
images' label sets under the same weights: G learns the real combinations, at the chosen balance.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from protgan.data import to_signed_range


# ------------------------------------------------------------------------------------------ layers
class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose gain and shift also depend on the label vector: BN(x) * (1 + gain(y)) + shift(y).
    With y None it is the plain BatchNorm2d (the labels' maps start at zero: a fresh layer is plain BN).

    The batch norm is a child (`norm`), not the base class: torchrun's --sync-bn converters replace every
    batch-norm module by a synchronous one that takes x alone, which must not drop the label maps."""

    BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

    def __init__(self, num_features: int, num_classes: int, **kw: Any) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, **kw)
        self.gain = nn.Linear(num_classes, num_features, bias=False)
        self.shift = nn.Linear(num_classes, num_features, bias=False)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.shift.weight)
        self._register_load_state_dict_pre_hook(self._rename_subclass_keys)

    @classmethod
    def _rename_subclass_keys(cls, state_dict: dict, prefix: str, *args: Any) -> None:
        # checkpoints before the batch norm became a child hold its tensors as PREFIX.weight, not PREFIX.norm.weight
        for key in cls.BN_KEYS:
            if prefix + key in state_dict:
                state_dict[f"{prefix}norm.{key}"] = state_dict.pop(prefix + key)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.norm(x)
        if y is None:
            return out
        y = y.to(out.dtype)
        return out * (1 + self.gain(y)[:, :, None, None]) + self.shift(y)[:, :, None, None]


def batch_norm(channels: int, num_classes: int = 0, **kw: Any) -> nn.Module:
    """A plain BatchNorm2d (num_classes 0: the unconditional models, unchanged) or a conditional one."""
    return ConditionalBatchNorm2d(channels, num_classes, **kw) if num_classes else nn.BatchNorm2d(channels, **kw)


def run_layers(layers: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """A Sequential's forward that hands y to its conditional batch norms (y None: the Sequential's own)."""
    if y is None:
        return layers(x)
    for layer in layers:
        x = layer(x, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
    return x


class Projection(nn.Module):
    """Miyato & Koyama's projection term <embed(y), phi(x)>, phi = the feature map averaged over space."""

    def __init__(self, num_classes: int, channels: int, spectral: bool = False) -> None:
        super().__init__()
        embed = nn.Linear(num_classes, channels, bias=False)
        self.embed = nn.utils.spectral_norm(embed) if spectral else embed

    def forward(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = features.float().mean(dim=(2, 3))
        return (self.embed(y.float()) * phi).sum(dim=1).to(features.dtype)


class PatchProjection(nn.Module):
    """The projection per patch (StyleGAN-XL's form): one patch-logit conv per class, of the same shape as the
    head's own logit conv, and each patch's term is the sum of its labels' maps, <y, conv(phi)> at every patch.
    The pooled term (Projection) says only whether the image as a whole fits its labels; this one judges
    every patch against them, so local class evidence (a membrane rim, a dot in a nucleus) is scored where it is."""

    def __init__(self, num_classes: int, channels: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.utils.spectral_norm(nn.Conv2d(channels, num_classes, kernel, 1, 0, bias=False))

    def forward(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        maps = self.conv(features).float()  # B x K x h x w: every class's patch logits
        return (maps * y.float()[:, :, None, None]).sum(dim=1).flatten(1).to(features.dtype)  # B x (h w)


class LabelStrength(nn.Module):
    """The transition's lambda: a buffer (1 = the plain conditional model) that scales the label vector."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("value", torch.ones(()))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.value.to(y.dtype)


def add_label_strength(model: nn.Module, y_position: int | None) -> nn.Module:
    """Give a conditional model a LabelStrength child that scales its labels before its forward sees them:
    the keyword y, or the positional argument at `y_position` (G's forward(z, y); D takes y= only)."""
    model.label_strength = LabelStrength()

    def scale(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if kwargs.get("y") is not None:
            kwargs = {**kwargs, "y": module.label_strength(kwargs["y"])}
        elif y_position is not None and len(args) > y_position and args[y_position] is not None:
            args = (*args[:y_position], module.label_strength(args[y_position]), *args[y_position + 1:])
        return args, kwargs

    model.register_forward_pre_hook(scale, with_kwargs=True)
    return model


def label_strength_at(step: int, transition: tuple[int, int] | None) -> float:
    """lambda after `step` completed steps: 0 before START, linear to 1 at END (1 without a transition)."""
    if transition is None:
        return 1.0
    start, end = transition
    if step >= end:
        return 1.0
    return 0.0 if step < start else (step - start) / (end - start)


def set_label_strength(models: Sequence[nn.Module], value: float) -> None:
    """Write lambda into every LabelStrength of `models` (wrapped ones included); no host sync."""
    for model in models:
        for module in model.modules():
            if isinstance(module, LabelStrength):
                module.value.fill_(value)


def num_classes_of(config: dict[str, Any]) -> int:
    """K of a run's config: the size of its class subset when conditional, else 0."""
    return len(config.get("class_subset") or []) if config.get("conditional") else 0


# ------------------------------------------------------------------------------------------ labels
def subset_label_sets(ids: Sequence[str], targets: Sequence[Sequence[int]],
                      subset: Sequence[int]) -> tuple[list[str], list[tuple[int, ...]], int]:
    """(kept ids, their label sets restricted to `subset` as positions 0..K-1, how many were dropped
    because no label of theirs is in the subset)."""
    pos = {c: k for k, c in enumerate(subset)}
    kept, sets = [], []
    for i, t in zip(ids, targets):
        labels = tuple(sorted({pos[c] for c in t if c in pos}))
        if labels:
            kept.append(i)
            sets.append(labels)
    return kept, sets, len(ids) - len(kept)


def multi_hot(label_sets: Sequence[Sequence[int]], k: int) -> torch.Tensor:
    """len(sets) x k float multi-hot matrix of positions."""
    out = torch.zeros(len(label_sets), k)
    for row, labels in enumerate(label_sets):
        out[row, list(labels)] = 1.0
    return out


def balance_weights(labels: torch.Tensor, balance: str) -> torch.Tensor:
    """Sampling weight of each image (N x K multi-hot): `real` 1 each; `uniform` the mean over its labels
    of 1 / count(label), so each class is drawn about equally often."""
    if balance == "real":
        return torch.ones(labels.shape[0], dtype=torch.float64)
    counts = labels.double().sum(dim=0).clamp_min(1)
    return (labels.double() / counts).sum(dim=1) / labels.double().sum(dim=1).clamp_min(1)


def balanced_order(n: int, weights: torch.Tensor, seed: int, length: int) -> list[int]:
    """`length` image indices drawn with replacement by `weights`, from a generator seeded by `seed`."""
    gen = torch.Generator().manual_seed(seed)
    return torch.multinomial(weights.float(), length, replacement=True, generator=gen).tolist()


def one_hot_rows(k: int, per_row: int) -> torch.Tensor:
    """(k * per_row) x k: per_row copies of class position 0's one-hot, then position 1's, ... (one grid row each)."""
    return torch.eye(k).repeat_interleave(per_row, dim=0)


def grid_columns(n_samples: int, k: int) -> int:
    """Columns of a conditional run's sample grid (one row per class): about n_samples images, 4..8 per row."""
    return max(4, min(8, math.ceil(n_samples / k)))


def class_row_ids(dataset: Any, position: int, cols: int | None = None) -> list[int]:
    """Dataset rows of the first `cols` (None: all) training images carrying class position `position`."""
    return torch.nonzero(dataset.labels[:, position] > 0).flatten().tolist()[:cols]


def carrying_images(dataset: Any, position: int) -> Any:
    """A dataset of the same kind over the training images carrying class position `position` (other labels
    included): the real side of a conditional run's per-class KID."""
    ids = [dataset.ids[r] for r in class_row_ids(dataset, position)]
    return type(dataset)(dataset.ds, dataset.channels, dataset.size, dataset.classes, ids=ids, cache=dataset.cache)


def class_rows(dataset: Any, k: int, cols: int) -> np.ndarray:
    """(k * cols) x C x S x S uint8: per class position, the first `cols` training images carrying it (black
    where a class has fewer): the real.png beside a conditional run's sample grids."""
    first = dataset.image(0)
    out = np.zeros((k * cols, *first.shape), first.dtype)
    for position in range(k):
        for j, row in enumerate(class_row_ids(dataset, position, cols)):
            out[position * cols + j] = dataset.image(row)
    return out


def class_spreads(images: torch.Tensor, k: int) -> torch.Tensor:
    """Per class row of a conditional grid (k rows, the same number of images each): the per-pixel standard
    deviation across the row's images, averaged over pixels (one value per class; protgan.gan.train.spread is
    the one-row case)."""
    rows = images.float().reshape(k, -1, *images.shape[1:])
    return rows.std(dim=1).flatten(1).mean(dim=1)


def real_class_spreads(dataset: Any, k: int, cols: int, fallback: float) -> torch.Tensor:
    """class_spreads of the real images: per class position its first `cols` training images (those of
    class_rows); `fallback` (the spread of the mixed reference batch) for a class with fewer than 2."""
    out = torch.full((k,), float(fallback))
    for position in range(k):
        rows = class_row_ids(dataset, position, cols)
        if len(rows) >= 2:
            images = torch.stack([torch.from_numpy(dataset.image(r)) for r in rows])
            out[position] = class_spreads(to_signed_range(images), 1)[0]
    return out


def follow_real_sets(label_sets: Sequence[Sequence[int]], position: int, n: int,
                     rng: np.random.Generator) -> list[tuple[int, ...]]:
    """n label sets (positions) for class `position`: each the label set of a training image carrying it,
    drawn uniformly among those images (the real co-occurrence among the images that carry the class)."""
    pool = [tuple(s) for s in label_sets if position in s]
    if not pool:
        return [(position,)] * n
    return [pool[k] for k in rng.integers(0, len(pool), n)]


class ProxyTrainer:
    """What protgan.evaluation.fid.TrainingEval reads of a trainer, for one class of a conditional run:
    the class's real images and a generator that writes that class (alone, or the label vectors y given)."""

    def __init__(self, trainer: Any, position: int, dataset: Any) -> None:
        self.trainer, self.position, self.dataset = trainer, position, dataset
        self.device, self.cfg = trainer.device, trainer.cfg

    def generate(self, n: int | None = None, z: torch.Tensor | None = None, use_ema: bool = True,
                 y: torch.Tensor | None = None) -> torch.Tensor:
        assert z is not None
        if y is None:
            y = torch.zeros(z.shape[0], len(self.cfg.class_subset))
            y[:, self.position] = 1.0
        return self.trainer.generate(z=z, y=y, use_ema=use_ema)


def follow_real_conditions(labels: torch.Tensor, position: int, n: int, seed: int) -> torch.Tensor:
    """n x K label vectors for class `position` of a dataset's multi-hot labels (N x K): follow_real_sets
    from a generator seeded by (seed, position), so successive evaluations score the same label sets."""
    sets = [tuple(torch.nonzero(row > 0).flatten().tolist()) for row in labels]
    rng = np.random.default_rng([seed, position])
    return multi_hot(follow_real_sets(sets, position, n, rng), labels.shape[1])


def training_eval(cfg: Any, n_fake: int, features: str = "efficientnet_lite0") -> Any:
    """The eval_fn of train-gan --eval-every for a config: None when it is off, PerClassEval for a
    conditional run (kid_cC per class, best.pt by their mean), else one TrainingEval of the class."""
    if not cfg.eval_every:
        return None
    from protgan.evaluation.fid import TrainingEval  # lazy: feature networks

    make_eval = lambda: TrainingEval(features, n_fake=n_fake, seed=cfg.seed)  # noqa: E731
    return PerClassEval(make_eval) if cfg.conditional else make_eval()


class PerClassEval:
    """eval_fn for a conditional run: one `make_eval()` evaluator per class of the subset, fed the training
    images carrying the class (with whatever other labels they have) and samples of the label sets those
    images have (`--labels follow-real`'s draw, fixed across evaluations): like against like, where samples
    of the class alone would be marked down for lacking the other labels' structures; metrics kid_cC,
    kid_std_cC and fid_cC per class C, and "score" = the mean KID over classes (it picks checkpoints/best.pt)."""

    def __init__(self, make_eval: Any) -> None:
        self.make_eval = make_eval
        self.evals: list[tuple[int, Any, ProxyTrainer]] = []

    def _setup(self, trainer: Any) -> None:
        data = trainer.dataset
        for position, c in enumerate(trainer.cfg.class_subset):
            sub = carrying_images(data, position)
            if not len(sub):
                continue
            evaluate = self.make_eval()
            evaluate.conditions = follow_real_conditions(data.labels, position, evaluate.n_fake, trainer.cfg.seed)
            self.evals.append((c, evaluate, ProxyTrainer(trainer, position, sub)))

    def __call__(self, trainer: Any, step: int) -> dict[str, float]:
        if not self.evals:
            self._setup(trainer)
        out: dict[str, float] = {}
        kids = []
        for c, evaluate, proxy in self.evals:
            res = evaluate(proxy, step)
            kids.append(res["kid"])
            out.update({f"kid_c{c}": res["kid"], f"kid_std_c{c}": res["kid_std"], f"fid_c{c}": res["fid"]})
        out["kid"] = float(np.mean(kids))
        out["score"] = out["kid"]
        return out
