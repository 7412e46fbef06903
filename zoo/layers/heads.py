"""Segmentation heads shared across papers."""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.conv import ConvBNAct


class SegHead(nn.Sequential):
    """3x3 ConvBNAct to `mid_channels`, optional dropout, then a 1x1 classifier (with a bias unless
    `bias=False`, as in BiSeNet-family official code).

    The FCN-style head of BiSeNet V1/V2, STDC, SFNet and others; the caller upsamples to the input size.
    Dropout is identity in eval mode, so it changes neither inference cost nor parameters.
    """

    def __init__(
        self, in_channels: int, mid_channels: int, num_classes: int, dropout: float = 0.0, bias: bool = True
    ):
        super().__init__()
        self.conv = ConvBNAct(in_channels, mid_channels, 3)
        if dropout:
            self.drop = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(mid_channels, num_classes, 1, bias=bias)


class BlockHead(nn.Module):
    """mmsegmentation's FCN-style context head with a block inside (its NLHead and GCHead):
    3x3 ConvBNReLU -> block -> 3x3 ConvBNReLU -> concat with the input -> 3x3 ConvBNReLU.
    forward(x[N, in_channels, h, w]) -> [N, channels, h, w].
    """

    def __init__(self, block: nn.Module, in_channels: int = 2048, channels: int = 512):
        super().__init__()
        self.conv_in = ConvBNAct(in_channels, channels, 3)
        self.block = block
        self.conv_out = ConvBNAct(channels, channels, 3)
        self.conv_cat = ConvBNAct(in_channels + channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_out(self.block(self.conv_in(x)))
        return self.conv_cat(torch.cat([x, y], dim=1))
