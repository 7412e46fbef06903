"""Segmentation heads shared across papers."""

from __future__ import annotations

from torch import nn

from zoo.layers.conv import ConvBNAct


class SegHead(nn.Sequential):
    """3x3 ConvBNAct to `mid_channels`, optional dropout, then a 1x1 classifier (with bias).

    The FCN-style head of BiSeNet V1/V2, STDC, SFNet and others; the caller upsamples to the input size.
    Dropout is identity in eval mode, so it changes neither inference cost nor parameters.
    """

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.conv = ConvBNAct(in_channels, mid_channels, 3)
        if dropout:
            self.drop = nn.Dropout2d(dropout)
        self.cls = nn.Conv2d(mid_channels, num_classes, 1)
