"""DFANet (Li et al., "DFANet: Deep Feature Aggregation for Real-Time Semantic Segmentation", CVPR 2019,
arXiv 1904.02216).

Three copies of a modified Xception (XceptionA: 48/96/192 channels, XceptionB: 32/64/128; 3x3 stride-2 conv
to 8 channels, then stages enc2/enc3/enc4 of 4/6/4 units, each unit three 3x3 depthwise separable convs of
C/4, C/4, C channels with a residual shortcut, as both references read the paper's Table 1) run in cascade:
- sub-network aggregation: the FC-attention output of one backbone (stride 16 of its input) is upsampled x4
  and concatenated with that backbone's enc2 output to form the next backbone's input;
- sub-stage aggregation: each enc3/enc4 of backbones 2 and 3 also takes the previous backbone's output of the
  same stage, concatenated with its own previous stage's output;
- FC attention: global average pool -> fully-connected layer to 1000 (the ImageNet classifier kept from
  pre-training) -> 1x1 conv back to C channels -> channel-wise product with the enc4 features;
- decoder: the three enc2 outputs (strides 4, 8, 16) are reduced, brought to stride 4 and summed, then
  refined by a conv; the three attention outputs (strides 16, 32, 64) are reduced, upsampled and added; a 1x1
  classifier predicts at stride 4 and the logits are upsampled x4.

The authors released no code. Reference implementations read for what the paper leaves open:
huaifeng1993/DFANet (model/dfanet.py @ 2d2e1ad4c39a9390f8c2745bfe05e5e113fb62b8, the 2019 version that
follows the paper's Table 1; the 2020 rewrite uses 3 units per stage and a sigmoid gate) and lxtGH/Fast_Seg
(libs/models/DFANet.py, libs/models/backbone/xception.py @ 7895738fda6170837dd508389bf3ee9561eff28c).

Choices and deviations:
- Unit: sepconv(C/4)-BN-ReLU, sepconv(C/4)-BN-ReLU, sepconv(C)-BN, plus a shortcut (1x1 conv + BN where the
  shape changes), ReLU after the sum (post-activation, so the stage outputs that are concatenated and
  decoded are rectified; Xception puts the ReLU at the start of the next unit). No BN between depthwise and
  pointwise conv. A stage's first unit strides in its first separable conv; both references stride in the
  third, which costs 25% more: with the stride first, conv1 + one XceptionA/B measures 1.66 / 0.85 G
  multiply-adds (convs only) at 1024x1024, against the 1.6 / 0.83 GFLOPs a secondary reading of the
  paper's Table 1 gives for the two backbones (the Table itself could not be opened here).
- FC-attention gate: 1x1 conv + BN + ReLU (both references), no sigmoid.
- Decoder width 32 and 1x1 reductions (both references; huaifeng1993 issue #13 reports the authors said
  32 or 64), a 1x1 ConvBNReLU after the low-level sum (Fast_Seg), a plain 1x1 classifier. The paper's figure
  gives no widths.
- Three independent backbones (their own weights), as both references build them; secondary summaries say
  all three start from the same ImageNet-pretrained weights (backbones 2 and 3 differ in input width).
- No auxiliary heads: none appears in what could be read (abstract, references, secondary summaries);
  Fast_Seg adds deep supervision of its own.
- The paper body could not be opened here; the abstract, the two references and secondary summaries (one
  quoting the FC-attention description) are the sources.
- Every upsample resizes to an explicit size (`resize_to`): the model accepts any input size (stride-2
  3x3 convs with padding 1 and stride-2 1x1 shortcuts both give ceil(n/2)).

Parity: unverified. The authors released neither code nor weights. This model strides in a unit's first
separable conv (the paper's FLOPs) where both references stride in the third, and takes the conv after the
low-level sum from Fast_Seg only, so it matches neither reference exactly; huaifeng1993's builds DFANet A
only.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, resize_to
from zoo.layers.init import kaiming_init_
from zoo.registry import register_model

_STAGE_UNITS = (4, 6, 4)  # enc2, enc3, enc4 (Table 1 as the references read it)


def _sepconv(in_channels: int, out_channels: int, stride: int = 1, act: bool = True) -> nn.Sequential:
    """3x3 depthwise conv, then 1x1 pointwise ConvBNAct (Xception's separable conv, BN after pointwise)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
        ConvBNAct(in_channels, out_channels, 1, act_layer=nn.ReLU if act else None),
    )


class XceptionUnit(nn.Module):
    """Table 1 unit: separable convs to C/4, C/4, C (the first one strided) plus a shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        mid = out_channels // 4
        self.convs = nn.Sequential(
            _sepconv(in_channels, mid, stride),
            _sepconv(mid, mid),
            _sepconv(mid, out_channels, act=False),
        )
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = ConvBNAct(in_channels, out_channels, 1, stride=stride, act_layer=None)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.convs(x) + self.shortcut(x))


def _stage(in_channels: int, out_channels: int, units: int) -> nn.Sequential:
    return nn.Sequential(
        XceptionUnit(in_channels, out_channels, stride=2),
        *(XceptionUnit(out_channels, out_channels) for _ in range(units - 1)),
    )


class FCAttention(nn.Module):
    """Global pool -> FC to 1000 (the ImageNet classifier) -> 1x1 ConvBNReLU to C -> channel-wise product."""

    def __init__(self, channels: int, fc_features: int = 1000):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, fc_features)
        self.conv = ConvBNAct(fc_features, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = self.fc(self.pool(x).flatten(1))
        return x * self.conv(att[:, :, None, None])


class Backbone(nn.Module):
    """enc2, enc3, enc4 and FC attention of one modified Xception; with `prev` (the previous backbone's
    enc2/enc3/enc4 outputs) enc3 and enc4 concatenate the same-stage features (sub-stage aggregation)."""

    def __init__(self, in_channels: int, channels: tuple[int, int, int], aggregate: bool):
        super().__init__()
        c2, c3, c4 = channels
        self.enc2 = _stage(in_channels, c2, _STAGE_UNITS[0])
        self.enc3 = _stage(c2 + (c3 if aggregate else 0), c3, _STAGE_UNITS[1])
        self.enc4 = _stage(c3 + (c4 if aggregate else 0), c4, _STAGE_UNITS[2])
        self.fca = FCAttention(c4)

    def forward(self, x: torch.Tensor, prev: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        e2 = self.enc2(x)
        e3 = self.enc3(e2 if prev is None else torch.cat([e2, prev[1]], dim=1))
        e4 = self.enc4(e3 if prev is None else torch.cat([e3, prev[2]], dim=1))
        return [e2, e3, e4, self.fca(e4)]


class DFANet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]."""

    def __init__(
        self,
        num_classes: int = 19,
        channels: tuple[int, int, int] = (48, 96, 192),
        decoder_channels: int = 32,
    ):
        super().__init__()
        c2, _, c4 = channels
        self.conv1 = ConvBNAct(3, 8, 3, stride=2)
        # Backbones 2 and 3 take [upsampled attention output, enc2 output] of the previous one.
        self.backbones = nn.ModuleList(
            [Backbone(8, channels, aggregate=False)]
            + [Backbone(c4 + c2, channels, aggregate=True) for _ in range(2)]
        )
        d = decoder_channels
        self.low_reduce = nn.ModuleList(ConvBNAct(c2, d, 1) for _ in range(3))
        self.low_fuse = ConvBNAct(d, d, 1)
        self.high_reduce = nn.ModuleList(ConvBNAct(c4, d, 1) for _ in range(3))
        self.classifier = nn.Conv2d(d, num_classes, 1)
        kaiming_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.backbones[0](self.conv1(x))]
        for backbone in self.backbones[1:]:
            e2, fca = feats[-1][0], feats[-1][3]
            # Sub-network aggregation: the attention output (1/4 of enc2's resolution) joins enc2's output.
            feats.append(backbone(torch.cat([resize_to(fca, e2), e2], dim=1), feats[-1]))
        (l1, l2, l3), (h1, h2, h3) = ([f[i] for f in feats] for i in (0, 3))
        r1, r2, r3 = self.low_reduce
        low = r1(l1)
        low = self.low_fuse(low + resize_to(r2(l2), low) + resize_to(r3(l3), low))
        q1, q2, q3 = self.high_reduce
        fused = low + resize_to(q1(h1), low) + resize_to(q2(h2), low) + resize_to(q3(h3), low)
        return resize_to(self.classifier(fused), x)


_PAPER = Paper(
    title="DFANet: Deep Feature Aggregation for Real-Time Semantic Segmentation",
    venue="CVPR",
    year=2019,
    arxiv="1904.02216",
)
_REFERENCE = "https://github.com/huaifeng1993/DFANet"
_CONVENTION_NOTE = (
    "The paper does not define its FLOPs; multiply-adds is inferred: our build measures 3.2 G multiply-adds "
    "at 1024x1024 and half that at 512x1024, so 2 x multiply-adds would be twice the paper's figures."
)
_SIZE_NOTE = (
    "The abstract names no input size, only a 'higher resolution image' for DFANet A and a lower one for "
    "DFANet A'; secondary readings of the paper give (H, W) = (1024, 1024) and (512, 1024), which the 2:1 "
    "ratio of the two FLOPs figures agrees with."
)
_NOT_VERIFIED = (
    "The paper body (tables) could not be opened here: only the abstract was verified. Left out for that "
    "reason: the params figures secondary sources attribute to the paper (7.8M for DFANet A, 4.8M for DFANet "
    "B, e.g. zh320/realtime-semantic-segmentation-pytorch README), DFANet B's 2.1 GFLOPs / 67.1 mIoU, the "
    "per-variant times and the CamVid results. No official code, so no official params count either. For "
    "comparison, the Table 1 design as the references read it cannot reach 7.8M: ours counts {ours}, "
    "zh320's re-implementation 3.05M (its units end with an extra C x C 1x1 conv; heavier decoder heads)."
)

CARD_A = ModelCard(
    group="realtime",
    paper=_PAPER,
    official_code=_REFERENCE,
    implementation="segbench",
    num_classes=19,
    input_hw=(1024, 1024),
    reported=(
        Reported(
            metric="flops",
            value=3.4,
            source="paper abstract",
            dataset="Cityscapes",
            convention="multiply-adds",
            note="DFANet A at the 'higher resolution' input. " + _SIZE_NOTE + " " + _CONVENTION_NOTE,
        ),
        Reported(
            metric="miou",
            value=71.3,
            source="paper abstract",
            dataset="Cityscapes",
            split="test",
            note="DFANet A at the 'higher resolution' input (see the flops note).",
        ),
        Reported(
            metric="flops",
            value=1.7,
            source="paper abstract",
            dataset="Cityscapes",
            convention="multiply-adds",
            variant="DFANet A' (DFANet A at the lower input size)",
            note="DFANet A': the same network at the lower input size (512x1024 per secondary readings).",
        ),
        Reported(
            metric="fps",
            value=160.0,
            source="paper abstract",
            dataset="Cityscapes",
            device="NVIDIA Titan X",
            variant="DFANet A' (DFANet A at the lower input size)",
            note="DFANet A' (lower input size). Backend, precision and batch are not in the abstract.",
        ),
        Reported(
            metric="miou",
            value=70.3,
            source="paper abstract",
            dataset="Cityscapes",
            split="test",
            variant="DFANet A' (DFANet A at the lower input size)",
            note="DFANet A' (lower input size).",
        ),
    ),
    notes="The authors released no code; official_code is the best-known re-implementation (the one the "
    "paper's Papers-with-Code entry links), read together with lxtGH/Fast_Seg. input_hw 1024x1024 is "
    "DFANet A's size per secondary readings of the paper. " + _NOT_VERIFIED.format(ours="1.82M"),
)

CARD_B = ModelCard(
    group="realtime",
    paper=_PAPER,
    official_code=_REFERENCE,
    implementation="segbench",
    num_classes=19,
    input_hw=(1024, 1024),
    notes="DFANet B swaps XceptionA for the narrower XceptionB (32/64/128 channels); the abstract reports "
    "numbers for DFANet A only, so this card carries none. The authors released no code; official_code is "
    "the best-known re-implementation (it builds only DFANet A). input_hw as for DFANet A (secondary "
    "readings). " + _NOT_VERIFIED.format(ours="1.09M for DFANet B"),
)


@register_model(card=CARD_A)
def dfanet_a(num_classes: int = 19, **kwargs) -> nn.Module:
    """DFANet A: three XceptionA backbones (48/96/192 channels). kwargs: decoder_channels (32)."""
    return DFANet(num_classes=num_classes, channels=(48, 96, 192), **kwargs)


@register_model(card=CARD_B)
def dfanet_b(num_classes: int = 19, **kwargs) -> nn.Module:
    """DFANet B: three XceptionB backbones (32/64/128 channels). kwargs: decoder_channels (32)."""
    return DFANet(num_classes=num_classes, channels=(32, 64, 128), **kwargs)
