"""Atrous Spatial Pyramid Pooling with image-level features (DeepLabv3, Chen et al. 2017, Sec 3.3).

Shared by DeepLabV3 and DeepLabV3+ (whose ASPP may use depthwise separable atrous convs: `separable=True`).
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.layers.conv import ConvBNAct, SeparableConvBNAct
from zoo.layers.resize import resize_to


class ASPPPooling(nn.Module):
    """Image-level features: global average pool -> 1x1 ConvBNAct -> bilinear upsample to the input's size.

    The paper adds this branch because a 3x3 filter whose rate nears the feature size degenerates to 1x1.
    Its BN sees a 1x1 map, so train mode needs batch > 1 (PyTorch refuses a single value per channel).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
        act_layer: type[nn.Module] | None = nn.ReLU,
    ):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvBNAct(in_channels, out_channels, 1, norm_layer=norm_layer, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(self.conv(self.pool(x)), x)


class ASPP(nn.Module):
    """A 1x1 conv, a 3x3 atrous conv per rate and image pooling, concatenated, then a 1x1 projection.

    Every conv has `out_channels` filters, BN and activation. The paper's rates are (6, 12, 18) at output
    stride 16 and (12, 24, 36) at output stride 8. No dropout: the paper has none (its official code and
    torchvision drop after the projection in training only, which changes nothing at inference).
    Branch order (1x1, atrous, pooling) follows the paper's Fig. 5; it only fixes the projection's weight
    layout (the official code puts pooling first).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        rates: tuple[int, ...] = (6, 12, 18),
        norm_layer: type[nn.Module] | None = nn.BatchNorm2d,
        act_layer: type[nn.Module] | None = nn.ReLU,
        separable: bool = False,
    ):
        super().__init__()
        norm_act = dict(norm_layer=norm_layer, act_layer=act_layer)
        atrous = SeparableConvBNAct if separable else ConvBNAct
        self.convs = nn.ModuleList(
            [ConvBNAct(in_channels, out_channels, 1, **norm_act)]
            + [atrous(in_channels, out_channels, 3, dilation=r, **norm_act) for r in rates]
        )
        self.pool = ASPPPooling(in_channels, out_channels, **norm_act)
        self.project = ConvBNAct(out_channels * (len(rates) + 2), out_channels, 1, **norm_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([conv(x) for conv in self.convs] + [self.pool(x)], dim=1))
