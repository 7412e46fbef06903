"""ContextNet (Poudel, Bonde, Liwicki, Zach, "ContextNet: Exploring Context and Detail for Semantic
Segmentation in Real-time", BMVC 2018, arXiv 1805.04554); the paper's ContextNet is its cn14 variant.

Two branches meet in a feature fusion unit, then a classifier, for a 1024x2048 input:
  context branch  the input resized to 1/4 (256x512); Conv2d 3x3 s2 (32); bottlenecks (t, c, n, s):
                  (1, 32, 1, 1), (6, 32, 1, 1), (6, 48, 3, 2), (6, 64, 3, 2), (6, 96, 2, 1), (6, 128, 2, 1);
                  Conv2d 3x3 (128)                                                       -> 1/32 of the input
  detail branch   the full-resolution input; Conv2d 3x3 s2 (32), then three depthwise-separable convs
                  (DWConv 3x3 + Conv 1x1): s2 to 64, s2 to 128, s1 to 128                 -> 1/8
  fusion          context upsampled x4, 3x3 depthwise (dilation 4) + 1x1 conv; detail 1x1 conv; add, act
  classifier      1x1 conv to the classes; bilinear upsample to the input size.

The authors released no code, and the paper's PDF could not be opened here: the layer table above is the
paper's Table 1 as every reimplementation read for this file reproduces it (zh320/realtime-semantic-
segmentation-pytorch models/contextnet.py @ 48ecdd9; TensorMONK's NeuralArchitectures/contextnet.py;
torch_semantic_segmentation's contextnet.py), and the widely used xiaoyufenfei/Efficient-Segmentation-Networks
(model/ContextNet.py @ beb5fea) also follows it except where noted below. Facts taken from the Fast-SCNN
paper's text (same first author, arXiv 1902.04502): ContextNet omits the nonlinearity between depthwise and
pointwise convs (Sec. 3.2.1), uses ReLU6 (Sec. 4.1: "Contrary to MobileNet and ContextNet ... ReLU"), fuses
by simple addition (Sec. 3.2.3), and has no extra layers after the fusion (Sec. 3.2.4 presents adding them
as Fast-SCNN's change).

Choices and deviations:
- The bottleneck block and the fusion unit are Fast-SCNN's (`zoo.layers.mobile`), with ReLU6. The t = 1
  bottleneck has no expansion conv (MobileNetV2 / TF-slim convention; 1,088 parameters less than with one).
- Classifier: a single 1x1 conv (with bias). xiaoyufenfei's reimplementation uses Fast-SCNN's classifier
  (two DSConvs + 1x1) instead, and leaves out the context branch's final 3x3 conv; we follow the table.
- The context input is resized bilinearly to ceil(H/4) x ceil(W/4) (256x512 for the paper's 1024x2048);
  every upsample is bilinear, align_corners=False, to explicit sizes (`resize_to`), so any input size works.
  The references use align_corners=True.
- No dropout (training only) and no auxiliary heads (none is described for ContextNet).
- The paper trains wider networks and prunes them back to this size (its "network compression"); only the
  final architecture is built here.

Parity: unverified. The authors released neither code nor weights, and the reimplementation the card names
(xiaoyufenfei/Efficient-Segmentation-Networks) departs from the paper's Table 1 (Fast-SCNN's classifier, no
final 3x3 conv in the context branch, align_corners=True), so it computes another function than this model;
none of the others read builds exactly the table either.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, resize_to
from zoo.layers.init import kaiming_init_
from zoo.layers.mobile import DetailContextFusion, bottleneck_stage, dsconv
from zoo.registry import register_model

# (expansion t, channels c, repeats n, stride s) of the context branch's bottlenecks (Table 1).
CONTEXT_BOTTLENECKS = (
    (1, 32, 1, 1),
    (6, 32, 1, 1),
    (6, 48, 3, 2),
    (6, 64, 3, 2),
    (6, 96, 2, 1),
    (6, 128, 2, 1),
)


def _context_branch(act_layer: type[nn.Module] = nn.ReLU6) -> nn.Sequential:
    layers = [ConvBNAct(3, 32, 3, stride=2, act_layer=act_layer)]
    channels = 32
    for t, c, n, s in CONTEXT_BOTTLENECKS:
        layers.append(bottleneck_stage(channels, c, n, s, expansion=t, act_layer=act_layer))
        channels = c
    layers.append(ConvBNAct(channels, 128, 3, act_layer=act_layer))
    return nn.Sequential(*layers)


def _detail_branch(act_layer: type[nn.Module] = nn.ReLU6) -> nn.Sequential:
    return nn.Sequential(
        ConvBNAct(3, 32, 3, stride=2, act_layer=act_layer),
        dsconv(32, 64, stride=2, act_layer=act_layer),
        dsconv(64, 128, stride=2, act_layer=act_layer),
        dsconv(128, 128, act_layer=act_layer),
    )


class ContextNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]. `context_factor` is the context branch's input
    subsampling (4 for the paper's ContextNet, cn14)."""

    def __init__(self, num_classes: int = 19, context_factor: int = 4):
        super().__init__()
        self.context_factor = context_factor
        self.context = _context_branch()
        self.detail = _detail_branch()
        self.fusion = DetailContextFusion(128, 128, 128, dilation=4, act_layer=nn.ReLU6)
        self.classifier = nn.Conv2d(128, num_classes, 1)
        kaiming_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        f = self.context_factor
        small = resize_to(x, ((h + f - 1) // f, (w + f - 1) // f))
        return resize_to(self.classifier(self.fusion(self.detail(x), self.context(small))), x)


CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="ContextNet: Exploring Context and Detail for Semantic Segmentation in Real-time",
        venue="BMVC",
        year=2018,
        arxiv="1805.04554",
    ),
    official_code="https://github.com/xiaoyufenfei/Efficient-Segmentation-Networks",
    implementation="segbench",
    num_classes=19,
    input_hw=(1024, 2048),
    reported=(
        Reported(
            "miou",
            66.1,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="test",
            protocol="single-scale, full resolution",
            note="The abstract does not name the split; the Fast-SCNN paper (Sec. 4.2) lists ContextNet's "
            "66.1% among its Cityscapes test-set results.",
        ),
        Reported(
            "fps",
            18.3,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            device="not stated in the abstract",
            note="Full 1024x2048 resolution, one frame at a time. Device, backend and precision are not "
            "in the abstract (the Fast-SCNN paper, Sec. 4.2, places ContextNet's timing on a Titan X "
            "(Maxwell)).",
        ),
        Reported(
            "fps",
            41.9,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            device="Nvidia Titan X (Maxwell)",
            note="'with pipelined computations for streamed data': the two branches of consecutive frames "
            "overlap, so this is throughput, not one frame's latency. Device from the Fast-SCNN paper's "
            "Sec. 4.2 text ('Compared to ContextNet (41.9 fps) ... on Nvidia Titan X (Maxwell)').",
        ),
    ),
    notes="The authors released no code; official_code is the well-known reimplementation consulted "
    "(it deviates from the paper's Table 1 as the module docstring says). No params figure is recorded: "
    "the paper's PDF could not be opened here. Secondary sources (the Fast-SCNN paper's Table 4 as quoted "
    "by others, and zh320/realtime-semantic-segmentation-pytorch's README) give 0.85M; ours is 986,835 "
    "(+16%). The gap lies in the context branch's final Conv2d (147,712 parameters as a 3x3 conv): were "
    "it 1x1, ours would be 855,763 (+0.7%), so the paper's table may mean a 1x1 conv there, but every "
    "reimplementation read uses 3x3 and we cannot check. The paper reports no FLOPs.",
)


@register_model(card=CARD)
def contextnet(num_classes: int = 19, **kwargs) -> nn.Module:
    """ContextNet (cn14: context branch at 1/4 of the input resolution), Cityscapes, 19 classes."""
    return ContextNet(num_classes=num_classes, **kwargs)
