"""BiSeNet V2 (Yu et al., "BiSeNet V2: Bilateral Network with Guided Aggregation for Real-time Semantic
Segmentation", IJCV 2021, arXiv 2004.02147).

Two branches meet in a Bilateral Guided Aggregation (BGA) layer: a wide, shallow VGG-style Detail Branch
(64/64/128 channels, stride 8) and a narrow, deep Semantic Branch (lambda = 1/4: stem 16, gather-and-expansion
layers 32/64/128, context embedding; stride 32), per the paper's Table 1 and Figs. 4-6. A segmentation head
(3x3 ConvBNReLU to C_t channels, 1x1 conv, bilinear upsample; Fig. 7) predicts from the BGA output. Four
booster heads of the same form sit on the stem, S3, S4 and S5 (before CE) outputs, in training only.

The authors released no code. Reference implementations, read for what the paper leaves open:
CoinCheung/BiSeNet (lib/models/bisenetv2.py @ 6b4b67a) and open-mmlab/mmsegmentation
(mmseg/models/backbones/bisenetv2.py, configs/_base_/models/bisenetv2.py).

Choices and deviations:
- GE layer: the x6 expansion happens in the first 3x3 depthwise conv (channel multiplier 6), after a 3x3
  in->in "gather" conv, as in both references. (The paper's text can be read as the 3x3 conv expanding; no
  reference does that, and it would roughly double the parameters.)
- As the paper's figures draw them: no ReLU after the GE depthwise convs, a plain 3x3 conv (bias, no BN/ReLU)
  closing the CE block, and no ReLU after the BGA's final 3x3 conv+BN. Both references add these and mark
  them "not shown in paper". Only a few hundred parameters differ (conv bias vs BN affine).
- BGA upsampling is bilinear (paper; CoinCheung uses nearest). Every upsample resizes to an explicit size
  (`resize_to`) rather than a x4/x8 factor, so inputs whose sides are not multiples of 32 (CamVid 360x480)
  work: every stride-2 op has k=3, p=1, so both branches shrink by ceil(n/2) and meet at equal sizes.
- Main head C_t = 1024: the paper gives no value; both references use 1024. Booster heads use C_t = 128 in
  the paper's one-conv form (the references use two convs). No dropout (the references add Dropout(0.1),
  which is inactive at inference anyway).
- The model does not resize its input. The paper runs Cityscapes at 1024x512 (2048x1024 resized down,
  logits resized back up); the harness feeds that size (card input_hw).
- The BN after global pooling in the CE block (paper) needs batch size > 1 in training mode.

The reference's layers: `bisenetv2(reference_layers=True)` adds what CoinCheung/BiSeNet (and mmsegmentation)
add to the paper's figures: a ReLU after each GE layer's last depthwise conv, ConvBNReLU closing the CE
block, a ReLU after the BGA's 3x3 conv + BN, nearest upsampling in the BGA, and no bias in the BGA's two 1x1
convs (3,358,627 parameters without booster heads, the reference's count; 3,358,755 by default). The
default stays the paper's drawing. Official weights: `convert_official` (registered with the builder) maps
CoinCheung's released checkpoint onto that variant built with aux_heads=False, dropping its two-conv booster
heads (training only). Parity: tests/fixtures/parity/bisenetv2.json, recorded from CoinCheung's
lib/models/bisenetv2.py @ 6b4b67a, matches through `load_weights` with reference_layers=True; nothing
runnable builds the paper's drawing, so the default has no parity reference.
"""

from __future__ import annotations

import re
from functools import partial

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.evaluation import Recipe
from zoo.layers import ConvBNAct, SegHead, SeparableConvBNAct, resize_to
from zoo.layers.init import kaiming_init_
from zoo.registry import register_model


class StemBlock(nn.Module):
    """Fig. 4a: stride-4 stem, a strided conv path and a max-pool path concatenated, then fused."""

    def __init__(self, out_channels: int = 16):
        super().__init__()
        self.conv = ConvBNAct(3, out_channels, 3, stride=2)
        self.left = nn.Sequential(
            ConvBNAct(out_channels, out_channels // 2, 1),
            ConvBNAct(out_channels // 2, out_channels, 3, stride=2),
        )
        self.right = nn.MaxPool2d(3, stride=2, padding=1)
        self.fuse = ConvBNAct(2 * out_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.left(x), self.right(x)], dim=1))


class GELayer(nn.Module):
    """Fig. 5b/c: gather-and-expansion layer; stride 2 adds a second depthwise conv, separable shortcut."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expansion: int = 6,
        reference_layers: bool = False,
    ):
        super().__init__()
        mid = in_channels * expansion
        self.gather = ConvBNAct(in_channels, in_channels, 3)
        # A depthwise conv with channel multiplier `expansion` expands; linear (no ReLU) as in the paper.
        # The references put a ReLU after the last depthwise conv ("not shown in paper").
        last_act = nn.ReLU if reference_layers else None
        expand = [
            ConvBNAct(
                in_channels,
                mid,
                3,
                stride=stride,
                groups=in_channels,
                act_layer=None if stride > 1 else last_act,
            )
        ]
        if stride > 1:
            expand.append(ConvBNAct(mid, mid, 3, groups=mid, act_layer=last_act))
        self.expand = nn.Sequential(*expand)
        self.project = ConvBNAct(mid, out_channels, 1, act_layer=None)
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = SeparableConvBNAct(
                in_channels, out_channels, 3, stride=stride, dw_act_layer=None, act_layer=None
            )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.project(self.expand(self.gather(x))) + self.shortcut(x))


class CEBlock(nn.Module):
    """Fig. 4b: global average pool -> BN -> 1x1 ConvBNReLU, broadcast-added to the input, then a 3x3 conv."""

    def __init__(self, channels: int = 128, reference_layers: bool = False):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bn = nn.BatchNorm2d(channels)
        self.conv_gap = ConvBNAct(channels, channels, 1)
        # A plain conv as drawn in the paper (the references use ConvBNReLU).
        self.conv_last = (
            ConvBNAct(channels, channels, 3)
            if reference_layers
            else ConvBNAct(channels, channels, 3, norm_layer=None, act_layer=None)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_last(x + self.conv_gap(self.bn(self.pool(x))))


class SemanticBranch(nn.Module):
    """Table 1, Semantic Branch; returns every stage output (the booster heads tap the first four)."""

    def __init__(
        self,
        channels: tuple[int, int, int, int] = (16, 32, 64, 128),
        expansion: int = 6,
        reference_layers: bool = False,
    ):
        super().__init__()
        c1, c3, c4, c5 = channels
        ge = partial(GELayer, expansion=expansion, reference_layers=reference_layers)
        self.stem = StemBlock(c1)
        self.s3 = nn.Sequential(ge(c1, c3, 2), ge(c3, c3, 1))
        self.s4 = nn.Sequential(ge(c3, c4, 2), ge(c4, c4, 1))
        self.s5 = nn.Sequential(ge(c4, c5, 2), *(ge(c5, c5, 1) for _ in range(3)))
        self.ce = CEBlock(c5, reference_layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f2 = self.stem(x)
        f3 = self.s3(f2)
        f4 = self.s4(f3)
        f5 = self.s5(f4)
        return [f2, f3, f4, f5, self.ce(f5)]


def _detail_branch(channels: tuple[int, int, int] = (64, 64, 128)) -> nn.Sequential:
    """Table 1, Detail Branch: three stages of 3x3 ConvBNReLU (2, 3, 3 layers), each opening with stride 2."""
    c1, c2, c3 = channels
    return nn.Sequential(
        nn.Sequential(ConvBNAct(3, c1, 3, stride=2), ConvBNAct(c1, c1, 3)),
        nn.Sequential(ConvBNAct(c1, c2, 3, stride=2), ConvBNAct(c2, c2, 3), ConvBNAct(c2, c2, 3)),
        nn.Sequential(ConvBNAct(c2, c3, 3, stride=2), ConvBNAct(c3, c3, 3), ConvBNAct(c3, c3, 3)),
    )


class BGALayer(nn.Module):
    """Fig. 6: each branch gates the other (sigmoid) at its own scale; the two results are summed."""

    def __init__(self, channels: int = 128, reference_layers: bool = False):
        super().__init__()
        c = channels
        # The references upsample the semantic gates with nearest (the paper's Fig. 6 says bilinear).
        self.up_mode = "nearest" if reference_layers else "bilinear"
        # 3x3 depthwise + BN, then a 1x1 conv without BN (as drawn in Fig. 6).
        # The references' 1x1 convs here have no bias.
        pointwise = partial(ConvBNAct, c, c, 1, norm_layer=None, act_layer=None, bias=not reference_layers)
        self.detail_keep = nn.Sequential(ConvBNAct(c, c, 3, groups=c, act_layer=None), pointwise())
        self.detail_down = nn.Sequential(
            ConvBNAct(c, c, 3, stride=2, act_layer=None), nn.AvgPool2d(3, stride=2, padding=1)
        )
        self.semantic_keep = nn.Sequential(ConvBNAct(c, c, 3, groups=c, act_layer=None), pointwise())
        self.semantic_up = ConvBNAct(c, c, 3, act_layer=None)
        # No ReLU in Fig. 6 (the seg head's conv follows); the references add one ("not shown in paper").
        self.fuse = ConvBNAct(c, c, 3, act_layer=nn.ReLU if reference_layers else None)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        up = self.up_mode
        high = self.detail_keep(detail) * torch.sigmoid(resize_to(self.semantic_up(semantic), detail, up))
        low = self.detail_down(detail) * torch.sigmoid(self.semantic_keep(semantic))
        return self.fuse(high + resize_to(low, detail, up))


class BiSeNetV2(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with booster heads,
    (logits, [aux logits at stride 4, 8, 16, 32 sources, each upsampled to H,W])."""

    def __init__(
        self,
        num_classes: int = 19,
        aux_heads: bool = True,
        head_channels: int = 1024,
        aux_head_channels: int = 128,
        reference_layers: bool = False,
    ):
        super().__init__()
        self.detail = _detail_branch()
        self.semantic = SemanticBranch(reference_layers=reference_layers)
        self.bga = BGALayer(128, reference_layers)
        self.head = SegHead(128, head_channels, num_classes)
        self.aux_heads = (
            nn.ModuleList(SegHead(c, aux_head_channels, num_classes) for c in (16, 32, 64, 128))
            if aux_heads
            else None
        )
        kaiming_init_(self)  # the paper trains from scratch

    def forward(self, x: torch.Tensor):
        feats = self.semantic(x)
        logits = resize_to(self.head(self.bga(self.detail(x), feats[-1])), x)
        if self.training and self.aux_heads is not None:
            return logits, [resize_to(head(f), x) for head, f in zip(self.aux_heads, feats[:-1], strict=True)]
        return logits


_CITYSCAPES_SS = "single-scale at 1024x512 (2048x1024 resized down, logits resized back), no flip"

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="BiSeNet V2: Bilateral Network with Guided Aggregation for Real-time Semantic Segmentation",
        venue="IJCV",
        year=2021,
        arxiv="2004.02147",
    ),
    official_code="https://github.com/CoinCheung/BiSeNet",
    implementation="segbench",
    num_classes=19,
    input_hw=(512, 1024),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="params",
            value=3.359,
            source="CoinCheung/BiSeNet@6b4b67a8e3eb0cc23b3d7a94843a7c3c11dedca8:lib/models/bisenetv2.py",
            variant="the reference implementation's layers (bisenetv2 with reference_layers=True)",
            note="Not a paper number: the paper gives no params figure. Count of the reference "
            "implementation, 3,358,627, built with aux_mode='eval' (no booster heads) and 19 classes; "
            "ours with reference_layers=True has exactly that, the default (the paper's drawing) 128 more.",
        ),
        Reported(
            metric="flops",
            value=21.15,
            source="paper Table 7",
            input_hw=(512, 1024),
            dataset="Cityscapes",
            convention="multiply-adds",
            note="GFLOPs column of the Cityscapes comparison (2048x1024 resized to 1024x512 in the model). "
            "The paper does not define GFLOPs; multiply-adds is inferred: the Detail Branch alone is 11.7 G "
            "multiply-adds at 512x1024, so 21.15 cannot be 2 x multiply-adds.",
        ),
        Reported(
            metric="fps",
            value=156.0,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            device="GTX 1080 Ti",
            backend="TensorRT 5.1.5 (CUDA 9.0, cuDNN 7.0)",
            precision="fp32",
            note="The network runs at 1024x512; both resizes are inside the timing. Backend, precision and "
            "protocol come from the paper's Sec. 5 (inference speed), not the abstract.",
        ),
        Reported(
            metric="miou",
            value=72.6,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="test",
            protocol=_CITYSCAPES_SS,
        ),
        Reported(
            metric="miou",
            value=73.4,
            source="paper Table 7",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="val",
            protocol=_CITYSCAPES_SS,
        ),
    ),
    notes="The authors released no code; official_code is the reference re-implementation relied on "
    "(mmsegmentation's follows it). Params: the paper reports none, so the card carries the reference "
    "implementation's count, which excludes the booster heads; compare with aux_heads=False. "
    "FLOPs: our model measures about 24.7 G multiply-adds (fvcore) at 512x1024 against the paper's 21.15; "
    "9.7 G of ours is the main head's 3x3 conv to C_t=1024 channels, a width the paper does not give "
    "(both references use 1024). Sources: the abstract's numbers (72.6 test, 156 FPS, GTX 1080 Ti, "
    "2048x1024) were checked directly; the PDF could not be opened here, so the Table 7 label, the 21.15 "
    "GFLOPs, the 73.4 val and the Sec. 5 protocol come from secondary readings of the paper (an issue "
    "quoting the paper's 21.15 GFLOPs, MaybeShewill-CV/bisenetv2-tensorflow#24, and a secondary results "
    "table). "
    "Left out for lack of a verifiable source: CamVid and COCO-Stuff results, and BiSeNetV2-Large.",
)


_CONV_BN = ("conv", "bn")  # index in an official (conv, bn[, ...]) Sequential -> our ConvBNAct attribute
_RULES = (  # CoinCheung/BiSeNet lib/models/bisenetv2.py names -> ours; first match wins
    (r"^detail\.S([123])\.", lambda m: f"detail.{int(m[1]) - 1}."),
    (r"^segment\.S1S2\.", "semantic.stem."),
    (r"^segment\.S([34])\.", r"semantic.s\1."),
    (r"^segment\.S5_4\.", "semantic.s5."),
    (r"^segment\.S5_5\.", "semantic.ce."),
    (r"^bga\.left1\.([01])\.", lambda m: f"bga.detail_keep.0.{_CONV_BN[int(m[1])]}."),
    (r"^bga\.left1\.2\.", "bga.detail_keep.1.conv."),
    (r"^bga\.left2\.([01])\.", lambda m: f"bga.detail_down.0.{_CONV_BN[int(m[1])]}."),
    (r"^bga\.right1\.([01])\.", lambda m: f"bga.semantic_up.{_CONV_BN[int(m[1])]}."),
    (r"^bga\.right2\.([01])\.", lambda m: f"bga.semantic_keep.0.{_CONV_BN[int(m[1])]}."),
    (r"^bga\.right2\.2\.", "bga.semantic_keep.1.conv."),
    (r"^bga\.conv\.([01])\.", lambda m: f"bga.fuse.{_CONV_BN[int(m[1])]}."),
    (r"^head\.conv_out\.1\.", "head.cls."),
)
_GE_RULES = (  # inside a GE layer
    (r"\.conv1\.", ".gather."),
    (r"\.dwconv1?\.([01])\.", lambda m: f".expand.0.{_CONV_BN[int(m[1])]}."),
    (r"\.dwconv2\.([01])\.", lambda m: f".expand.1.{_CONV_BN[int(m[1])]}."),
    (r"\.conv2\.([01])\.", lambda m: f".project.{_CONV_BN[int(m[1])]}."),
    (
        r"\.shortcut\.(\d)\.",
        lambda m: f".shortcut.{('depthwise', 'pointwise')[int(m[1]) // 2]}.{_CONV_BN[int(m[1]) % 2]}.",
    ),
)


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CoinCheung/BiSeNet BiSeNetV2 checkpoint (model_final_v2_city.pth) -> ours, for the model built with
    reference_layers=True and aux_heads=False. Its booster heads (aux2, aux3, aux4, aux5_4: training only,
    two convs each where ours have the paper's one) are dropped."""
    out = {}
    for key, value in state.items():
        if key.startswith("aux"):
            continue
        for pattern, repl in _RULES:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        if re.match(r"semantic\.s\d\.", key):
            for pattern, repl in _GE_RULES:
                key, n = re.subn(pattern, repl, key)
                if n:
                    break
        out[key] = value
    return out


# Yu et al. 2021 (BiSeNetV2), Sec. 4.1: SGD lr 0.05, wd 5e-4, poly 0.9, OHEM, crop 1024x2048 -> 512x1024
# Cityscapes, batch 16, booster heads (weight 1 each).
RECIPE = Recipe(
    optimizer="sgd",
    lr=0.05,
    weight_decay=5e-4,
    batch_size=16,
    crop_hw=(512, 1024),
    scale_range=(0.25, 2.0),
    ohem_thresh=0.7,
    aux_weight=1.0,
    source="BiSeNetV2 paper Sec. 4.1",
)


@register_model(card=CARD, converter=convert_official, recipe=RECIPE)
def bisenetv2(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    """BiSeNet V2 (lambda = 1/4, expansion 6). kwargs: head_channels (C_t, 1024), aux_head_channels (128)."""
    return BiSeNetV2(num_classes=num_classes, aux_heads=aux_heads, **kwargs)
