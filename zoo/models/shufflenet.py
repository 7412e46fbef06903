"""ShuffleNet v1 1x (g=3) and ShuffleNet V2 1x, ImageNet classifiers at 224x224, as the authors build them.

Official code: megvii-model/ShuffleNet-Series @ aa91feb (ShuffleNetV1/network.py + blocks.py,
ShuffleNetV2/network.py + blocks.py). Both are checked against it by a parity manifest
(tests/fixtures/parity/shufflenet_g3.json, shufflenetv2.json); `convert_v1_official` / `convert_v2_official`
load the authors' checkpoints as distributed ({'state_dict': ...} with `module.` prefixes).

ShuffleNet v1: Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
Mobile Devices", CVPR 2018, arXiv 1707.01083. Stem: 3x3 conv (24, stride 2) + BN + ReLU, 3x3 max pool
(stride 2). Stages 2-4 (240/480/960 channels for g=3, 4/8/4 units): each unit is a grouped 1x1 conv to a
bottleneck of a quarter of the unit's output channels (BN, ReLU), a 3x3 depthwise conv (BN, no ReLU), a
channel shuffle, a grouped 1x1 conv (BN); stride-1 units add the input and apply ReLU, each stage's first,
stride-2 unit concatenates a 3x3 average-pooled shortcut instead (its branch outputs out - in channels). The
very first 1x1 conv (stage 2, unit 1) is not grouped: its 24 input channels are too few, as the paper
explains. Global average pooling and a fully connected classifier (no bias) close the network.

The shuffle is where and as the official code does it: after the depthwise conv and its BN, reshaping the
channels to (n, g), transposing and flattening. The paper's Fig. 2 draws it before the depthwise conv, and
its text reshapes to (g, n): the inverse permutation. With the same weights those are different functions,
so the authors' checkpoint computes what it was trained for only with the official placement.

ShuffleNet V2: Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018, arXiv 1807.11164. Paper Table 5 and Fig. 3c/d at 1x: 24-channel stem and max pool;
stages of 116/232/464 channels with 4/8/4 units; 1x1 conv to 1024; pooling; classifier (no bias). A
stride-1 unit splits its input into the even channels (kept) and the odd ones (main branch: 1x1 conv, BN,
ReLU, 3x3 depthwise conv, BN, 1x1 conv, BN, ReLU) and concatenates (kept, main): this even/odd split is the
official code's channel shuffle. A stride-2 unit feeds its whole input to both branches (projection: 3x3
depthwise conv, BN, 1x1 conv, BN, ReLU, keeping the input's channels; main: 1x1 conv to half the unit's
output channels, depthwise, 1x1 conv to out - in channels) and concatenates them.

What torchvision's `shufflenet_v2_x1_0` (an earlier definition of this zoo id) does differently: (1) the
first unit of stage 2 has a projection branch widened to 58 channels (1x1 24->58) and a main branch
ending in 58, where the official code keeps 24 and outputs 92 (1x1 24->58, depthwise, 1x1 58->92): 10
tensors of another shape; (2) it shuffles at the end of every unit (interleaving the two halves) and splits
with `chunk`, where the official code splits even/odd at the start of stride-1 units: other permutations, so
the same weights give another function; (3) its classifier has a bias. It is not kept as a separate id.

Deviations from the official code (both networks): global average pooling is adaptive (the official
AvgPool2d(7) only fits 224x224 inputs; at 224x224 the two are identical).
"""

from __future__ import annotations

import re

import torch
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
_REPEATS = (4, 8, 4)  # units per stage, both versions
_V2_CHANNELS = (116, 232, 464)  # paper Table 5, 1x
_V2_LAST = 1024


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The official ShuffleNetV1 shuffle: channels reshaped to (C / groups, groups), transposed, flattened."""
    n, c, h, w = x.shape
    return x.reshape(n, c // groups, groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNet v1 unit, Fig. 2b (stride 1: residual add) and Fig. 2c (stride 2: 3x3 average-pool
    shortcut, concat), with the shuffle after the depthwise conv as in the official code."""

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
        y = self.expand(channel_shuffle(self.depthwise(self.compress(x)), self.groups))
        if self.shortcut is None:
            return self.act(x + y)
        # The shortcut is an average of a ReLU output (non-negative): the ReLU leaves it unchanged.
        return self.act(torch.cat([self.shortcut(x), y], dim=1))


class ShuffleNetV1(nn.Module):
    """Paper Table 1 at 1x. forward(x[N,3,H,W]) -> logits[N,num_classes]."""

    def __init__(self, num_classes: int = 1000, groups: int = 3, stem_channels: int = 24):
        super().__init__()
        self.stem = ConvBNAct(3, stem_channels, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, in_ch = [], stem_channels
        for s, (out_ch, repeats) in enumerate(zip(_V1_CHANNELS[groups], _REPEATS, strict=True)):
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


class ShuffleV2Unit(nn.Module):
    """ShuffleNet V2 unit, Fig. 3c (stride 1: even/odd channel split) and Fig. 3d (stride 2: two branches
    on the whole input). `in_channels` is what the main branch reads: half the input at stride 1."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.main = nn.Sequential(
            ConvBNAct(in_channels, mid_channels, 1),
            ConvBNAct(mid_channels, mid_channels, 3, stride=stride, groups=mid_channels, act_layer=None),
            ConvBNAct(mid_channels, out_channels - in_channels, 1),
        )
        self.proj = None
        if stride == 2:
            self.proj = nn.Sequential(
                ConvBNAct(in_channels, in_channels, 3, stride=2, groups=in_channels, act_layer=None),
                ConvBNAct(in_channels, in_channels, 1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            return torch.cat([self.proj(x), self.main(x)], dim=1)
        # The official channel shuffle: even channels pass through, odd ones go through the main branch.
        return torch.cat([x[:, 0::2], self.main(x[:, 1::2])], dim=1)


class ShuffleNetV2(nn.Module):
    """Paper Table 5 at 1x, as the official code builds it. forward(x[N,3,H,W]) -> logits[N,num_classes]."""

    def __init__(self, num_classes: int = 1000, stem_channels: int = 24):
        super().__init__()
        self.stem = ConvBNAct(3, stem_channels, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, in_ch = [], stem_channels
        for out_ch, repeats in zip(_V2_CHANNELS, _REPEATS, strict=True):
            units = [ShuffleV2Unit(in_ch, out_ch, out_ch // 2, stride=2)]
            units += [ShuffleV2Unit(out_ch // 2, out_ch, out_ch // 2, stride=1) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.last = ConvBNAct(in_ch, _V2_LAST, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(_V2_LAST, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.last(self.stages(self.maxpool(self.stem(x))))
        return self.classifier(self.pool(x).flatten(1))


def _unit_index(i: int) -> str:
    """The official flat `features.<i>` index -> our `stages.<stage>.<unit>`."""
    unit = i
    for stage, repeats in enumerate(_REPEATS):
        if unit < repeats:
            return f"stages.{stage}.{unit}"
        unit -= repeats
    raise KeyError(f"features.{i}: the network has {sum(_REPEATS)} units")


# Official Sequential positions (conv, BN, ReLU, ...) -> ours (ConvBNAct index . conv|bn).
_V1_LAYERS = {
    "branch_main_1.0": "compress.conv",
    "branch_main_1.1": "compress.bn",
    "branch_main_1.3": "depthwise.conv",
    "branch_main_1.4": "depthwise.bn",
    "branch_main_2.0": "expand.conv",
    "branch_main_2.1": "expand.bn",
}
_V2_LAYERS = {
    "branch_main.0": "main.0.conv",
    "branch_main.1": "main.0.bn",
    "branch_main.3": "main.1.conv",
    "branch_main.4": "main.1.bn",
    "branch_main.5": "main.2.conv",
    "branch_main.6": "main.2.bn",
    "branch_proj.0": "proj.0.conv",
    "branch_proj.1": "proj.0.bn",
    "branch_proj.2": "proj.1.conv",
    "branch_proj.3": "proj.1.bn",
}
_COMMON = {
    "first_conv.0": "stem.conv",
    "first_conv.1": "stem.bn",
    "conv_last.0": "last.conv",
    "conv_last.1": "last.bn",
    "classifier.0": "classifier",
}
_FEATURE = re.compile(r"features\.(\d+)\.(\w+\.\d+)\.(\w+)")


def _convert(state: dict, layers: dict[str, str]) -> dict:
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        match = _FEATURE.fullmatch(key)
        if match:
            index, layer, leaf = match.groups()
            out[f"{_unit_index(int(index))}.{layers.get(layer, layer)}.{leaf}"] = value
            continue
        module, _, leaf = key.rpartition(".")
        out[f"{_COMMON.get(module, module)}.{leaf}"] = value
    return out


def convert_v1_official(state: dict) -> dict:
    """megvii-model/ShuffleNet-Series ShuffleNetV1 checkpoint -> ours: `first_conv`, flat `features.<i>`
    with `branch_main_1/2` Sequentials, `classifier.0`."""
    return _convert(state, _V1_LAYERS)


def convert_v2_official(state: dict) -> dict:
    """megvii-model/ShuffleNet-Series ShuffleNetV2 checkpoint -> ours: `first_conv`, flat `features.<i>`
    with `branch_main` / `branch_proj` Sequentials, `conv_last`, `classifier.0`."""
    return _convert(state, _V2_LAYERS)


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
    implementation="segbench",
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
            note=_MULTIPLY_ADDS.format(ours="0.146", value="0.146"),
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
    "tables could not be retrieved here, so no paper number is cited. The network is the official code's "
    "(2,278,760 params with its bias-free 1000-class classifier, as that code builds it); torchvision's "
    "shufflenet_v2_x1_0, which this id used to build, differs in the first unit of stage 2, the shuffle and "
    "the classifier bias (2,278,604 params): see the module docstring.",
)


@register_model(card=V1_CARD, converter=convert_v1_official)
def shufflenet_g3(num_classes: int = 1000, **kwargs) -> nn.Module:
    """ShuffleNet v1 1x, g=3."""
    return ShuffleNetV1(num_classes=num_classes, groups=3, **kwargs)


@register_model(card=V2_CARD, converter=convert_v2_official)
def shufflenetv2(num_classes: int = 1000, **kwargs) -> nn.Module:
    """ShuffleNet V2 1x, the official code's network."""
    return ShuffleNetV2(num_classes=num_classes, **kwargs)
