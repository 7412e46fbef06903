"""torchvision ResNet trunks as feature extractors, optionally dilated (output stride 8 or 16).

Attribute names are torchvision's (`conv1`, `bn1`, `layer1`..`layer4`), so ImageNet ResNet weights load by
key (less `fc`). Random initialisation only: nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models import resnet18, resnet34, resnet50, resnet101
from torchvision.models.resnet import BasicBlock, Bottleneck

_BUILDERS = {18: resnet18, 34: resnet34, 50: resnet50, 101: resnet101}


class ResNetFeatures(nn.Module):
    """forward(x) -> [c2, c3, c4, c5] at strides 4, 8, 16, 32 (8, 8, 8, 8 ... with dilation).

    `output_stride` 8 or 16 replaces the last strides with dilation (DeepLab's atrous ResNet; bottleneck
    depths only, as torchvision's BasicBlock has no dilation). `multi_grid` sets the rates of layer4's three
    units to (layer4 rate) x multi_grid, as in DeepLabv3; torchvision otherwise gives layer4's first unit the
    previous stage's rate. Dilation changes neither parameters nor MACs.

    `deep_stem=True` replaces the 7x7 stem conv by three 3x3 convs (3 -> 64 stride 2, 64 -> 64, 64 -> 128,
    BN-ReLU between), as in the "ResNet-C"/"deep base" trunks of PSPNet's and SFNet's official code; `bn1`
    then has 128 channels and layer1's first unit takes 128 input channels.

    `stride_in_1x1=True` puts a stage's stride on the first unit's 1x1 conv instead of its 3x3 conv (the
    original MSRA/Caffe ResNet, detectron2's STRIDE_IN_1X1; bottleneck depths only): the same parameters,
    another function, and fewer MACs (the 3x3 conv runs at the reduced resolution).
    """

    def __init__(
        self,
        depth: int = 50,
        output_stride: int = 32,
        multi_grid: Sequence[int] | None = None,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        deep_stem: bool = False,
        stride_in_1x1: bool = False,
    ):
        super().__init__()
        if depth not in _BUILDERS:
            raise ValueError(f"ResNet depth must be one of {sorted(_BUILDERS)}, got {depth}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        if output_stride < 32 and depth < 50:
            raise ValueError(f"ResNet-{depth} (BasicBlock) cannot be dilated; use output_stride=32")
        dilate = [False, output_stride == 8, output_stride <= 16]
        trunk = _BUILDERS[depth](weights=None, replace_stride_with_dilation=dilate, norm_layer=norm_layer)
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(trunk, name))
        if deep_stem:
            self.conv1 = nn.Sequential(  # indices as in the official deep-stem trunks, so weights load by key
                nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False),
                norm_layer(64),
                nn.ReLU(),
                nn.Conv2d(64, 64, 3, padding=1, bias=False),
                norm_layer(64),
                nn.ReLU(),
                nn.Conv2d(64, 128, 3, padding=1, bias=False),
            )
            self.bn1 = norm_layer(128)
            self.layer1[0] = (
                projection_unit(128, 64)
                if depth < 50
                else Bottleneck(
                    128, 64, downsample=_projection(128, 256, 1, norm_layer), norm_layer=norm_layer
                )
            )
        if stride_in_1x1:
            if depth < 50:
                raise ValueError(f"stride_in_1x1 needs a bottleneck ResNet (depth >= 50), got {depth}")
            for layer in (self.layer2, self.layer3, self.layer4):
                unit = layer[0]
                unit.conv1.stride, unit.conv2.stride = unit.conv2.stride, (1, 1)
        if multi_grid is not None:
            if len(multi_grid) != len(self.layer4):
                raise ValueError(f"multi_grid needs {len(self.layer4)} unit rates, got {tuple(multi_grid)}")
            rate = 32 // output_stride
            for unit, unit_rate in zip(self.layer4, multi_grid, strict=True):
                unit.conv2.dilation = unit.conv2.padding = (rate * unit_rate,) * 2
        expansion = 4 if depth >= 50 else 1
        strides = (4, 8, min(16, output_stride), output_stride)
        self.feature_info = [
            {"channels": 64 * 2**i * expansion, "reduction": s} for i, s in enumerate(strides)
        ]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        return [c2, c3, c4, self.layer4(c4)]


def _projection(in_channels: int, out_channels: int, stride: int, norm_layer=nn.BatchNorm2d) -> nn.Sequential:
    """The 1x1 conv + BN shortcut of a ResNet unit whose width or stride changes."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), norm_layer(out_channels)
    )


def projection_unit(in_channels: int, out_channels: int, stride: int = 1) -> BasicBlock:
    """A torchvision BasicBlock whose shortcut is a 1x1 conv + BN, to replace a ResNet stage's first unit
    when its input width or stride changes (the deep stem, FANet's stride-2 layer1)."""
    return BasicBlock(
        in_channels, out_channels, stride, downsample=_projection(in_channels, out_channels, stride)
    )
