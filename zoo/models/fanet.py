"""FANet with a ResNet-18 encoder (FANet-18): Hu, Perazzi, Caba Heilbron, Wang, Lin, Saenko, Sclaroff,
"Real-time Semantic Segmentation with Fast Attention", IEEE RA-L 2020, arXiv 2007.03815.

The authors released no FANet repository. Reference implementation used: the FANet-18 modules that the
first author released inside TDNet (feinanshan/TDNet @ 342f434b5d7121297b35c5ede2e82e379ff5b1e5,
Training/ptsemseg/models/td2_fanet/td2_fa.py: `FAModule`, `FPNOutput`; .../td2_fanet/resnet.py; TDNet's
README: "td2_fa18: takes two FANet-18 as subnetworks", whose weights load from a FANet-18 checkpoint with
strict key matching, so these modules are FANet-18's). Also read: zh320/realtime-semantic-segmentation-pytorch
@ c77b1b697188445c26ef126ff112042c78f4e196, models/fanet.py (a third-party version; see below).

Architecture (reference code):
- Encoder: ResNet-18 whose layer1 also strides by 2 (the paper's "additional spatial reduction" of the
  intermediate stages), so the four stages run at strides 8, 16, 32, 64. Built on
  `zoo.backbones.ResNetFeatures(18)` by replacing layer1's first unit with a stride-2 unit with a 1x1
  projection shortcut (`projection_unit`, shared with sfnet.py).
- Fast attention on every stage (C channels): query and key 1x1 conv-BN to 32 channels (no activation),
  value 1x1 conv-BN-ReLU (C), each of Q and K L2-normalised over channels (cosine similarity replaces the
  softmax), and y = Q^ (K^T V) computed right to left, so the cost is linear in the number of pixels n
  (O(n * 32 * C)) instead of quadratic; then a 1x1 conv-BN-ReLU and a residual sum with the stage input.
- Top-down fusion: stage 4's attended map goes through a 1x1 conv-BN-ReLU to C/2 (`up`), is upsampled and
  added to stage 3's; likewise down to stage 1. Stages 3 and 1 (strides 32 and 8) are each smoothed by a
  3x3 conv-BN-ReLU to 128 channels; the stride-32 map is upsampled and concatenated with the stride-8 one
  (256 channels), and the head (3x3 conv-BN-ReLU 256 + 1x1 conv) predicts at stride 8, upsampled to the
  input size. An auxiliary head (3x3 conv-BN-ReLU 64 + 1x1 conv) on the stride-32 smoothed map is
  training-only (`aux_heads`).

Deviations and why:
- The attention output is divided by n (y = Q^ (K^T V) / n, a mean over pixels, as zh320's version does).
  The reference omits 1/n; a BN follows either way, but without it the output scale grows with the input
  resolution, so BN statistics from training crops would not transfer to other sizes.
- The reference's `up` conv is a 1x1 conv with padding=1, which enlarges the map by one pixel per side
  before it is resized; we use padding 0 (the resize to the finer stage then aligns exactly).
- ReLU throughout: the reference uses InPlace-ABN, whose BN-activation is leaky ReLU (slope 0.01) by
  default, including inside the torchvision-initialised encoder; torchvision's ResNet has ReLU.
- The reference also builds `smooth` convs for stages 4 and 2 and an `up` conv for stage 1 that its
  forward never uses; we leave them out (they would add 739,904 parameters that cannot affect the output).
- Classifier convs have a bias (`zoo.layers.SegHead`); the reference's have none (num_classes parameters).
- Resizes use align_corners=False (`resize_to`); the reference uses align_corners=True.
- zh320's version differs more: 3x3 Q/K/V convs to 32 channels, the residual taken from V, a transposed-conv
  upsampling path at 32 channels and all four stages concatenated; we follow the authors' code instead.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from zoo.backbones import ResNetFeatures, projection_unit
from zoo.card import ModelCard, Paper
from zoo.layers import ConvBNAct, SegHead, resize_to
from zoo.registry import register_model


class FastAttention(nn.Module):
    """Fast (cosine-similarity) self-attention, linear in the number of pixels, with a residual sum."""

    def __init__(self, channels: int, qk_channels: int = 32):
        super().__init__()
        self.query = ConvBNAct(channels, qk_channels, 1, act_layer=None)
        self.key = ConvBNAct(channels, qk_channels, 1, act_layer=None)
        self.value = ConvBNAct(channels, channels, 1)
        self.out = ConvBNAct(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = F.normalize(self.query(x).flatten(2), dim=1)  # (N, c', n)
        k = F.normalize(self.key(x).flatten(2), dim=1)  # (N, c', n)
        v = self.value(x).flatten(2)  # (N, C, n)
        context = torch.matmul(k, v.transpose(1, 2)) / v.shape[-1]  # K^T V first: (N, c', C)
        y = torch.matmul(context.transpose(1, 2), q)  # (N, C, n)
        return x + self.out(y.reshape(x.shape))


class FANet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with the auxiliary head,
    (logits, [aux logits from the stride-32 map, upsampled to H, W])."""

    def __init__(
        self,
        num_classes: int = 19,
        extra_reduction: bool = True,
        qk_channels: int = 32,
        smooth_channels: int = 128,
        head_channels: int = 256,
        aux_heads: bool = True,
        aux_head_channels: int = 64,
    ):
        super().__init__()
        self.backbone = ResNetFeatures(18)
        if extra_reduction:
            self.backbone.layer1[0] = projection_unit(64, 64, stride=2)
        chs = [info["channels"] for info in self.backbone.feature_info]  # 64, 128, 256, 512
        self.attention = nn.ModuleList(FastAttention(c, qk_channels) for c in chs)
        # up[i] carries stage i+1's fused map down to stage i's width (C/2 of stage i+1).
        self.up = nn.ModuleList(ConvBNAct(c, c // 2, 1) for c in chs[1:])
        self.smooth1 = ConvBNAct(chs[0], smooth_channels, 3)
        self.smooth3 = ConvBNAct(chs[2], smooth_channels, 3)
        self.head = SegHead(2 * smooth_channels, head_channels, num_classes)
        self.aux_heads = (
            nn.ModuleList([SegHead(smooth_channels, aux_head_channels, num_classes)]) if aux_heads else None
        )

    def forward(self, x: torch.Tensor):
        c1, c2, c3, c4 = self.backbone(x)
        p4 = self.attention[3](c4)
        p3 = self.attention[2](c3) + resize_to(self.up[2](p4), c3)
        p2 = self.attention[1](c2) + resize_to(self.up[1](p3), c2)
        p1 = self.attention[0](c1) + resize_to(self.up[0](p2), c1)
        s3, s1 = self.smooth3(p3), self.smooth1(p1)
        logits = resize_to(self.head(torch.cat([resize_to(s3, s1), s1], dim=1)), x)
        if self.training and self.aux_heads is not None:
            return logits, [resize_to(self.aux_heads[0](s3), x)]
        return logits


CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="Real-time Semantic Segmentation with Fast Attention",
        venue="IEEE RA-L",
        year=2020,
        arxiv="2007.03815",
    ),
    official_code="https://github.com/feinanshan/TDNet",
    implementation="segbench (torchvision 0.29 ResNet-18 trunk)",
    num_classes=19,
    input_hw=(1024, 2048),
    params_counts_aux_heads=False,
    reported=(),
    notes=(
        "The authors released no FANet code; official_code is the first author's TDNet repository, whose "
        "td2_fanet modules are FANet-18's (they load a FANet-18 checkpoint with strict key matching) and "
        "which we followed. Only the paper's abstract could be read here: it reports 74.4% mIoU at 72 FPS "
        "and 75.5% mIoU at 58 FPS on Cityscapes on one Titan X, without saying which setting or backbone "
        "gives which (zh320's README attributes 74.4% test to FANet with ResNet-18), so no number is "
        "recorded. The paper's params and FLOPs could not be read either, so the card reports no params; "
        "for reference, ours is 13,080,147 (19 classes, without the 75,091-parameter auxiliary head). "
        "input_hw is Cityscapes' full resolution, which the abstract's 'high-resolution' suggests; not "
        "verified in the paper body."
    ),
)


@register_model(card=CARD)
def fanet(num_classes: int = 19, **kwargs) -> nn.Module:
    return FANet(num_classes=num_classes, **kwargs)
