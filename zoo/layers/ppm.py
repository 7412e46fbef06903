"""Pyramid pooling (PSPNet, Zhao et al., CVPR 2017), the form Fast-SCNN, SFNet and others reuse."""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.conv import ConvBNAct
from zoo.layers.resize import resize_to


class PyramidPooling(nn.Module):
    """Adaptive average pooling to each bin size -> 1x1 ConvBNAct -> bilinear upsample (`align_corners`:
    PSPNet's official code uses True); concatenated with the input. Output channels: in_channels +
    len(bins) * branch_channels. The fusing conv after it differs between papers, so it belongs to the caller.
    """

    def __init__(
        self,
        in_channels: int,
        branch_channels: int,
        bins: tuple[int, ...] = (1, 2, 3, 6),
        norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
        act_layer: type[nn.Module] | None = nn.ReLU,
        align_corners: bool = False,
    ):
        super().__init__()
        self.align_corners = align_corners
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                ConvBNAct(in_channels, branch_channels, 1, norm_layer=norm_layer, act_layer=act_layer),
            )
            for b in bins
        )
        self.out_channels = in_channels + len(bins) * branch_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [x] + [resize_to(stage(x), x, align_corners=self.align_corners) for stage in self.stages], dim=1
        )
