"""ShelfNet18-lw, the real-time ShelfNet (Zhuang, Yang, Gu, Dvornek, "ShelfNet for Fast Semantic
Segmentation", ICCV Workshops 2019, arXiv 1811.11254).

Official code: juntang-zhuang/ShelfNet-lw-cityscapes @ b46650393b7fc611dcf66c87b1e1609a3bb01014,
ShelfNet18_realtime/shelfnet.py (ShelfNet), ShelfBlock.py (Decoder, LadderBlock, BasicBlock = S-Block,
AttentionRefinementModule), resnet.py. Channels follow it exactly. An independent re-implementation that
computes the official function: tests/fixtures/parity/shelfnet.json checks it, and `convert_official` loads
the released ShelfNet18_realtime.pth (a bare state_dict of the training model) strictly into the default
build (aux_heads=True). (juntang-zhuang/ShelfNet holds the same ShelfNet18_realtime files.)

Structure: a ResNet-18 encoder (column 1) gives features at strides 8, 16, 32; 1x1 ConvBNReLU reduces them to
64, 128, 256 channels (the paper's channel reduction). Then three more columns, each an S-Block per level:
a decoder (column 2), an encoder with strided 3x3 convs (column 3) and a decoder (column 4), with skip
connections between neighbouring columns at every level. Each decoder step refines the coarser feature with an
attention refinement module (BiSeNet's ARM, which also halves the channels), upsamples it (nearest) and adds
the skip, then a 3x3 ConvBNReLU. The S-Block is a residual block whose two 3x3 convs share one weight, with
separate BNs and Dropout2d(0.1) between them. A 3x3 ConvBNReLU + 3x3 conv head predicts at stride 8 from the
last column; two heads of the same form at strides 16 and 32 are training-only (the official forward with
aux=True, losses on all three).

Following the official code where the paper is silent, and deviations:
- Activations: the official code's InPlaceABN defaults to LeakyReLU(0.01), so every ConvBNReLU (reductions,
  ARMs, decoder fusions, heads) and the first BN of each S-Block use LeakyReLU(0.01), as trained; the
  S-Block's output and the encoder's strided convs use ReLU, as in the official code.
- Encoder: the official resnet.py ResNet-18, which is torchvision's network (same parameter names, so
  torchvision's ImageNet weights load by key) except for its activations: LeakyReLU(0.01) after the stem's
  BN and after the first BN of each block (InPlaceABN's default), ReLU after each residual sum. Built here
  (`ShelfEncoder`), as `zoo.backbones.ResNetFeatures` has ReLU throughout.
- The official Decoder builds an S-Block `inconv` it never calls (37,184 parameters); we leave it out (the
  converter drops it).
- The column-3 encoder's first S-Block (`inconv`) reads the stride-8 feature, which is then added again
  before the next S-Block: the official order, kept. Column 2's stride-32 output reaches column 3 only
  through column 2's own up path; column 3's bottom S-Block takes only its strided conv, as in the code.
- Upsampling: the official code upsamples x2 by scale (nearest); we resize to the skip's explicit size
  (nearest), so inputs whose sides are not multiples of 32 work, identical for multiples of 32. The logits
  are resized bilinearly with align_corners=True, as officially.
- The ARM's BN sees a 1x1 map, so train mode needs batch > 1.
"""

from __future__ import annotations

import re
from functools import partial

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import AttentionRefinement, ConvBNAct, resize_to
from zoo.registry import register_model
from zoo.weights import add_bn_counters

_LeakyReLU = partial(nn.LeakyReLU, negative_slope=0.01)  # InPlaceABN's default activation


def _conv_bn_lrelu(in_channels: int, out_channels: int, kernel_size: int) -> ConvBNAct:
    """The official ConvBNReLU: conv without bias, then InPlaceABN (BN + LeakyReLU 0.01)."""
    return ConvBNAct(in_channels, out_channels, kernel_size, act_layer=_LeakyReLU)


class EncoderBlock(nn.Module):
    """The official resnet.py BasicBlock: 3x3 conv-BN-LeakyReLU(0.01), 3x3 conv-BN, + shortcut, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = _LeakyReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if in_channels != out_channels or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ShelfEncoder(nn.Module):
    """Column 1, the official ResNet-18 (torchvision's parameter names): 7x7 conv-BN-LeakyReLU, max pool,
    four stages of two `EncoderBlock`s. forward -> [stride 8, 16, 32] features (128, 256, 512 channels)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act = _LeakyReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (64, 64, 128, 256, 512)
        for i in range(1, 5):
            stride = 1 if i == 1 else 2
            blocks = [EncoderBlock(widths[i - 1], widths[i], stride), EncoderBlock(widths[i], widths[i])]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer1(self.maxpool(self.act(self.bn1(self.conv1(x)))))
        f8 = self.layer2(x)
        f16 = self.layer3(f8)
        return [f8, f16, self.layer4(f16)]


class SBlock(nn.Module):
    """Shared-weight residual block: the same 3x3 conv (with bias) twice, each followed by its own BN."""

    def __init__(self, channels: int, dropout: float = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = _LeakyReLU()
        self.drop = nn.Dropout2d(dropout)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.act1(self.bn1(self.conv(x))))
        return self.act(self.bn2(self.conv(out)) + x)


class UpPath(nn.Module):
    """A decoder column: from the bottom (coarsest) feature up, ARM -> nearest upsample -> + skip -> 3x3
    ConvBNReLU at each level. Returns the outputs from coarse to fine, the bottom one first."""

    def __init__(self, planes: int, levels: int):
        super().__init__()
        widths = [planes * 2**i for i in reversed(range(levels))]  # coarse to fine: 256, 128, 64
        self.arms = nn.ModuleList(AttentionRefinement(c, c // 2, act_layer=_LeakyReLU) for c in widths[:-1])
        self.fuse = nn.ModuleList(_conv_bn_lrelu(c, c, 3) for c in widths[1:])

    def forward(self, bottom: torch.Tensor, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = [bottom]
        for arm, fuse, skip in zip(self.arms, self.fuse, skips, strict=True):
            outs.append(fuse(resize_to(arm(outs[-1]), skip, mode="nearest") + skip))
        return outs


class ShelfDecoder(nn.Module):
    """Column 2 (official `Decoder`): an S-Block on the stride-32 feature, then the up path."""

    def __init__(self, planes: int = 64, levels: int = 3):
        super().__init__()
        self.bottom = SBlock(planes * 2 ** (levels - 1))
        self.up = UpPath(planes, levels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """feats fine to coarse; returns coarse to fine."""
        return self.up(self.bottom(feats[-1]), feats[-2::-1])


class ShelfLadder(nn.Module):
    """Columns 3 and 4 (official `LadderBlock`): S-Blocks with strided 3x3 convs going down, then the up path.

    Takes column 2's outputs (coarse to fine); returns coarse to fine.
    """

    def __init__(self, planes: int = 64, levels: int = 3):
        super().__init__()
        self.inconv = SBlock(planes)
        self.down = nn.ModuleList(SBlock(planes * 2**i) for i in range(levels - 1))
        # Strided 3x3 conv (with bias, no BN) + ReLU instead of pooling, doubling the channels.
        self.down_conv = nn.ModuleList(
            nn.Sequential(nn.Conv2d(planes * 2**i, planes * 2 ** (i + 1), 3, stride=2, padding=1), nn.ReLU())
            for i in range(levels - 1)
        )
        self.bottom = SBlock(planes * 2 ** (levels - 1))
        self.up = UpPath(planes, levels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.inconv(feats[-1])
        down_outs = []
        for block, down_conv, skip in zip(self.down, self.down_conv, feats[::-1], strict=False):
            down_outs.append(block(out + skip))
            out = down_conv(down_outs[-1])
        return self.up(self.bottom(out), down_outs[::-1])


class ShelfHead(nn.Sequential):
    """The official BiSeNetOutput: 3x3 ConvBNReLU, then a 3x3 classifier conv without bias."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.conv = _conv_bn_lrelu(in_channels, mid_channels, 3)
        self.cls = nn.Conv2d(mid_channels, num_classes, 3, padding=1, bias=False)


class ShelfNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with aux heads,
    (logits, [aux logits from the stride-16 and stride-32 outputs of the last column, upsampled to H,W])."""

    def __init__(self, num_classes: int = 19, aux_heads: bool = True, planes: int = 64):
        super().__init__()
        self.backbone = ShelfEncoder()
        widths = (planes, planes * 2, planes * 4)
        self.reduce = nn.ModuleList(
            _conv_bn_lrelu(c, w, 1) for c, w in zip((128, 256, 512), widths, strict=True)
        )
        self.decoder = ShelfDecoder(planes, 3)
        self.ladder = ShelfLadder(planes, 3)
        self.head = ShelfHead(planes, planes, num_classes)
        self.aux_heads = (
            nn.ModuleList(ShelfHead(c, planes, num_classes) for c in widths[1:]) if aux_heads else None
        )

    def forward(self, x: torch.Tensor):
        feats = [reduce(f) for reduce, f in zip(self.reduce, self.backbone(x), strict=True)]
        outs = self.ladder(self.decoder(feats))  # strides 32, 16, 8
        logits = resize_to(self.head(outs[-1]), x, align_corners=True)
        if self.training and self.aux_heads is not None:
            return logits, [
                resize_to(head(f), x, align_corners=True)
                for head, f in zip(self.aux_heads, outs[-2::-1], strict=True)
            ]
        return logits


_REPO = "juntang-zhuang/ShelfNet-lw-cityscapes@b46650393b7fc611dcf66c87b1e1609a3bb01014"
_TABLES = f"{_REPO}:figures/results_shelfnet.png"
_TABLES_NOTE = (
    "Read from the official repo's figure, an image of the paper's Tables 8 and 9 with their captions; "
    "the paper's own text could not be opened here. "
)

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="ShelfNet for Fast Semantic Segmentation",
        venue="ICCV Workshops",
        year=2019,
        arxiv="1811.11254",
        doi="10.1109/ICCVW.2019.00113",
    ),
    official_code="https://github.com/juntang-zhuang/ShelfNet-lw-cityscapes",
    implementation="segbench",
    num_classes=19,
    input_hw=(1024, 2048),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="params",
            value=14.357,
            source=f"{_REPO}:ShelfNet18_realtime/shelfnet.py",
            note="Not a paper number: count of the official ShelfNet(n_classes=19), built here with "
            "InPlaceABNSync replaced by BatchNorm2d (same parameters), less its two training-only heads "
            "conv_out16/conv_out32 (243,328). Its test_speed.py prints the whole module, 14,600,768 "
            "(14.6 M). Both include the Decoder's unused S-Block (37,184), which ours leaves out.",
        ),
        Reported(
            metric="miou",
            value=74.8,
            source=_TABLES,
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="test",
            protocol="single-scale (Table 8 caption); the official evaluate.py runs the 1024x2048 image as "
            "two 1024x1024 crops, no flip",
            note=_TABLES_NOTE + "Table 8(a), real-time methods. Also in the official README.",
        ),
        Reported(
            metric="fps",
            value=36.9,
            source=_TABLES,
            input_hw=(1024, 2048),
            device="GTX 1080 Ti",
            backend="PyTorch",
            precision="fp32",
            note=_TABLES_NOTE + "Table 9: single forward pass, batch 1. Backend and precision from the "
            "official test_speed.py (mean of 99 timed forwards of a float32 model, aux heads off).",
        ),
        Reported(
            metric="fps",
            value=59.2,
            source=_TABLES,
            input_hw=(768, 1536),
            device="GTX 1080 Ti",
            backend="PyTorch",
            precision="fp32",
            note=_TABLES_NOTE + "Table 9, the figure the README quotes. Conditions as the 1024x2048 entry.",
        ),
    ),
    notes="Params: no parameter count for ShelfNet18-lw could be read at the paper's source here, so the "
    "card carries the official code's count. The 23.5 M in SegBench's secondary reference table is not "
    "reproduced by the official code: its ShelfNet18-lw has 14.6 M parameters with the aux heads, 11.2 M of "
    "them the ResNet-18 encoder. No FLOPs figure for ShelfNet18-lw was found (ours: 99.1 G multiply-adds at "
    "1024x2048, fvcore). The released checkpoint loads through the model's converter, and the forward "
    "matches the official code's (parity manifest). The 1920x1280 FPS (31.2) of Table 9 is left out because "
    "the table does not say which side is the height. Left out: ShelfNet34-lw (79.0 test, 80.0 val; 128 base "
    "channels, a different model) and the ResNet-50/101 ShelfNets of arXiv v1.",
)


# Official ShelfNet state_dict names -> ours (substring replacements, in order). Dropped: the Decoder's
# never-called S-Block `decoder.inconv`.
_RENAMES = (
    ("trans1.", "reduce.0."),
    ("trans2.", "reduce.1."),
    ("trans3.", "reduce.2."),
    ("conv_out16.", "aux_heads.0."),
    ("conv_out32.", "aux_heads.1."),
    ("conv_out.conv_out.", "head.cls."),
    ("conv_out.conv.", "head.conv."),
    (".conv_out.", ".cls."),  # inside the aux heads
    ("down_module_list.", "down."),
    ("up_conv_list.", "up.arms."),
    ("up_dense_list.", "up.fuse."),
    (".conv_atten.", ".attention.1.conv."),
    (".bn_atten.", ".attention.1.bn."),
    (".conv1.", ".conv."),  # the S-Blocks' shared conv (backbone keys are not renamed)
)


def convert_official(state: dict) -> dict:
    """Official ShelfNet18-lw checkpoint (ShelfNet18_realtime/shelfnet.py ShelfNet) -> ours. Its norms are
    inplace_abn's (no batch counter) except the S-Blocks' second BN: a zero counter is added."""
    out = {}
    for key, value in state.items():
        if key.startswith("decoder.inconv."):
            continue
        if match := re.fullmatch(r"ladder\.down_conv_list\.(\d+)\.(\w+)", key):
            key = f"ladder.down_conv.{match[1]}.0.{match[2]}"  # nn.Conv2d -> Sequential(conv, ReLU)
        elif not key.startswith("backbone."):
            for official, ours in _RENAMES:
                key = key.replace(official, ours)
        out[key] = value
    return add_bn_counters(out)


@register_model(card=CARD, converter=convert_official)
def shelfnet(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    """ShelfNet18-lw (ResNet-18 encoder, 64 base channels, 3 levels). kwargs: planes (base channels, 64)."""
    return ShelfNet(num_classes=num_classes, aux_heads=aux_heads, **kwargs)
