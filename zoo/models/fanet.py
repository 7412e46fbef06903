"""FANet with a ResNet-18 encoder (FANet-18): Hu, Perazzi, Caba Heilbron, Wang, Lin, Saenko, Sclaroff,
"Real-time Semantic Segmentation with Fast Attention", IEEE RA-L 2020, arXiv 2007.03815.

The authors released no FANet repository. Reference implementation used: the FANet-18 modules that the
first author released inside TDNet (feinanshan/TDNet @ 342f434b5d7121297b35c5ede2e82e379ff5b1e5,
Training/ptsemseg/models/td2_fanet/td2_fa.py: `FAModule`, `FPNOutput`; .../td2_fanet/resnet.py; TDNet's
README: "td2_fa18: takes two FANet-18 as subnetworks", whose weights load from a FANet-18 checkpoint with
strict key matching, so these modules are FANet-18's). Also read: zh320/realtime-semantic-segmentation-pytorch
@ c77b1b697188445c26ef126ff112042c78f4e196, models/fanet.py (a third-party version; see below).

Architecture (reference code, which this builds exactly):
- Encoder: the reference's ResNet-18 whose layer1 also strides by 2 (the paper's "additional spatial
  reduction" of the intermediate stages), so the four stages run at strides 8, 16, 32, 64. Its BN layers
  are BN-activations (Encoding's SyncBatchNorm, InPlace-ABN style): leaky ReLU (slope 0.01) after the stem
  BN and after each unit's first BN; none after the second BN or the shortcut BN; ReLU after the residual
  sum. Attribute names are torchvision's, so ImageNet ResNet-18 weights load by key, as the reference
  initialises.
- Fast attention on every stage (C channels): query and key 1x1 conv-BN to 32 channels (no activation),
  value 1x1 conv-BN-leakyReLU (C), each of Q and K L2-normalised over channels (cosine similarity replaces
  the softmax), and y = Q^ (K^T V) computed right to left, so the cost is linear in the number of pixels n
  (O(n * 32 * C)) instead of quadratic; then a 1x1 conv-BN-leakyReLU and a residual sum with the input.
  There is no 1/n: the output scale grows with the input size, as in the reference.
- Top-down fusion: stage 4's attended map goes through a 1x1 conv-BN-leakyReLU to C/2 (`up`) with
  padding 1 (as in the reference: the map grows by one pixel per side before the resize), is upsampled and
  added to stage 3's; likewise down to stage 1. Stages 3 and 1 (strides 32 and 8) are each smoothed by a
  3x3 conv-BN-leakyReLU to 128 channels; the stride-32 map is upsampled and concatenated with the stride-8
  one (256 channels), and the head (3x3 conv-BN-leakyReLU 256 + 1x1 conv without bias) predicts at stride 8,
  upsampled to the input size. An auxiliary head (3x3 conv-BN-leakyReLU 64 + 1x1 conv) on the stride-32
  smoothed map is training-only (`aux_heads`). Every resize is bilinear with align_corners=True.

Not built: the reference also creates `smooth` convs for stages 4 and 2 and an `up` conv for stage 1 that its
forward never runs (739,904 parameters that cannot affect the output); `convert_official` drops them.

Until parity was tested, this model divided the attention by n, used padding 0 in `up`, ReLU for every
activation, align_corners=False and classifier biases. zh320's version differs more (3x3 Q/K/V convs to 32
channels, the residual taken from V, a transposed-conv upsampling path, all four stages concatenated).

Official weights: `convert_official` (registered with the builder) maps the FANet-18 checkpoint that TDNet
distributes (fa18.pkl, loaded there through split_fanet_dict) onto our keys. Parity:
tests/fixtures/parity/fanet.json, recorded from TDNet's FANet-18 modules at the commit above (see its
`how` for how the subnetwork was assembled and the BN-activation shimmed), matches through `load_weights`.
"""

from __future__ import annotations

import re
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from zoo.card import ModelCard, Paper
from zoo.layers import ConvBNAct
from zoo.registry import register_model

# InPlace-ABN's / Encoding's BN-activation: leaky ReLU, slope 0.01 (the reference's 'leaky_relu').
_Leaky = partial(nn.LeakyReLU, 0.01)


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(
        x, size=tuple(size), mode="bilinear", align_corners=True
    )  # the reference's up_kwargs


class BasicBlock(nn.Module):
    """The reference's ResNet unit: conv-BN-leakyReLU, conv-BN, plus the shortcut, then ReLU. Attribute
    names are torchvision's, so torchvision ResNet-18 weights load by key (as the reference initialises)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = _Leaky()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))) + shortcut)


class Encoder(nn.Module):
    """The reference's ResNet-18: 7x7 stem conv-BN-leakyReLU, 3x3 max-pool, four stages of two units, each
    opening with stride 2 (layer1 too: the paper's extra spatial reduction) -> strides 8, 16, 32, 64."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), depth: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act1 = _Leaky()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_channels = 64
        for i, width in enumerate(widths, start=1):
            units = [BasicBlock(in_channels, width, 2)] + [BasicBlock(width, width) for _ in range(depth - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*units))
            in_channels = width
        self.feature_info = [{"channels": w, "reduction": 2 ** (i + 3)} for i, w in enumerate(widths)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        feats = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            feats.append(x)
        return feats


class FastAttention(nn.Module):
    """Fast (cosine-similarity) self-attention, linear in the number of pixels, with a residual sum."""

    def __init__(self, channels: int, qk_channels: int = 32):
        super().__init__()
        self.query = ConvBNAct(channels, qk_channels, 1, act_layer=None)
        self.key = ConvBNAct(channels, qk_channels, 1, act_layer=None)
        self.value = ConvBNAct(channels, channels, 1, act_layer=_Leaky)
        self.out = ConvBNAct(channels, channels, 1, act_layer=_Leaky)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = F.normalize(self.query(x).flatten(2), dim=1)  # (N, c', n)
        k = F.normalize(self.key(x).flatten(2), dim=1)  # (N, c', n)
        v = self.value(x).flatten(2)  # (N, C, n)
        context = torch.matmul(k, v.transpose(1, 2))  # K^T V first: (N, c', C); no 1/n, as the reference
        y = torch.matmul(context.transpose(1, 2), q)  # (N, C, n)
        return x + self.out(y.reshape(x.shape))


class Head(nn.Sequential):
    """The reference's FPNOutput: 3x3 conv-BN-leakyReLU, then a 1x1 classifier without bias."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.conv = ConvBNAct(in_channels, mid_channels, 3, act_layer=_Leaky)
        self.cls = nn.Conv2d(mid_channels, num_classes, 1, bias=False)


class FANet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with the auxiliary head,
    (logits, [aux logits from the stride-32 map, upsampled to H, W])."""

    def __init__(
        self,
        num_classes: int = 19,
        qk_channels: int = 32,
        smooth_channels: int = 128,
        head_channels: int = 256,
        aux_heads: bool = True,
        aux_head_channels: int = 64,
    ):
        super().__init__()
        self.backbone = Encoder()
        chs = [info["channels"] for info in self.backbone.feature_info]  # 64, 128, 256, 512
        self.attention = nn.ModuleList(FastAttention(c, qk_channels) for c in chs)
        # up[i] carries stage i+1's fused map down to stage i's width (C/2 of stage i+1). The reference's
        # 1x1 conv has padding 1, so its output is one pixel larger on each side before the resize.
        self.up = nn.ModuleList(ConvBNAct(c, c // 2, 1, act_layer=_Leaky) for c in chs[1:])
        for up in self.up:
            up.conv.padding = (1, 1)
        self.smooth1 = ConvBNAct(chs[0], smooth_channels, 3, act_layer=_Leaky)
        self.smooth3 = ConvBNAct(chs[2], smooth_channels, 3, act_layer=_Leaky)
        self.head = Head(2 * smooth_channels, head_channels, num_classes)
        self.aux_heads = (
            nn.ModuleList([Head(smooth_channels, aux_head_channels, num_classes)]) if aux_heads else None
        )

    def forward(self, x: torch.Tensor):
        c1, c2, c3, c4 = self.backbone(x)
        p4 = self.attention[3](c4)
        p3 = self.attention[2](c3) + _resize(self.up[2](p4), c3.shape[-2:])
        p2 = self.attention[1](c2) + _resize(self.up[1](p3), c2.shape[-2:])
        p1 = self.attention[0](c1) + _resize(self.up[0](p2), c1.shape[-2:])
        s3, s1 = self.smooth3(p3), self.smooth1(p1)
        logits = _resize(self.head(torch.cat([_resize(s3, s1.shape[-2:]), s1], dim=1)), x.shape[-2:])
        if self.training and self.aux_heads is not None:
            return logits, [_resize(self.aux_heads[0](s3), x.shape[-2:])]
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
    implementation="segbench",
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
        "for reference, ours is 13,080,128 (19 classes, without the 75,072-parameter auxiliary head). "
        "input_hw is Cityscapes' full resolution, which the abstract's 'high-resolution' suggests; not "
        "verified in the paper body."
    ),
)


# The FANet-18 checkpoint's layout (TDNet's split_fanet_dict): resnet, ffm_32/16/8/4 (one FAModule per
# stage, deepest first), clslayer_8 (the head), clslayer_32 (the aux head).
_STAGE = {"ffm_4": 0, "ffm_8": 1, "ffm_16": 2, "ffm_32": 3}
_FA_PARTS = {"w_qs": "query", "w_ks": "key", "w_vs": "value", "latlayer3": "out"}
# Built by the reference but never run by its forward: the smooth convs of stages 4 and 2, stage 1's up conv.
_UNUSED = ("ffm_32.smooth.", "ffm_8.smooth.", "ffm_4.up.")


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The first author's FANet-18 checkpoint (TDNet's pretrained fa18.pkl, read by its split_fanet_dict)
    -> ours. Its never-run convs are dropped; BN-activation modules (InPlace-ABN / Encoding SyncBatchNorm)
    hold BatchNorm's tensors under the same names."""
    out = {}
    for key, value in state.items():
        if key.startswith(_UNUSED):
            continue
        head, _, rest = key.partition(".")
        if head == "resnet":
            key = "backbone." + rest
        elif head in _STAGE:
            stage = _STAGE[head]
            part, _, leaf = rest.partition(".")
            if part in _FA_PARTS:
                key = f"attention.{stage}.{_FA_PARTS[part]}.{leaf}"
            elif part == "up":
                key = f"up.{stage - 1}.{leaf}"
            else:  # smooth
                key = f"smooth{stage + 1}.{leaf}"
        elif head in ("clslayer_8", "clslayer_32"):
            key = ("head." if head == "clslayer_8" else "aux_heads.0.") + re.sub(r"^conv_out\.", "cls.", rest)
        out[key] = value
    return out


@register_model(card=CARD, converter=convert_official)
def fanet(num_classes: int = 19, **kwargs) -> nn.Module:
    return FANet(num_classes=num_classes, **kwargs)
