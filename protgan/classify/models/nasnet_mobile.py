"""NASNet-A Mobile (4 @ 1056), built from timm's NASNet-A cells.

timm only registers NASNet-A Large (6 @ 4032). Its constructor takes `stem_size=32` and
`num_features=1056` (the Mobile widths: 44 channels per cell branch at the first stage) but always
builds 6 normal cells per stage; Mobile has 4. We build the Large class with the Mobile widths, delete
the last two normal cells of each stage (cells 4, 5, 10, 11, 16, 17) and run the remaining ones in
NASNet's order: 4 + reduction + 4 + reduction + 4 normal cells, 1056 output features, as in
Zoph et al. 2018 and Keras' NASNetMobile. No ImageNet weights exist for it in timm: `--pretrained`
with this model is an error unless --weights gives a file.
"""

from __future__ import annotations

import torch
from torch import nn

from protgan.classify.models.registry import register_model
from protgan.core.errors import ProtganError

CELLS_PER_STAGE = 4
_STAGES = ((0, 6), (6, 12), (12, 18))  # timm's cell numbers per stage (6 each in Large)


class NASNetAMobile(nn.Module):
    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        from timm.models.nasnet import NASNetALarge

        net = NASNetALarge(num_classes=0, in_chans=in_chans, stem_size=32, num_features=1056, pad_type="same")
        for first, end in _STAGES:
            for c in range(first + CELLS_PER_STAGE, end):
                delattr(net, f"cell_{c}")
        self.net = net
        self.num_features = 1056
        self.stages = [[f"cell_{c}" for c in range(first, first + CELLS_PER_STAGE)] for first, _ in _STAGES]
        self.input_mean = (0.5, 0.5, 0.5)  # the TF NASNet preprocessing
        self.input_std = (0.5, 0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x_conv0 = net.conv0(x)
        x_stem_0 = net.cell_stem_0(x_conv0)
        x_stem_1 = net.cell_stem_1(x_conv0, x_stem_0)
        x, x_prev = x_stem_1, x_stem_0
        for s, cells in enumerate(self.stages):
            if s > 0:  # reduction cell, then the first cell of the stage takes the cell before it as x_prev
                red = net.reduction_cell_0 if s == 1 else net.reduction_cell_1
                x, x_prev = red(x, x_prev), x_prev
            for name in cells:
                x, x_prev = getattr(net, name)(x, x_prev), x
        return net.act(x)


@register_model("nasnet_mobile", pretrained_source="none (no NASNet-A Mobile ImageNet weights in timm)",
                aliases=("nasnetamobile",))
def nasnet_mobile(in_chans: int, pretrained: bool) -> nn.Module:
    """NASNet-A Mobile 4 @ 1056, from timm's NASNet-A cells (no pretrained weights offline or in timm)."""
    if pretrained:
        raise ProtganError("--model nasnet_mobile: no ImageNet weights exist for it in timm; use --no-pretrained, "
                           "optionally with --weights PATH (a local state_dict)")
    return NASNetAMobile(in_chans)
