"""The frame the dilated-ResNet segmenters share (PSPNet, PSANet, non-local, GCNet, ANN, CCNet, DANet,
EncNet, DeepLabV3, ...): a ResNet-50/101 trunk at output stride 8 -> the paper's context head on the last
feature map -> dropout + 1x1 classifier -> bilinear upsampling to the input size.

The training-only FCN auxiliary head on layer3 is PSPNet's deep supervision (weight 0.4), which every
later paper of this family trains with; it lives under `aux_heads` and is inactive in eval.
`align_corners` is that of the final bilinear upsampling (most official codes of this family use True).
Registers no model: each paper's file builds its head and registers its variants on this frame.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.backbones import ResNetFeatures
from zoo.layers import SegHead, resize_to


class DilatedResNetSegmenter(nn.Module):
    """`head` maps the trunk's last feature map (2048 channels) to `head_channels` channels.

    forward(x[N, 3, H, W]) -> logits[N, num_classes, H, W] in eval; in train mode with aux heads,
    (logits, [aux logits]).
    """

    def __init__(
        self,
        head: nn.Module,
        head_channels: int,
        num_classes: int,
        depth: int = 50,
        output_stride: int = 8,
        deep_stem: bool = False,
        multi_grid: tuple[int, ...] | None = None,
        dropout: float = 0.1,
        aux_heads: bool = True,
        align_corners: bool = False,
    ):
        super().__init__()
        self.align_corners = align_corners
        self.backbone = ResNetFeatures(depth, output_stride, multi_grid, deep_stem=deep_stem)
        self.head = head
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(head_channels, num_classes, 1))
        c4 = self.backbone.feature_info[2]["channels"]
        self.aux_heads = nn.ModuleList([SegHead(c4, 256, num_classes, dropout=0.1)]) if aux_heads else None

    def forward(self, x: torch.Tensor):
        features = self.backbone(x)
        logits = self.upsample(self.classifier(self.head(features[-1])), x)
        if self.training and self.aux_heads is not None:
            return logits, [self.upsample(self.aux_heads[0](features[2]), x)]
        return logits

    def upsample(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Bilinear resize to the input's size, with the model's `align_corners`."""
        return resize_to(logits, x, align_corners=self.align_corners)
