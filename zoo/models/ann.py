"""ANN: Zhu, Xu, Bai, Huang, Bai, "Asymmetric Non-local Neural Networks for Semantic Segmentation", ICCV 2019,
arXiv 1908.07678.

Official code: https://github.com/MendelXu/ANN @ f4eabeb, models/seg/nets/annn.py, models/seg/utils/afnb.py
and apnb.py, models/backbones/resnet/, hypes/seg/cityscapes/fs_annn_cityscapes_seg.json.

Both blocks are non-local blocks whose keys and values are pyramid-sampled: adaptive average pooling to
1x1, 3x3, 6x6 and 8x8 bins gives S = 110 anchor positions, so the affinity is HW x 110 instead of HW x HW.
- AFNB (asymmetric fusion): queries from layer4 (2048 ch), keys and values from layer3 (1024 ch); 1x1 convs
  to 256-d keys/queries (+BN+ReLU) and 256-d values; context = softmax(q k^T / sqrt(256)) v, a 1x1 conv W
  (zero-initialised) back to 2048; concat with layer4 -> 1x1 conv + BN (no ReLU) -> dropout 0.05.
- then a 3x3 conv + BN + ReLU 2048 -> 512, and APNB (asymmetric pyramid): the same self-attention on the
  512-ch map, its query and key sharing one 1x1 conv (official), W back to 512, concat with the input
  -> 1x1 conv + BN + ReLU 512 -> dropout 0.05 -> 1x1 classifier -> bilinear upsample to the input size.
- training-only deep supervision on layer3 (official `dsn`: 3x3 conv 1024 -> 512 + BN + ReLU, dropout 0.05,
  1x1 classifier; loss weight 0.4), under `aux_heads`.
Trunk (official "deepbase_resnet101_dilated8", multi_grid [1, 1, 1]): ResNet with the three-conv deep stem
(3 -> 64 -> 64 -> 128, `deep_stem=True`), max pooling with ceil_mode=True, dilated to output stride 8 with
layer4's first unit at rate 2 and the rest at 4, as torchvision dilates it. The attention products are
torch.matmul, so fvcore counts them. The frame is `zoo.models.dilated`, with its own forward: ANN needs layer3
and layer4, and the official auxiliary head is wider (512) than the frame's.

Deviations and why:
- APNB's query and key are one shared conv applied to the same input: we compute it once; the official
  forward computes it twice (same result, one 512 -> 256 1x1 conv at 1/8 resolution less: about 1 GMAC at
  512x1024).
- The final dropout (official: inside APNB's last conv block) is the frame's dropout before the classifier:
  the same op in the same place.
- The auxiliary head's 3x3 conv has no bias before its BN (official has one; the converter folds it into
  the BN's running mean).
- Upsampling uses align_corners=True, as the official code. `convert_official` maps official checkpoints
  of either depth; parity with the official code is tested (tests/fixtures/parity/ann_r*.json).
- The official input is BGR in 0-255 minus the mean (102.98, 115.95, 122.77), std 1 (the hypes file):
  preprocessing, not model, but official checkpoints expect it.
- `ann_r50` is the same network on ResNet-50; the paper and official scripts use ResNet-101 only.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, SegHead
from zoo.models.dilated import DilatedResNetSegmenter
from zoo.registry import register_model
from zoo.weights import add_bn_counters

PYRAMID_BINS = (1, 3, 6, 8)


def pyramid_sample(x: torch.Tensor, bins: tuple[int, ...] = PYRAMID_BINS) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, S] with S = sum(b * b): adaptive average pooling to each bin size, flattened."""
    return torch.cat([nn.functional.adaptive_avg_pool2d(x, b).flatten(2) for b in bins], dim=2)


class PyramidAttention(nn.Module):
    """Non-local attention of every query position over pyramid-sampled keys and values (no residual).

    forward(query_feats[N, Cq, h, w], kv_feats[N, Ckv, H', W']) -> [N, out_channels, h, w]. With
    `shared_query_key`, the query and key transforms are one conv (APNB), and kv_feats must be query_feats.
    Attribute names are the official `_SelfAttentionBlock`'s.
    """

    def __init__(
        self,
        query_channels: int,
        kv_channels: int,
        out_channels: int,
        key_channels: int = 256,
        value_channels: int = 256,
        shared_query_key: bool = False,
        bins: tuple[int, ...] = PYRAMID_BINS,
    ):
        super().__init__()
        self.bins = bins
        self.shared_query_key = shared_query_key
        self.f_key = ConvBNAct(kv_channels, key_channels, 1, bias=True)
        self.f_query = (
            self.f_key if shared_query_key else ConvBNAct(query_channels, key_channels, 1, bias=True)
        )
        self.f_value = nn.Conv2d(kv_channels, value_channels, 1)
        self.W = nn.Conv2d(value_channels, out_channels, 1)
        nn.init.zeros_(self.W.weight)  # official: the block starts by adding nothing
        nn.init.zeros_(self.W.bias)
        self.scale = key_channels**-0.5

    def forward(self, query_feats: torch.Tensor, kv_feats: torch.Tensor) -> torch.Tensor:
        n, _, h, w = query_feats.shape
        query_map = self.f_query(query_feats)
        key_map = query_map if self.shared_query_key else self.f_key(kv_feats)
        query = query_map.flatten(2).transpose(1, 2)  # [N, hw, Ck]
        key = pyramid_sample(key_map, self.bins)  # [N, Ck, S]
        value = pyramid_sample(self.f_value(kv_feats), self.bins).transpose(1, 2)  # [N, S, Cv]
        affinity = torch.softmax(torch.matmul(query, key) * self.scale, dim=-1)  # [N, hw, S]
        context = torch.matmul(affinity, value).transpose(1, 2).reshape(n, -1, h, w)
        return self.W(context)


class AFNB(nn.Module):
    """Asymmetric fusion non-local block.

    forward(low[N, 1024, h, w], high[N, 2048, h, w]) -> [N, 2048, h, w].
    """

    def __init__(self, low_channels: int = 1024, high_channels: int = 2048, dropout: float = 0.05):
        super().__init__()
        self.attention = PyramidAttention(high_channels, low_channels, high_channels)
        # No ReLU after this BN in the official AFNB (APNB has one).
        self.fuse = ConvBNAct(2 * high_channels, high_channels, 1, act_layer=None, bias=True)
        self.drop = nn.Dropout2d(dropout)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fuse(torch.cat([self.attention(high, low), high], dim=1)))


class APNB(nn.Module):
    """Asymmetric pyramid non-local block: forward(x[N, C, h, w]) -> [N, C, h, w]. Its closing dropout is the
    frame's, before the classifier."""

    def __init__(self, channels: int = 512):
        super().__init__()
        self.attention = PyramidAttention(channels, channels, channels, shared_query_key=True)
        self.fuse = ConvBNAct(2 * channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.attention(x, x), x], dim=1))


class ANNHead(nn.Module):
    """forward(c4[N, 1024, h, w], c5[N, 2048, h, w]) -> [N, 512, h, w]: AFNB -> 3x3 conv -> APNB."""

    def __init__(self, channels: int = 512):
        super().__init__()
        self.fusion = AFNB(1024, 2048)
        self.bottleneck = ConvBNAct(2048, channels, 3, bias=True)
        self.context = APNB(channels)

    def forward(self, c4: torch.Tensor, c5: torch.Tensor) -> torch.Tensor:
        return self.context(self.bottleneck(self.fusion(c4, c5)))


class ANN(DilatedResNetSegmenter):
    """Dilated deep-stem ResNet -> ANNHead on (layer3, layer4) -> dropout 0.05 + 1x1 classifier -> upsample.

    forward(x[N, 3, H, W]) -> logits[N, num_classes, H, W] in eval; (logits, [aux logits]) in train mode with
    aux heads.
    """

    def __init__(self, num_classes: int = 19, depth: int = 101, aux_heads: bool = True):
        super().__init__(
            ANNHead(512),
            512,
            num_classes,
            depth=depth,
            deep_stem=True,
            dropout=0.05,
            aux_heads=False,
            align_corners=True,  # the official final upsampling
        )
        self.backbone.maxpool.ceil_mode = True  # the official trunk's
        self.aux_heads = nn.ModuleList([SegHead(1024, 512, num_classes, dropout=0.05)]) if aux_heads else None

    def forward(self, x: torch.Tensor):
        _, _, c4, c5 = self.backbone(x)
        logits = self.upsample(self.classifier(self.head(c4, c5)), x)
        if self.training and self.aux_heads is not None:
            return logits, [self.upsample(self.aux_heads[0](c4), x)]
        return logits


_OFFICIAL = "MendelXu/ANN@f4eabeb27dbba5c9bdcf83d03776bffa34995666"
_CS = "Cityscapes"


def _card(depth: int, params: float, params_note: str, reported: tuple[Reported, ...] = ()) -> ModelCard:
    return ModelCard(
        group="semantic",
        paper=Paper(
            title="Asymmetric Non-local Neural Networks for Semantic Segmentation",
            venue="ICCV",
            year=2019,
            arxiv="1908.07678",
        ),
        official_code="https://github.com/MendelXu/ANN",
        implementation=f"segbench (torchvision 0.29 ResNet-{depth} trunk with deep stem, output stride 8)",
        num_classes=19,
        input_hw=(1024, 2048),  # official Cityscapes val: whole 1024x2048 image (hypes "val" input_size)
        reported=(
            Reported("params", params, source=f"{_OFFICIAL}:models/seg/nets/annn.py", note=params_note),
            *reported,
        ),
        notes=(
            "Neither the paper nor the official code states a parameter count; the params figure is our "
            "count of the official model definition, built with plain BatchNorm and without the "
            "training-only dsn head (4,729,875 parameters). The paper reports no model FLOPs (its "
            "efficiency figures, e.g. the abstract's APNB vs non-local speed and memory at a 256x128 "
            "input, are for single blocks), so none are recorded. The paper's ablation tables were not "
            "read (full text not available here): only numbers verified in the abstract and the "
            "official README are recorded."
        ),
    )


_R101_RESULTS = (
    Reported(
        "miou",
        81.3,
        source="paper abstract",
        input_hw=(1024, 2048),
        dataset=_CS,
        split="test",
        protocol="ms (0.75, 1, 1.25) + flip, sliding 864x864 crops",
        note=(
            "The official README's Table 1 says multi-scale testing; the scales, flip and crops are the "
            "official test config (hypes/seg/cityscapes/fs_annn_cityscapes_seg_test.json, mscrop_test). "
            "Trained on train + val fine (official script, --include_val y), OHEM loss."
        ),
        variant="trained on train + val fine",
    ),
    Reported(
        "miou",
        79.9,
        source=f"{_OFFICIAL}:README.md",
        input_hw=(1024, 2048),
        dataset=_CS,
        split="val",
        protocol="single-scale, whole image, no flip",
        note=(
            "The README's evaluation output of the released checkpoint (Score Average 0.799), trained on "
            "train fine with OHEM loss (run_fs_annn_cityscapes_seg.sh, ss_test)."
        ),
    ),
)


# Official key -> ours, first match wins. The official state_dict lists APNB's shared conv under both
# f_key and f_query, as ours does.
_RULES = [
    (r"^backbone\.prefix\.conv(\d)\.", lambda m: f"backbone.conv1.{3 * (int(m[1]) - 1)}."),
    (r"^backbone\.prefix\.bn([12])\.", lambda m: f"backbone.conv1.{3 * int(m[1]) - 2}."),
    (r"^backbone\.prefix\.bn3\.", "backbone.bn1."),
    (r"^fusion\.stages\.0\.", "head.fusion.attention."),
    (r"^fusion\.conv_bn_dropout\.0\.", "head.fusion.fuse.conv."),
    (r"^fusion\.conv_bn_dropout\.1\.", "head.fusion.fuse.bn."),
    (r"^context\.0\.", "head.bottleneck.conv."),
    (r"^context\.1\.0\.", "head.bottleneck.bn."),
    (r"^context\.2\.stages\.0\.", "head.context.attention."),
    (r"^context\.2\.conv_bn_dropout\.0\.", "head.context.fuse.conv."),
    (r"^context\.2\.conv_bn_dropout\.1\.0\.", "head.context.fuse.bn."),
    (r"^cls\.", "classifier.1."),
    (r"^dsn\.0\.", "aux_heads.0.conv.conv."),
    (r"^dsn\.1\.0\.", "aux_heads.0.conv.bn."),
    (r"^dsn\.3\.", "aux_heads.0.cls."),
    (r"\.(f_key|f_query)\.0\.", r".\1.conv."),
    (r"\.(f_key|f_query)\.1\.0\.", r".\1.bn."),
]


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an official MendelXu/ANN checkpoint (deepbase ResNet-101, or its ResNet-50 option) onto ours."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _RULES[:-2]:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        for pattern, repl in _RULES[-2:]:  # inside the attention blocks
            key = re.sub(pattern, repl, key)
        out[key] = value
    bias = out.pop("aux_heads.0.conv.conv.bias", None)
    if bias is not None:  # a conv bias before BN is a shift of the BN's input: fold it into the mean
        out["aux_heads.0.conv.bn.running_mean"] = out["aux_heads.0.conv.bn.running_mean"] - bias
    return add_bn_counters(out)  # older BN implementations lack the counter


@register_model(
    card=_card(
        50,
        43.972307,
        "43,972,307: the official definition with its deepbase_resnet50_dilated8 backbone option (the paper "
        "and official scripts use ResNet-101 only), without the dsn head.",
    ),
    converter=convert_official,
)
def ann_r50(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return ANN(num_classes, depth=50, aux_heads=aux_heads, **kwargs)


@register_model(
    card=_card(
        101,
        62.964435,
        "62,964,435: the official definition as its Cityscapes config builds it "
        "(deepbase_resnet101_dilated8), without the dsn head.",
        _R101_RESULTS,
    ),
    converter=convert_official,
)
def ann_r101(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return ANN(num_classes, depth=101, aux_heads=aux_heads, **kwargs)
