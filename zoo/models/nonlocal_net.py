"""Non-local network for segmentation: Wang, Girshick, Gupta, He, "Non-local Neural Networks", CVPR 2018,
arXiv 1711.07971. (The module is not named `nonlocal`: that is a Python keyword.)

Official code (Caffe2, video models): https://github.com/facebookresearch/video-nonlocal-net,
lib/models/nonlocal_helper.py and lib/core/config.py @ c253ed5 (read for the block).

The paper evaluates on video classification and COCO detection/pose only: it has no segmentation model and no
segmentation result. The segmentation configuration here follows the common reproduction, which is *not*
official code: mmsegmentation's NLHead (mmseg/models/decode_heads/nl_head.py @ 1cd613f, with mmcv's
NonLocal2d, mmcv/cnn/bricks/non_local.py @ 0198abf; config configs/_base_/models/nonlocal_r50-d8.py
@ 3f8d34e). On the shared dilated frame (`zoo.models.dilated`, output stride 8):
    c5 (2048) -> 3x3 ConvBNReLU 512 -> non-local block -> 3x3 ConvBNReLU 512
       -> concat with c5 -> 3x3 ConvBNReLU 512 -> dropout 0.1 -> 1x1 classifier -> bilinear upsample,
plus the training-only FCN head on layer3 (1024 -> 256, loss weight 0.4), as in that config.

The block (paper Sec 3.2-3.3, Eq. 1, 3, 6; embedded Gaussian): theta, phi, g are 1x1 convs to half the
channels (256); y = softmax(theta^T phi) g; z = BN(W_z y) + x, the BN's scale initialised to zero so the block
starts as the identity (paper Sec 3.3; official BN_INIT_GAMMA = 0). The affinity is scaled by
1/sqrt(256) before the softmax: the paper's Eq. 3 has no scaling, but the official code's default
(cfg.NONLOCAL.USE_SCALE = True) multiplies by dim_inner**-0.5, and mmseg's NLHead (use_scale=True) does the
same. The attention products are torch.bmm, so fvcore counts them.

Deviations and choices, and why:
- No max-pool subsampling of phi and g. The paper's Sec 3.3 "subsampling" trick (official
  USE_MAXPOOL = True) is a video-model efficiency option; the mmseg reproduction has sub_sample=False.
  The full H/8 x W/8 affinity is what makes this model costly: at 1024x2048 it is a 32768 x 32768 matrix.
- Trunk: torchvision's ResNet (7x7 stem, `deep_stem=False`), the standard ResNet the paper builds on, so
  ImageNet weights load by key. mmseg's reproduction uses ResNetV1c, whose three-conv stem
  (3 -> 32 -> 32 -> 64) is not the deep stem `ResNetFeatures` offers (3 -> 64 -> 64 -> 128): it has 19,232
  more parameters. Layer4 rates (first unit 2, then 4) match mmseg's contract_dilation.
- W_z is a bias-free 1x1 conv before its BN (mmcv); the official Caffe2 conv has a bias, redundant before BN.
- Upsampling with align_corners=False (as mmseg). No converter for mmseg checkpoints: their stem differs.
- Parity is not tested: the official code has no segmentation model, and the reproduction named above
  could not be run here at one exact commit (its repository snapshot was too large to bring here, and its
  NLHead needs mmcv); with its ResNetV1c stem it would not load strictly into this trunk anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.card import ModelCard, Paper
from zoo.layers import BlockHead, ConvBNAct
from zoo.models.dilated import DilatedResNetSegmenter
from zoo.registry import register_model


class NonLocal2d(nn.Module):
    """Embedded-Gaussian non-local block with a residual connection; forward(x[N, C, H, W]) -> same shape."""

    def __init__(self, channels: int, reduction: int = 2, use_scale: bool = True):
        super().__init__()
        inner = channels // reduction
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.conv_out = ConvBNAct(inner, channels, 1, act_layer=None)
        nn.init.zeros_(self.conv_out.bn.weight)  # the block starts as the identity (paper Sec 3.3)
        self.scale = inner**-0.5 if use_scale else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # [N, HW, C']
        phi = self.phi(x).flatten(2)  # [N, C', HW]
        g = self.g(x).flatten(2).transpose(1, 2)  # [N, HW, C']
        affinity = torch.softmax(torch.bmm(theta, phi) * self.scale, dim=-1)  # [N, HW, HW]
        y = torch.bmm(affinity, g).transpose(1, 2).reshape(n, -1, h, w)
        return x + self.conv_out(y)


def _card(depth: int) -> ModelCard:
    return ModelCard(
        group="semantic",
        paper=Paper(title="Non-local Neural Networks", venue="CVPR", year=2018, arxiv="1711.07971"),
        official_code="https://github.com/facebookresearch/video-nonlocal-net",
        implementation=f"segbench (torchvision 0.29 ResNet-{depth} trunk, dilated, output stride 8)",
        num_classes=19,
        input_hw=(1024, 2048),
        notes=(
            "The official code is the authors' Caffe2 video repository, read for the block only. The paper "
            "has no segmentation model or result, so this card records no mIoU; the segmentation head is "
            "mmsegmentation's NLHead reproduction (not official code), whose Cityscapes numbers are a third "
            "party's and are not recorded. Neither the paper nor the official code gives a parameter count "
            "or FLOPs for a segmentation model, so the card reports none. input_hw: full-resolution "
            "Cityscapes (the reproduction's whole-image inference), not a paper setting. For comparison "
            "only: mmseg's reproduction has its ResNetV1c stem, 19,232 more parameters than ours. "
            "Parity with code is not tested (see the module docstring)."
        ),
    )


def _nonlocal(depth: int, num_classes: int, aux_heads: bool, **kwargs) -> nn.Module:
    head = BlockHead(NonLocal2d(512, reduction=2, use_scale=True))
    return DilatedResNetSegmenter(
        head, 512, num_classes, depth=depth, output_stride=8, aux_heads=aux_heads, **kwargs
    )


@register_model(card=_card(50))
def nonlocal_r50(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return _nonlocal(50, num_classes, aux_heads, **kwargs)


@register_model(card=_card(101))
def nonlocal_r101(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return _nonlocal(101, num_classes, aux_heads, **kwargs)
