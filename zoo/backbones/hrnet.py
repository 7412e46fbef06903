"""HRNet trunks as the segmentation code runs them (HRNet/HRNet-Semantic-Segmentation, seg_hrnet.py): timm's
HighResolutionNet (its configs equal the official ones) without a head, and exchange units that resize lower
streams bilinearly to the target stream's size, so any input size works.
"""

from __future__ import annotations

import torch
from timm.models.hrnet import HighResolutionModule, HighResolutionNet, cfg_cls
from torch import nn

from zoo.layers.resize import resize_to


class SegHRModule(HighResolutionModule):
    """timm's exchange unit as the segmentation code runs it: a lower stream's 1x1 conv + BN output is
    resized bilinearly to the target stream's size (timm's nearest x2^k upsample layer is left out).
    Summed in the official order (stream 0 first)."""

    align_corners: bool = False

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.num_branches == 1:
            return [self.branches[0](x[0])]
        x = [branch(t) for branch, t in zip(self.branches, x, strict=True)]
        out = []
        for i, fuse in enumerate(self.fuse_layers):
            y = None
            for j, (f, t) in enumerate(zip(fuse, x, strict=True)):
                t = resize_to(f(t), x[i], align_corners=self.align_corners) if j > i else f(t)
                y = t if y is None else y + t
            out.append(self.fuse_act(y))
        return out


class HRNetTrunk(HighResolutionNet):
    """timm's HighResolutionNet without a head, with `SegHRModule` exchange units.

    forward(x) -> [x4, x8, x16, x32]: the last stage's four streams (widths C, 2C, 4C, 8C). State-dict keys
    are the official seg code's (conv1, bn1, conv2, bn2, layer1, transition1..3, stage2..4).
    """

    def __init__(self, variant: str, align_corners: bool = False):
        super().__init__(cfg_cls[variant], head="none")
        for module in self.modules():
            if type(module) is HighResolutionModule:
                module.__class__ = SegHRModule
                module.align_corners = align_corners
                for i, fuse in enumerate(module.fuse_layers):
                    for j in range(i + 1, len(fuse)):
                        fuse[j][2] = nn.Identity()  # the nearest upsample; SegHRModule resizes instead
        self.out_channels = [f["num_chs"] for f in self.feature_info[1:]]
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_features(x)

    def concat_streams(self, streams: list[torch.Tensor]) -> torch.Tensor:
        """HRNetV2's representation: the four streams upsampled to stride 4 and concatenated."""
        top = streams[0]
        return torch.cat(
            [top] + [resize_to(s, top, align_corners=self.align_corners) for s in streams[1:]], dim=1
        )
