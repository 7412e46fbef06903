"""Pyramid pooling (PSPNet, Zhao et al., CVPR 2017), the form Fast-SCNN, SFNet and others reuse."""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.conv import ConvBNAct
from zoo.layers.resize import resize_to


class PyramidPooling(nn.Module):
    """Adaptive average pooling to each bin size -> 1x1 ConvBNAct -> bilinear upsample; concatenated with
    the input. Output channels: in_channels + len(bins) * branch_channels. The fusing conv after it differs
    between papers, so it belongs to the caller. `align_corners=True` upsamples so, where a port follows
    official code that does (PSPNet, SFNet); `input_first=False` puts the input after the branches (SFNet).
    """

    def __init__(
        self,
        in_channels: int,
        branch_channels: int,
        bins: tuple[int, ...] = (1, 2, 3, 6),
        norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
        act_layer: type[nn.Module] | None = nn.ReLU,
        input_first: bool = True,
        align_corners: bool = False,
    ):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                ConvBNAct(in_channels, branch_channels, 1, norm_layer=norm_layer, act_layer=act_layer),
            )
            for b in bins
        )
        self.out_channels = in_channels + len(bins) * branch_channels
        self.input_first = input_first
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [resize_to(stage(x), x, align_corners=self.align_corners) for stage in self.stages]
        return torch.cat([x, *branches] if self.input_first else [*branches, x], dim=1)
