"""Projected GAN's discriminator (Sauer et al. 2021, "Projected GANs Converge Faster"), on the offline
ImageNet EfficientNet-Lite0 (protgan.evaluation.features), for `train-gan --arch projected`. G is FastGAN's
(protgan.gan.fastgan), as in the paper.

D = a frozen feature network, fixed random projections, and small trainable heads:

1. The image (B x C x S x S in [-1, 1]; 1, 3 or 4 channels) becomes EfficientNet-Lite0's input by the
   feature space's own rule (`effnet_input`: the RGB composite of protgan.data.ranges, bilinear to
   `side`, the TF-Lite scaling) and runs through its trunk, split as the paper does into four stages whose
   outputs (24, 40, 112, 320 channels) are at strides 4, 8, 16 and 32. The trunk is ImageNet's, in eval
   mode, and no parameter of D: never trained, never in an optimizer, never in a checkpoint (rebuilt
   from the package's weights wherever D is built).
2. Cross-channel mixing (CCM): a random 1x1 conv per scale to 64, 128, 256, 512 channels; cross-scale
   mixing (CSM, `csm`): from the coarsest scale down, upsample 2x (bilinear), add the next finer scale's
   CCM output, random 1x1 conv (halving the channels but at the finest), so every scale also sees the
   coarser ones; CSM doubles each resolution. Both are random and never trained (the paper's): buffers,
   drawn from the run's seed, saved in the checkpoint and rebuilt identically from the config.
3. One head per scale: conv4x4 stride 2 + BN + LeakyReLU(0.2) with spectral norm down to 8x8 (FastGAN's
   widths: `width` channels at 8x8, halving per doubling), then a conv4x4 (at most the map's side) to a
   map of patch logits. The image's logit (`forward(x)[0]`: synth's `--filter-by disc`, D(x) in the
   metrics and ADA's r_t) is the mean over heads of each head's mean patch logit.
4. Conditional (`train-gan --conditional`, `num_classes` K > 0): each head is a projection discriminator
   (Miyato & Koyama 2018, as the other archs' D, protgan.gan.conditional): <embed_k(y), phi_k> is added to
   each of head k's patch logits, phi_k = the head's 8x8 map (before its logit conv) averaged over space.
   `projection` "pooled" (the default) is this spatially pooled form the fastgan and dcgan D use, one term per
   image and head; "patch" (`train-gan --projection patch`) projects per patch, as StyleGAN-XL does: a
   class-specific copy of the logit conv per class (protgan.gan.conditional.PatchProjection), each patch
   logit shifted by its own labels' maps.
5. Pixel head (`pixel`, `train-gan --projected-pixel`; off = the paper): one more head of the same form on the
   image itself (its C channels in [-1, 1], from the image side down to 8x8), weighted like the feature heads.
   The feature heads see the fluorescence channels only through an RGB composite, resized and ImageNet-scaled;
   a trainable head on the pixels sees every channel and small detail (a 1-2 px green dot inside a nucleus:
   the Nucleoli evidence projected runs missed) as they are. A pretrained-features D beside an ordinary one is
   Vision-aided GAN's design (Kumari et al. 2022).
6. Class head (`class_head`, `train-gan --class-loss W` of a conditional run): per head a linear map from its
   pooled body to K label logits, averaged over heads (`forward(x, classify=True)`'s third element), the
   auxiliary classifier of AC-GAN (Odena et al. 2017) beside the projection (protgan.gan.losses.ProjectedLoss).
   The projection only scores how well an image fits its labels; the class head must say which labels it shows.

Evaluating such a model in EfficientNet-Lite0's space (train-gan --eval-every's default) measures it in
the space its D was trained to match: use a classifier embedding (--eval-features ckpt:PATH) instead.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protgan.core.errors import ProtganError
from protgan.evaluation.features import effnet_input, load_efficientnet_lite0
from protgan.gan.conditional import PatchProjection, Projection
from protgan.gan.fastgan import sn, width_at

# the paper's split of EfficientNet-Lite0's blocks into stages (stem + blocks 0-1, 2, 3-4, 5-6)
STAGE_BLOCKS = ((0, 2), (2, 3), (3, 5), (5, 7))
FEATURE_CHANNELS = (24, 40, 112, 320)
FEATURE_STRIDES = (4, 8, 16, 32)
PROJ_CHANNELS = 64  # CCM's channels at stride 4, doubling per scale (the paper's cout=64, expand=True)
AUTO_MIN_SIDE = 128  # side 0 (auto): the image side, at least this (4x4 maps at stride 32)
MIN_SIDE, MAX_SIDE = 64, 1024
HEAD_END = 8  # heads stride down to 8x8 before their logit conv (the paper's end_sz)


def input_side(size: int, projected_input: int = 0) -> int:
    """The side D's feature network sees: --projected-input, or (0) the image side, at least AUTO_MIN_SIDE."""
    return int(projected_input) or max(int(size), AUTO_MIN_SIDE)


def check_input_side(side: int) -> None:
    if side and not (MIN_SIDE <= side <= MAX_SIDE and side % 32 == 0):
        raise ProtganError(f"--projected-input {side}: expected 0 (auto) or a multiple of 32 from {MIN_SIDE} to {MAX_SIDE}")


class FrozenEfficientNet(nn.Module):
    """EfficientNet-Lite0's trunk (ImageNet weights, offline) in the paper's four stages; always in eval
    mode (its batch norms keep ImageNet's statistics) and without gradients for its weights."""

    def __init__(self) -> None:
        super().__init__()
        net = load_efficientnet_lite0()
        stages = [nn.Sequential(*net.blocks[a:b]) for a, b in STAGE_BLOCKS]
        stages[0] = nn.Sequential(net.conv_stem, net.bn1, *stages[0])
        self.stages = nn.ModuleList(stages)
        self.requires_grad_(False)
        self.eval()
        self._apply(lambda t: t)  # to channels_last

    def train(self, mode: bool = True) -> "FrozenEfficientNet":
        return super().train(False)  # D.train() must not let batches move ImageNet's BN statistics

    def _apply(self, fn, recurse: bool = True):
        # channels_last whatever D is moved to: faster on the CPU too (fwd+bwd 0.19 vs 0.24 s at 128 px,
        # batch 16, one thread), the tensor-core layout on CUDA
        super()._apply(fn, recurse)
        return super()._apply(lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t, recurse)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class FixedConv1x1(nn.Module):
    """A 1x1 conv whose random weights never train: buffers (in the state_dict, in no optimizer, untouched
    by requires_grad_), drawn from `gen` as nn.Conv2d's default init draws them (U(+-1/sqrt(cin)))."""

    def __init__(self, cin: int, cout: int, gen: torch.Generator) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(cin)
        self.register_buffer("weight", (torch.rand(cout, cin, 1, 1, generator=gen) * 2 - 1) * bound)
        self.register_buffer("bias", (torch.rand(cout, generator=gen) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype))


def head(cin: int, res: int, width: int) -> nn.Sequential:
    """A scale's discriminator: conv4x4 s2 + BN + LeakyReLU down to HEAD_END, then a patch-logit conv (the last
    layer; `head[:-1]` is the body whose output a conditional D projects the labels on)."""
    layers: list[nn.Module] = []
    while res > HEAD_END:
        res //= 2
        cout = width_at(res, width)
        layers += [sn(nn.Conv2d(cin, cout, 4, 2, 1, bias=False)), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
        cin = cout
    layers.append(sn(nn.Conv2d(cin, 1, min(4, res), 1, 0, bias=False)))
    return nn.Sequential(*layers)


class ProjectedDiscriminator(nn.Module):
    def __init__(self, channel_names: Sequence[str], width: int = 256, side: int = AUTO_MIN_SIDE, csm: bool = True,
                 seed: int = 0, num_classes: int = 0, pixel_size: int = 0, class_head: bool = False,
                 projection: str = "pooled") -> None:
        super().__init__()
        check_input_side(side)
        self.channel_names, self.side, self.width = tuple(channel_names), side, width
        # not a submodule: outside parameters(), state_dict() and train(); _apply moves it with D
        object.__setattr__(self, "backbone", FrozenEfficientNet())
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 2]).generate_state(1)[0]))
        ccm = [PROJ_CHANNELS << k for k in range(4)]
        self.ccm = nn.ModuleList(FixedConv1x1(c, o, gen) for c, o in zip(FEATURE_CHANNELS, ccm))
        channels, strides = ccm, list(FEATURE_STRIDES)
        self.csm = None
        if csm:  # coarsest first: 512 -> 256, (256 + 256) -> 128, (128 + 128) -> 64, (64 + 64) -> 64
            outs = [ccm[k] // 2 if k else ccm[0] for k in range(4)]
            self.csm = nn.ModuleList(FixedConv1x1(ccm[k], outs[k], gen) for k in range(4))
            channels, strides = outs, [s // 2 for s in strides]
        self.heads = nn.ModuleList(head(c, side // s, width) for c, s in zip(channels, strides))
        self.pixel = bool(pixel_size)
        if self.pixel:  # the last head: on the image itself (its side pixel_size)
            self.heads.append(head(len(self.channel_names), pixel_size, width))
        if num_classes:  # one projection per head, on its body (its logit conv's input); unconditional D: none
            self.proj = nn.ModuleList(
                PatchProjection(num_classes, h[-1].in_channels, h[-1].kernel_size[0]) if projection == "patch"
                else Projection(num_classes, h[-1].in_channels, spectral=True) for h in self.heads)
        self.classifier = None
        if num_classes and class_head:
            self.classifier = nn.ModuleList(nn.Linear(h[-1].in_channels, num_classes) for h in self.heads)

    def _apply(self, fn, recurse: bool = True):  # .to(device / dtype / memory_format) moves the trunk too
        super()._apply(fn, recurse)
        self.backbone._apply(fn)
        return self

    def projected_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four maps the heads see (after CCM, and CSM when on), finest first."""
        feats = self.backbone(effnet_input((x + 1.0) * 127.5, self.channel_names, self.side))
        feats = [proj(f) for proj, f in zip(self.ccm, feats)]
        if self.csm is None:
            return feats
        mixed: list[torch.Tensor] = []
        h = None
        for k in (3, 2, 1, 0):
            h = feats[k] if h is None else h + feats[k]
            h = self.csm[k](F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=True))
            mixed.insert(0, h)
        return mixed

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, classify: bool = False) -> tuple:
        """(image logits B, per head its patch logits B x N_k). Labels y (B x K, a conditional D): each head's
        projection term is added to each of its patch logits. classify (a D with a class head): a third
        element, the label logits B x K."""
        if classify and self.classifier is None:
            raise ValueError("classify=True needs a D built with class_head (train-gan --class-loss)")
        patches, classes = [], []
        inputs = self.projected_features(x) + ([x] if self.pixel else [])
        for k, (h, f) in enumerate(zip(self.heads, inputs)):
            body = h[:-1](f)
            patch = h[-1](body).flatten(1)
            if y is not None:  # pooled: one term (B) for every patch; patch: one per patch (B x N_k)
                term = self.proj[k](body, y)
                patch = patch + (term if term.dim() == 2 else term[:, None])
            patches.append(patch)
            if classify:
                classes.append(self.classifier[k](body.float().mean(dim=(2, 3))))
        logits = torch.stack([p.mean(1) for p in patches], dim=1).mean(1)
        return (logits, patches, torch.stack(classes).mean(0)) if classify else (logits, patches)


def build_projected_discriminator(channel_names: Sequence[str], width: int, side: int, csm: bool = True,
                                  seed: int = 0, num_classes: int = 0, pixel_size: int = 0,
                                  class_head: bool = False, projection: str = "pooled") -> ProjectedDiscriminator:
    """forward(x: B x C x S x S in [-1, 1][, y=labels B x K]) -> (logits B, [patch logits B x N_k per head]).
    pixel_size S > 0: a fifth head on the S x S image itself (--projected-pixel). class_head (num_classes > 0):
    forward(x, classify=True) also returns label logits B x K (--class-loss). projection: the labels' term,
    pooled or patch (--projection)."""
    return ProjectedDiscriminator(channel_names, width, side, csm, seed, num_classes, pixel_size, class_head,
                                  projection)
