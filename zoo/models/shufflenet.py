"""ShuffleNet v1 1x (g=3) and ShuffleNet V2 1x, the ImageNet classifiers at 224x224.

ShuffleNet v1: Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
Mobile Devices", CVPR 2018, arXiv 1707.01083. Our implementation, from the paper's Table 1 and Fig. 2 and
the authors' later PyTorch release, megvii-model/ShuffleNet-Series: ShuffleNetV1/network.py @ d8e4db1 and
ShuffleNetV1/blocks.py @ a96672f. Stem: 3x3 conv (24, stride 2) + BN + ReLU, 3x3 max pool (stride 2).
Stages 2-4 (240/480/960 channels for g=3, 4/8/4 units): each unit is a grouped 1x1 conv to a bottleneck of
a quarter of the unit's output channels (BN, ReLU), a channel shuffle, a 3x3 depthwise conv (BN, no ReLU),
a grouped 1x1 conv (BN); stride-1 units add the input and apply ReLU, each stage's first, stride-2 unit
concatenates a 3x3 average-pooled shortcut instead (its branch outputs out - in channels). The very first
1x1 conv (stage 2, unit 1) is not grouped: its 24 input channels are too few, as the paper explains. Global
average pooling and a fully connected classifier close the network.

Choices and deviations:
- The shuffle sits between the first 1x1 conv and the depthwise conv as in Fig. 2, and is the paper's
  reshape to (g, n), transpose, flatten. The official code shuffles after the depthwise conv + BN, with the
  transposed reshape; a depthwise conv and BN act per channel, so both are the same function class with the
  same parameters and MACs.
- The classifier has no bias, as in the official code.
- Global average pooling is adaptive (the official code's AvgPool2d(7) only fits 224x224 inputs).

ShuffleNet V2: Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018, arXiv 1807.11164. Built by torchvision's `shufflenet_v2_x1_0`, which follows the paper's
Table 5 and Fig. 3c/d at 1x (24-channel stem and max pool; stages of 116/232/464 channels with 4/8/4 units;
channel split, concat and shuffle; 1x1 conv to 1024; pooling; classifier). Against the official
ShuffleNetV2/network.py and blocks.py (@ a96672f): torchvision shuffles at the end of each unit and splits
with `chunk`, the official code shuffles at the start (the same permutations, moved by one unit: the same
function class), and torchvision's classifier has a bias (1,000 parameters the official code lacks).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct
from zoo.registry import register_model

# Paper Table 1: output channels of stages 2-4 at 1x, per number of groups.
_V1_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
_V1_REPEATS = (4, 8, 4)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The paper's channel shuffle: reshape the channels to (groups, n), transpose, flatten back."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """Fig. 2b (stride 1: residual add) and Fig. 2c (stride 2: 3x3 average-pool shortcut, concat)."""

    def __init__(
        self, in_channels: int, out_channels: int, groups: int, stride: int, group_first: bool = True
    ):
        super().__init__()
        mid = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        self.groups = groups
        self.compress = ConvBNAct(in_channels, mid, 1, groups=groups if group_first else 1)
        self.depthwise = ConvBNAct(mid, mid, 3, stride=stride, groups=mid, act_layer=None)
        self.expand = ConvBNAct(mid, branch_out, 1, groups=groups, act_layer=None)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self.depthwise(channel_shuffle(self.compress(x), self.groups)))
        if self.shortcut is None:
            return self.act(x + y)
        return self.act(torch.cat([self.shortcut(x), y], dim=1))


class ShuffleNetV1(nn.Module):
    """Paper Table 1 at 1x. forward(x[N,3,H,W]) -> logits[N,num_classes]."""

    def __init__(self, num_classes: int = 1000, groups: int = 3, stem_channels: int = 24):
        super().__init__()
        self.stem = ConvBNAct(3, stem_channels, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, in_ch = [], stem_channels
        for s, (out_ch, repeats) in enumerate(zip(_V1_CHANNELS[groups], _V1_REPEATS, strict=True)):
            units = []
            for i in range(repeats):
                units.append(ShuffleUnit(in_ch, out_ch, groups, 2 if i == 0 else 1, group_first=s + i > 0))
                in_ch = out_ch
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_ch, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.maxpool(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


_MEGVII_README = "megvii-model/ShuffleNet-Series@13bbe30b8ba4721a41db2846c8c043313da0c1c5:README.md"
_IMAGENET = dict(dataset="ImageNet-1k", split="val", input_hw=(224, 224), protocol="single crop")
_MULTIPLY_ADDS = (
    "multiply-adds, inferred: the README does not define FLOPs, but our count of the same architecture is "
    "{ours} G conv + FC multiply-adds at 224x224, so {value} cannot be 2 x multiply-adds"
)

V1_CARD = ModelCard(
    group="backbone",
    paper=Paper(
        title="ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
        venue="CVPR",
        year=2018,
        arxiv="1707.01083",
    ),
    official_code="https://github.com/megvii-model/ShuffleNet-Series/tree/master/ShuffleNetV1",
    implementation="segbench",
    num_classes=1000,
    input_hw=(224, 224),
    reported=(
        Reported("params", 1.9, source=f"{_MEGVII_README} (ShuffleNetV1 table, '1.0x (group=3)' row)"),
        Reported(
            "flops",
            0.138,
            source=f"{_MEGVII_README} (ShuffleNetV1 table, '1.0x (group=3)' row: 138M)",
            input_hw=(224, 224),
            convention="multiply-adds",
            note=_MULTIPLY_ADDS.format(ours="0.137", value="0.138"),
        ),
        Reported(
            "top1",
            67.8,
            source=f"{_MEGVII_README} (ShuffleNetV1 table, '1.0x (group=3)' row)",
            note="100 - top-1 error 32.2%; the authors' later PyTorch re-training, not the paper's model",
            **_IMAGENET,
        ),
    ),
    notes="Numbers are the authors' official PyTorch release (megvii-model/ShuffleNet-Series, 2019), whose "
    "top-1 comes from its own re-training; the paper's Tables 1-2 (complexity, error) could not be retrieved "
    "here, so no paper number is cited. Params include the 1000-class (bias-free) classifier.",
)

V2_CARD = ModelCard(
    group="backbone",
    paper=Paper(
        title="ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
        venue="ECCV",
        year=2018,
        arxiv="1807.11164",
    ),
    official_code="https://github.com/megvii-model/ShuffleNet-Series/tree/master/ShuffleNetV2",
    implementation=f"torchvision {torchvision.__version__.split('+')[0]} shufflenet_v2_x1_0",
    num_classes=1000,
    input_hw=(224, 224),
    reported=(
        Reported("params", 2.3, source=f"{_MEGVII_README} (ShuffleNetV2 table, '1.0x' row)"),
        Reported(
            "flops",
            0.146,
            source=f"{_MEGVII_README} (ShuffleNetV2 table, '1.0x' row: 146M)",
            input_hw=(224, 224),
            convention="multiply-adds",
            note=_MULTIPLY_ADDS.format(ours="0.145", value="0.146"),
        ),
        Reported(
            "top1",
            69.4,
            source=f"{_MEGVII_README} (ShuffleNetV2 table, '1.0x' row)",
            note="100 - top-1 error 30.6%",
            **_IMAGENET,
        ),
    ),
    notes="Numbers are the authors' official PyTorch release (megvii-model/ShuffleNet-Series); the paper's "
    "tables could not be retrieved here, so no paper number is cited. Our 2,278,604 params include "
    "torchvision's 1000-class classifier with bias (the official code's has none: 2,277,604).",
)


@register_model(card=V1_CARD)
def shufflenet_g3(num_classes: int = 1000, **kwargs) -> nn.Module:
    """ShuffleNet v1 1x, g=3."""
    return ShuffleNetV1(num_classes=num_classes, groups=3, **kwargs)


@register_model(card=V2_CARD)
def shufflenetv2(num_classes: int = 1000, **kwargs) -> nn.Module:
    """ShuffleNet V2 1x."""
    return torchvision.models.shufflenet_v2_x1_0(weights=None, num_classes=num_classes, **kwargs)
