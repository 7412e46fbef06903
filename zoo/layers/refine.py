"""BiSeNet's attention refinement and feature fusion modules (Yu et al., ECCV 2018), reused by STDC and
ShelfNet. Both follow the authors' released form (TorchSeg), which opens the ARM with a 3x3 ConvBNAct.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.conv import ConvBNAct
from zoo.layers.se import SqueezeExcite


class AttentionRefinement(nn.Module):
    """3x3 ConvBNAct to `out_channels`, then a channel gate: global pool -> 1x1 conv -> BN -> sigmoid."""

    def __init__(self, in_channels: int, out_channels: int, act_layer: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.conv = ConvBNAct(in_channels, out_channels, 3, act_layer=act_layer)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), ConvBNAct(out_channels, out_channels, 1, act_layer=None), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * self.attention(x)


class FeatureFusion(nn.Module):
    """concat(spatial, context) -> 1x1 ConvBNAct -> x + x * SE gate (bottleneck `rd_channels`; `bias`: the
    gate's 1x1 convs have biases)."""

    def __init__(
        self, in_channels: int, out_channels: int, rd_channels: int | None = None, bias: bool = True
    ):
        super().__init__()
        self.conv = ConvBNAct(in_channels, out_channels, 1)
        self.se = SqueezeExcite(out_channels, rd_channels or out_channels, bias=bias)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.cat([spatial, context], dim=1))
        return x + self.se(x)
