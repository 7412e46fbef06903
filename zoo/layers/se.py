"""Squeeze-and-excitation channel attention (Hu et al., CVPR 2018), as most real-time nets use it."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Global average pool -> 1x1 conv (reduce) -> act -> 1x1 conv (expand) -> gate, then x * gate.

    `rd_channels` is the bottleneck width (papers give it as channels // reduction, or a fixed number);
    `bias=False` leaves the biases out of both 1x1 convs (BiSeNet's and STDC's fusion modules).
    """

    def __init__(
        self,
        channels: int,
        rd_channels: int,
        act_layer: type[nn.Module] = nn.ReLU,
        gate_layer: type[nn.Module] = nn.Sigmoid,
        bias: bool = True,
    ):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, rd_channels, 1, bias=bias)
        self.act = act_layer()
        self.expand = nn.Conv2d(rd_channels, channels, 1, bias=bias)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
