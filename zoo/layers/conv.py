"""Convolution blocks shared by several models."""

from __future__ import annotations

from torch import nn


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation, 'same' padding for odd kernels.

    `act_layer=None` leaves the activation out (linear bottlenecks, pre-sum branches). Attribute names
    (`conv`, `bn`, `act`) are stable: state_dict keys and weight converters depend on them.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
        act_layer: type[nn.Module] | None = nn.ReLU,
        bias: bool | None = None,
    ):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=(norm_layer is None) if bias is None else bias,
        )
        self.bn = norm_layer(out_channels) if norm_layer is not None else nn.Identity()
        self.act = act_layer() if act_layer is not None else nn.Identity()


class SeparableConvBNAct(nn.Sequential):
    """Depthwise ConvBNAct followed by a pointwise ConvBNAct (depthwise separable convolution)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
        dw_act_layer: type[nn.Module] | None = nn.ReLU,
        act_layer: type[nn.Module] | None = nn.ReLU,
    ):
        super().__init__()
        self.depthwise = ConvBNAct(
            in_channels,
            in_channels,
            kernel_size,
            stride,
            dilation,
            groups=in_channels,
            norm_layer=norm_layer,
            act_layer=dw_act_layer,
        )
        self.pointwise = ConvBNAct(in_channels, out_channels, 1, norm_layer=norm_layer, act_layer=act_layer)
