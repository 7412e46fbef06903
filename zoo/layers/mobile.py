"""Blocks of the MobileNetV2 family shared by Fast-SCNN and ContextNet (Poudel et al., 2018/2019)."""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.conv import ConvBNAct, SeparableConvBNAct
from zoo.layers.resize import resize_to


def dsconv(
    in_channels: int, out_channels: int, stride: int = 1, act_layer: type[nn.Module] = nn.ReLU
) -> SeparableConvBNAct:
    """Depthwise 3x3 + BN (no activation, Sec. 3.2.1), pointwise 1x1 + BN + activation."""
    return SeparableConvBNAct(
        in_channels, out_channels, 3, stride=stride, dw_act_layer=None, act_layer=act_layer
    )


class InvertedResidual(nn.Module):
    """Bottleneck residual block (MobileNetV2; Fast-SCNN Table 2): 1x1 expand (t x) + act, 3x3 depthwise
    (stride s) + act, linear 1x1 projection; identity shortcut when stride 1 and in == out channels.

    With t = 1 the expansion conv is left out, as in MobileNetV2 and TF-slim's expanded_conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expansion: int = 6,
        act_layer: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        mid = in_channels * expansion
        layers = [ConvBNAct(in_channels, mid, 1, act_layer=act_layer)] if expansion != 1 else []
        layers += [
            ConvBNAct(mid, mid, 3, stride=stride, groups=mid, act_layer=act_layer),
            ConvBNAct(mid, out_channels, 1, act_layer=None),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_shortcut else out


def bottleneck_stage(
    in_channels: int,
    out_channels: int,
    repeats: int,
    stride: int,
    expansion: int = 6,
    act_layer: type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """One row (t, c, n, s) of a MobileNetV2-style table: the first block strides, the rest keep size."""
    return nn.Sequential(
        *(
            InvertedResidual(
                in_channels if i == 0 else out_channels,
                out_channels,
                stride if i == 0 else 1,
                expansion,
                act_layer,
            )
            for i in range(repeats)
        )
    )


class DetailContextFusion(nn.Module):
    """Fast-SCNN Table 3 (ContextNet's fusion is the same kind): the low-resolution input is upsampled to the
    high-resolution size, then a 3x3 depthwise conv (dilation = the upsampling factor) + BN + act and a linear
    1x1 conv + BN; the high-resolution input gets a linear 1x1 conv + BN; the sum goes through act.
    """

    def __init__(
        self,
        high_channels: int,
        low_channels: int,
        out_channels: int = 128,
        dilation: int = 4,
        act_layer: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        self.low = nn.Sequential(
            ConvBNAct(
                low_channels, low_channels, 3, dilation=dilation, groups=low_channels, act_layer=act_layer
            ),
            ConvBNAct(low_channels, out_channels, 1, act_layer=None),
        )
        self.high = ConvBNAct(high_channels, out_channels, 1, act_layer=None)
        self.act = act_layer()

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return self.act(self.high(high) + self.low(resize_to(low, high)))
