"""GCNet for segmentation: Cao, Xu, Lin, Wei, Hu, "GCNet: Non-local Networks Meet Squeeze-Excitation Networks
and Beyond", ICCV Workshops 2019, arXiv 1904.11492.

Official code (on mmdetection, for detection): https://github.com/xvjiarui/GCNet,
mmdet/ops/gcb/context_block.py @ 029db54 (read for the block).

The global context (GC) block (paper Fig. 4(d)): context modelling by attention pooling (a 1x1 conv
C -> 1, softmax over all positions, the attention-weighted sum of the features: one C-vector per image),
a bottleneck transform (1x1 conv C -> C*ratio, LayerNorm, ReLU, 1x1 conv back to C; the last conv
zero-initialised so the block starts as the identity) and fusion by broadcast addition to every
position. The pooling product is a torch.bmm, so fvcore counts it.

The paper evaluates detection/instance segmentation (COCO), ImageNet classification and Kinetics action
recognition: it has no semantic-segmentation model or result. The segmentation configuration here follows
the common reproduction, which is *not* official code: mmsegmentation's GCHead
(mmseg/models/decode_heads/gc_head.py @ 1cd613f; config configs/_base_/models/gcnet_r50-d8.py @ 3f8d34e),
the same FCN-style head as its NLHead (`zoo.layers.BlockHead`) with a GC block (ratio 1/4,
attention pooling, channel-add fusion) in place of the non-local block, on the shared dilated frame
(`zoo.models.dilated`, output stride 8; training-only FCN head on layer3, as in that config):
    c5 (2048) -> 3x3 ConvBNReLU 512 -> GC block -> 3x3 ConvBNReLU 512
       -> concat with c5 -> 3x3 ConvBNReLU 512 -> dropout 0.1 -> 1x1 classifier -> bilinear upsample.

Choices and deviations, and why:
- Ratio 1/4 (the reproduction's, the paper's "r4" setting); the paper's default for its detection backbones
  is r16.
- Trunk: torchvision's ResNet (7x7 stem, `deep_stem=False`), the standard ResNet the paper uses, so ImageNet
  weights load by key. mmseg's reproduction uses ResNetV1c, whose three-conv stem (3 -> 32 -> 32 -> 64) is
  not the deep stem `ResNetFeatures` offers: it has 19,232 more parameters. Layer4 rates (first unit 2, then
  4) match mmseg's contract_dilation.
- Upsampling with align_corners=False (as mmseg). No converter for mmseg checkpoints: their stem differs.
- Parity is not tested: the official code has no segmentation model, and the reproduction named above
  could not be run here at one exact commit (its repository snapshot was too large to bring here, and its
  GCHead needs mmcv); with its ResNetV1c stem it would not load strictly into this trunk anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.card import ModelCard, Paper
from zoo.layers import BlockHead
from zoo.models.dilated import DilatedResNetSegmenter
from zoo.registry import register_model


class ContextBlock(nn.Module):
    """GC block (attention pooling, channel-add fusion); forward(x[N, C, H, W]) -> same shape.

    Attribute names are the official code's (`conv_mask`, `channel_add_conv`), so its weights load by key.
    """

    def __init__(self, channels: int, ratio: float = 1 / 4):
        super().__init__()
        planes = int(channels * ratio)
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, planes, 1),
            nn.LayerNorm([planes, 1, 1]),  # the paper's: eases optimising the two-layer transform
            nn.ReLU(),
            nn.Conv2d(planes, channels, 1),
        )
        nn.init.zeros_(self.channel_add_conv[-1].weight)
        nn.init.zeros_(self.channel_add_conv[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        weights = torch.softmax(self.conv_mask(x).flatten(2), dim=-1)  # [N, 1, HW]
        context = torch.bmm(x.flatten(2), weights.transpose(1, 2)).reshape(n, c, 1, 1)
        return x + self.channel_add_conv(context)


def _card(depth: int) -> ModelCard:
    return ModelCard(
        group="semantic",
        paper=Paper(
            title="GCNet: Non-local Networks Meet Squeeze-Excitation Networks and Beyond",
            venue="ICCV Workshops",
            year=2019,
            arxiv="1904.11492",
        ),
        official_code="https://github.com/xvjiarui/GCNet",
        implementation=f"segbench (torchvision 0.29 ResNet-{depth} trunk, dilated, output stride 8)",
        num_classes=19,
        input_hw=(1024, 2048),
        notes=(
            "The official code is the authors' mmdetection fork, read for the GC block only. The paper has "
            "no semantic-segmentation model or result, so this card records no mIoU; the segmentation head "
            "is mmsegmentation's GCHead reproduction (not official code), whose Cityscapes numbers are a "
            "third party's and are not recorded. The paper's parameter and FLOPs figures are for its "
            "detection and classification backbones, and the official code gives none for a segmentation "
            "model, so the card reports no params. input_hw: full-resolution Cityscapes (the reproduction's "
            "whole-image inference), not a paper setting. For comparison only: mmseg's reproduction has its "
            "ResNetV1c stem, 19,232 more parameters than ours. "
            "Parity with code is not tested (see the module docstring)."
        ),
    )


def _gcnet(depth: int, num_classes: int, aux_heads: bool, **kwargs) -> nn.Module:
    head = BlockHead(ContextBlock(512, ratio=1 / 4))
    return DilatedResNetSegmenter(
        head, 512, num_classes, depth=depth, output_stride=8, aux_heads=aux_heads, **kwargs
    )


@register_model(card=_card(50))
def gcnet_r50(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return _gcnet(50, num_classes, aux_heads, **kwargs)


@register_model(card=_card(101))
def gcnet_r101(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return _gcnet(101, num_classes, aux_heads, **kwargs)
