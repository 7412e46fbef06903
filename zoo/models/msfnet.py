"""MSFNet (Si et al., "Real-Time Semantic Segmentation via Multiply Spatial Fusion Network", arXiv 1911.07217,
BMVC 2021).

A ResNet-18 trunk feeds a Multi-features Fusion Module (MFM): Spatial Aware Pooling (SAP) follows each
residual stage used (strides 8, 16, 32), average-pooling its output with stride s and kernel 2s+1 for s = 2,
4, ..., so that every stage contributes a feature map at each coarser resolution down to 1/256. Maps of equal
resolution from different stages (different receptive fields) are summed, and a top-down path fuses the
levels back to stride 8 (upsample, add, 3x3 conv). From the stride-8 features two parallel, independent
heads upsample straight to the input size: the segmentation head and, in training only, the Class Boundary
Supervision head (under `self.aux_heads`), whose loss the paper adds with a weight.

The authors released no code (the BMVC 2021 entry lists none; lxtGH/Fast_Seg has an empty MSFNet stub, and
its issue #13 notes that no implementation exists). The paper body could not be opened here: the design
above comes from the abstract, the BMVC entry and secondary summaries of the method section (SAP: stride s,
kernel 2s+1; the stride-4 stage is not used, as the network upsamples from stride 8; two parallel
upsampling heads, the boundary loss added with a weight). Everything below that they leave open is ours:
- Backbone: torchvision ResNet-18 (zoo.backbones.ResNetFeatures(18)); the summaries describe a residual
  backbone with a stride-4 first stage, which ResNet-18 matches, but its exact widths are not verified.
- Each used stage is first reduced by a 1x1 ConvBNReLU to 128 channels, so that maps of one resolution can
  be summed; pooling after the 1x1 conv is the cheaper order of two operations that commute up to BN/ReLU.
- The pyramid's depth: five halvings below stride 8 (to 1/256, the "5 times" of the summaries read as
  levels), each coarser stage pooled down to the same bottom level.
- Average pooling with count_include_pad=False (a true mean at the borders); padding s keeps sizes at
  ceil(n / s), so any input size works.
- Heads: 3x3 ConvBNReLU (128) + 1x1 classifier, bilinear upsampling to the input size. The boundary head
  predicts one map per class ("class boundary"); the paper's boundary target format is not verified.

Parity: unverified: no code, official or third-party, and no weights exist to compare with.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.backbones import ResNetFeatures
from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, SegHead, resize_to
from zoo.registry import register_model


class SpatialAwarePooling(nn.Module):
    """Average pools with stride s = 2, 4, ..., 2**levels and kernel 2s+1; returns [x, pooled...]."""

    def __init__(self, levels: int):
        super().__init__()
        self.pools = nn.ModuleList(
            nn.AvgPool2d(2 * s + 1, stride=s, padding=s, count_include_pad=False)
            for s in (2**j for j in range(1, levels + 1))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x] + [pool(x) for pool in self.pools]


class MultiFeaturesFusion(nn.Module):
    """MFM: per-stage 1x1 reduction and SAP, equal-resolution sums, then a top-down path to stride 8.

    `in_channels` are the stages at strides 8, 16, 32, ...; `levels` the number of halvings below stride 8.
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int = 128, levels: int = 5):
        super().__init__()
        self.levels = levels
        self.reduce = nn.ModuleList(ConvBNAct(c, channels, 1) for c in in_channels)
        # Stage i (stride 8 * 2**i) is pooled down to the bottom level, levels - i halvings.
        self.sap = nn.ModuleList(SpatialAwarePooling(levels - i) for i in range(len(in_channels)))
        self.fuse = nn.ModuleList(ConvBNAct(channels, channels, 3) for _ in range(levels + 1))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        pyramid: list[list[torch.Tensor]] = [[] for _ in range(self.levels + 1)]
        for i, (reduce, sap, f) in enumerate(zip(self.reduce, self.sap, feats, strict=True)):
            for j, pooled in enumerate(sap(reduce(f))):
                pyramid[i + j].append(pooled)
        out = None
        for level in reversed(range(self.levels + 1)):
            x = sum(pyramid[level][1:], pyramid[level][0])
            out = self.fuse[level](x if out is None else x + resize_to(out, x))
        return out


class MSFNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with aux heads,
    (logits, [class-boundary logits at H,W])."""

    def __init__(self, num_classes: int = 19, aux_heads: bool = True, channels: int = 128, levels: int = 5):
        super().__init__()
        self.backbone = ResNetFeatures(18)
        stage_channels = tuple(info["channels"] for info in self.backbone.feature_info[1:])
        self.mfm = MultiFeaturesFusion(stage_channels, channels, levels)
        self.head = SegHead(channels, channels, num_classes)
        self.aux_heads = nn.ModuleList([SegHead(channels, channels, num_classes)]) if aux_heads else None

    def forward(self, x: torch.Tensor):
        feats = self.mfm(self.backbone(x)[1:])  # the stride-4 stage is not used
        logits = resize_to(self.head(feats), x)
        if self.training and self.aux_heads is not None:
            return logits, [resize_to(head(feats), x) for head in self.aux_heads]
        return logits


_ABSTRACT_FPS_NOTE = (
    "Device, backend and precision are not in the abstract (the paper body could not be opened)."
)

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="Real-Time Semantic Segmentation via Multiply Spatial Fusion Network",
        venue="BMVC",
        year=2021,
        arxiv="1911.07217",
    ),
    official_code=None,
    implementation="segbench",
    num_classes=19,
    input_hw=(1024, 2048),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="miou",
            value=77.1,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="test",
        ),
        Reported(
            metric="fps",
            value=41.0,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            device="not stated in the abstract",
            note=_ABSTRACT_FPS_NOTE,
        ),
        Reported(
            metric="miou",
            value=75.4,
            source="paper abstract",
            dataset="CamVid",
            split="test",
            variant="the CamVid model (11 classes)",
        ),
        Reported(
            metric="fps",
            value=91.0,
            source="paper abstract",
            dataset="CamVid",
            device="not stated in the abstract",
            variant="the CamVid model (11 classes)",
            note="Input size not in the abstract. " + _ABSTRACT_FPS_NOTE,
        ),
    ),
    notes="The authors released no code (the BMVC 2021 entry, BritishMachineVisionAssociation/BMVC2021 "
    "conference/papers/paper_0678.md, lists none), so official_code is empty. Only the abstract could be "
    "verified: the paper body, with its architecture details, params, FLOPs and per-resolution speed "
    "tables, could not be opened here, so the card has no params or FLOPs figures and the architecture's "
    "open points are ours (module docstring). Our build: 12.33M params without the boundary head "
    "(12.48M with it).",
)


@register_model(card=CARD)
def msfnet(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    """MSFNet on ResNet-18. kwargs: channels (MFM width, 128), levels (halvings below stride 8, 5)."""
    return MSFNet(num_classes=num_classes, aux_heads=aux_heads, **kwargs)
