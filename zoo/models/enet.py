"""ENet (Paszke, Chaurasia, Kim, Culurciello, "ENet: A Deep Neural Network Architecture for Real-Time Semantic
Segmentation", arXiv 1606.02147, 2016).

Layers follow the paper's Table 1: an initial block (13-filter 3x3 stride-2 conv concatenated with a 2x2
max-pool of the input, 16 channels, stride 2), then bottleneck stages 1 (1.0 downsampling to 64 channels,
1.1-1.4 regular), 2 (2.0 downsampling to 128; 2.1-2.8 regular, dilated 2, asymmetric 5, dilated 4, regular,
dilated 8, asymmetric 5, dilated 16) and 3 (stage 2 again without 2.0), a decoder of stage 4 (4.0
upsampling to 64, 4.1-4.2 regular) and stage 5 (5.0 upsampling to 16, 5.1 regular), and a bare 2x2 stride-2
full (transposed) convolution to the classes. Each bottleneck (Fig. 2b) is a 1x1 projection (2x2 stride 2
when downsampling) to a quarter of the output width, the main conv, and a 1x1 expansion, each followed by BN
(and PReLU in the encoder, ReLU in the decoder, paper Sec. 4), spatial dropout on the extension, then the sum
with the main branch and a final activation. Downsampling bottlenecks max-pool the main branch and zero-pad
its channels; upsampling bottlenecks map it with a 1x1 conv + BN (no bias) and max-unpool it with the
indices of the matching pooling (4.0 uses 2.0's, 5.0 uses 1.0's).

Official code (Torch/Lua): e-lab/ENet-training @ f76214475ace6df38d50fa93a334ed7ffcc93af6,
train/models/encoder.lua and train/models/decoder.lua, followed line by line where the paper leaves
something open (checked against both files module by module; Torch7 cannot run here, so no parity manifest):
- Internal width output/4; BN eps 1e-3; per-channel PReLU; projections and expansions without bias (as the
  paper says), but the main 3x3, dilated and second asymmetric conv, the initial conv and the transposed
  convs with bias (Torch's default there).
- The upsampling main branch uses a 3x3 stride-2 transposed conv (padding 1, output padding 1).
- Spatial dropout 0.01 in bottlenecks 1.x and 0.1 in 2.x/3.x; none in the decoder (dropout is
  training-only, so inference is the same either way).
- The asymmetric conv (2.3, 2.7, 3.3, 3.7) runs as encoder.lua builds it: a 1x5 conv without bias
  (`SpatialConvolution(internal, internal, 5, 1, 1, 1, 2, 0):noBias()`, Torch's kW=5, kH=1), then a 5x1
  conv with bias, no BN between them. The paper's wording ("5x1 then 1x5") would be the other order: with
  the same weights a different function, so the official order is kept.
- The encoder-only classifier the official code uses to pre-train the encoder is dropped with the decoder,
  as in the official decoder script.

Input sizes: the initial block's 3x3 stride-2 conv gives ceil(n/2) and its 2x2 pool floor(n/2), and the
decoder's transposed convs double exactly, so H and W must be multiples of 8 (three halvings); the card's
input_divisor=8 makes the harness pad other sizes. At such sizes the logits come out at the input size
exactly, so no final resize is needed. Max-unpooling is given the pre-pool size explicitly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.evaluation import Recipe
from zoo.registry import register_model

_BN_EPS = 1e-3  # official code


def _conv_bn(cin: int, cout: int, kernel, stride: int = 1, padding=0, dilation=1, bias: bool = False):
    return [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias),
        nn.BatchNorm2d(cout, eps=_BN_EPS),
    ]


class InitialBlock(nn.Module):
    """Fig. 2a: 3x3 stride-2 conv (13 filters) concatenated with a 2x2 max-pool of the RGB input."""

    def __init__(self, out_channels: int = 16, in_channels: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(out_channels, eps=_BN_EPS)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class EncoderBottleneck(nn.Module):
    """Fig. 2b with PReLU. `kind`: "regular", "dilated" (3x3, `dilation`), "asymmetric" (1x5 then 5x1) or
    "down" (2x2 stride-2 projection; the main branch is max-pooled, indices kept, and zero-padded)."""

    def __init__(self, cin: int, cout: int, kind: str = "regular", dilation: int = 1, dropout: float = 0.1):
        super().__init__()
        mid = cout // 4
        self.down = kind == "down"
        stride = 2 if self.down else 1
        if kind == "asymmetric":
            conv = [  # encoder.lua: 1x5 without bias, then 5x1 with bias
                nn.Conv2d(mid, mid, (1, 5), padding=(0, 2), bias=False),
                *_conv_bn(mid, mid, (5, 1), padding=(2, 0), bias=True),
            ]
        else:
            conv = _conv_bn(mid, mid, 3, padding=dilation, dilation=dilation, bias=True)
        self.branch = nn.Sequential(
            *_conv_bn(cin, mid, stride, stride=stride),
            nn.PReLU(mid),
            *conv,
            nn.PReLU(mid),
            *_conv_bn(mid, cout, 1),
            nn.Dropout2d(dropout),
        )
        self.extra_channels = cout - cin
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor):
        """Returns the output, and for "down" also (pooling indices, pre-pool size) for the decoder."""
        if self.down:
            size = list(x.shape[-2:])
            main, indices = F.max_pool2d(x, 2, 2, return_indices=True)
        else:
            main = x
        if self.extra_channels:
            main = F.pad(main, (0, 0, 0, 0, 0, self.extra_channels))  # zero channels (paper Sec. 3)
        out = self.act(main + self.branch(x))
        return (out, indices, size) if self.down else out


class DecoderBottleneck(nn.Module):
    """Fig. 2b with ReLU. With `up`, the extension's main conv is a 3x3 stride-2 transposed conv and the main
    branch is a 1x1 conv + BN followed by max-unpooling with the encoder's indices."""

    def __init__(self, cin: int, cout: int, up: bool = False):
        super().__init__()
        mid = cout // 4
        self.up = up
        if up:
            conv = [
                nn.ConvTranspose2d(mid, mid, 3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(mid, eps=_BN_EPS),
            ]
            self.shortcut = nn.Sequential(*_conv_bn(cin, cout, 1))
        else:
            conv = _conv_bn(mid, mid, 3, padding=1, bias=True)
            self.shortcut = nn.Identity()  # in the paper's table every regular decoder block keeps its width
        self.branch = nn.Sequential(
            *_conv_bn(cin, mid, 1), nn.ReLU(), *conv, nn.ReLU(), *_conv_bn(mid, cout, 1)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None, size=None) -> torch.Tensor:
        main = self.shortcut(x)
        if self.up:
            # The aten op, not F.max_unpool2d: the latter's size check fails under torch.jit.trace (fvcore).
            main = torch.ops.aten.max_unpool2d(main, indices, size)
        return self.act(main + self.branch(x))


def _stage23(dropout: float) -> list[EncoderBottleneck]:
    """Bottlenecks x.1-x.8 of stages 2 and 3 (Table 1)."""
    spec = [
        ("regular", 1),
        ("dilated", 2),
        ("asymmetric", 1),
        ("dilated", 4),
        ("regular", 1),
        ("dilated", 8),
        ("asymmetric", 1),
        ("dilated", 16),
    ]
    return [EncoderBottleneck(128, 128, kind, d, dropout) for kind, d in spec]


class ENet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; H and W multiples of 8."""

    def __init__(self, num_classes: int = 19):
        super().__init__()
        self.initial = InitialBlock(16)
        self.down1 = EncoderBottleneck(16, 64, "down", dropout=0.01)
        self.stage1 = nn.Sequential(*(EncoderBottleneck(64, 64, dropout=0.01) for _ in range(4)))
        self.down2 = EncoderBottleneck(64, 128, "down", dropout=0.1)
        self.stage2 = nn.Sequential(*_stage23(0.1))
        self.stage3 = nn.Sequential(*_stage23(0.1))
        self.up4 = DecoderBottleneck(128, 64, up=True)
        self.stage4 = nn.Sequential(DecoderBottleneck(64, 64), DecoderBottleneck(64, 64))
        self.up5 = DecoderBottleneck(64, 16, up=True)
        self.stage5 = DecoderBottleneck(16, 16)
        # A bare full convolution, without pooling indices (paper Sec. 4: the input has 3 channels, not C).
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, idx1, size1 = self.down1(self.initial(x))
        x, idx2, size2 = self.down2(self.stage1(x))
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.up4(x, idx2, size2))
        x = self.stage5(self.up5(x, idx1, size1))
        return self.fullconv(x)


CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="ENet: A Deep Neural Network Architecture for Real-Time Semantic Segmentation",
        venue="arXiv",
        year=2016,
        arxiv="1606.02147",
    ),
    official_code="https://github.com/e-lab/ENet-training",
    implementation="segbench",
    num_classes=19,
    input_hw=(512, 1024),
    params_counts_aux_heads=False,
    input_divisor=8,
    reported=(
        Reported(
            metric="params",
            value=0.37,
            source="paper Table 3",
            note="Table 3 (hardware requirements) gives 0.37M parameters. Read through quotations, not the "
            "paper itself (see card notes).",
        ),
        Reported(
            metric="flops",
            value=3.83,
            source="paper Table 3",
            input_hw=(360, 640),
            convention="not stated by the paper (see card notes)",
            note="GFLOPs for a 3 x 640 x 360 input. Read through quotations, not the paper itself.",
        ),
    ),
    notes="Sources: the full text of arXiv 1606.02147 could not be opened here (only its abstract), so both "
    "Table 3 numbers come from secondary readings: the table number and its 3 x 640 x 360 input from the "
    "maintainer of davidtvs/PyTorch-ENet (issue #44), 0.37M params and 3.83 GFLOPs from the 'Original' row "
    "of ntkhoa95/ENet_PyTorch's README and from zh320/realtime-semantic-segmentation-pytorch's README. The "
    "params agree with the abstract's '79x less parameters' than SegNet (29.5M / 79 = 0.37M). "
    "Params: ours 364,311 at 19 classes (-1.5%); biases and per-channel PReLUs follow the official code. "
    "FLOPs: fvcore counts 1.78 G multiply-adds at 360x640 (convolutions alone 1.72 G, the rest BN); the "
    "paper's 3.83 is neither that nor 2 x (3.55 G), and the paper does not say what it counts. "
    "Left out for lack of a verifiable source: mIoU (Cityscapes test, CamVid, SUN RGB-D) and the TX1 / "
    "Titan X timings of Table 2. The paper has no training-only heads (no aux_heads). "
    "Parity: unverified by running code. The official code is Torch7 (Lua), which cannot run here; the "
    "network was checked against train/models/encoder.lua and decoder.lua module by module instead (the "
    "asymmetric convs run 1x5 then 5x1, as there). No PyTorch port matches those files, so none serves as a "
    "reference: davidtvs/PyTorch-ENet@e17d404 (3x3 max pool in the initial block, BN + activation between "
    "the asymmetric convs and after the expansion, 2x2 transposed conv when upsampling, no biases, BN eps "
    "1e-5), ntkhoa95/ENet_PyTorch@67a87d1 (1x1 downsampling projection, one PReLU slope, no bias in the "
    "asymmetric convs) and zh320/realtime-semantic-segmentation-pytorch@c77b1b6 (3x3 max pool, widths from "
    "the input, 3x3 stride-2 projection) each differ. Weights: the authors' trained models are Torch7 "
    "files; loading one would take a reader of the t7 format that runs no code (e.g. the torchfile package) "
    "and a mapping of its nn.Sequential modules, in encoder.lua/decoder.lua order, onto ours; there is no "
    "converter yet.",
)


# Paszke et al. 2016, Sec. 5.1: Adam, lr 5e-4, L2 weight decay 2e-4, batch 10, class weights
# 1/ln(1.02 + p). No LR schedule or augmentation is stated.
RECIPE = Recipe(
    optimizer="adam",
    lr=5e-4,
    weight_decay=2e-4,
    schedule="constant",
    batch_size=10,
    crop_hw=(360, 480),
    scale_range=(1.0, 1.0),
    flip=False,
    class_weighting="enet",
    class_weight_c=1.02,
    aux_weight=0.0,
    source="ENet paper Sec. 5.1",
)


@register_model(card=CARD, recipe=RECIPE)
def enet(num_classes: int = 19, **kwargs) -> nn.Module:
    """ENet as in the paper's Table 1. It has no training-only heads; kwargs are accepted and ignored."""
    return ENet(num_classes=num_classes)
