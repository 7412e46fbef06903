"""CGNet (Wu, Tang, Zhang, Cao, Zhang, "CGNet: A Light-weight Context Guided Network for Semantic
Segmentation", IEEE TIP 2020 (vol. 30, 2021), arXiv 1811.08201), the M3N21 configuration.

Official code: wutianyiRosun/CGNet, model/CGNet.py (class `Context_Guided_Network`) at commit
ebc812c445b2f10a6cf64a2b16bbfe1cc2fec10f; read for understanding, this is an independent re-implementation
that matches it layer for layer (same 496,306 parameters at 19 classes; with the official module's
weights loaded in order it gives identical logits, checked on a 360x480 input).

Context Guided (CG) block: a 1x1 ConvBNPReLU halves the channels; f_loc (3x3 channel-wise conv) and f_sur
(3x3 dilated channel-wise conv) run on that in parallel; f_joi concatenates them, BN, PReLU; f_glo refines
the joint feature with an SE-style global-context gate; the input is added (global residual learning).
The down-sampling CG block opens with a 3x3 stride-2 ConvBNPReLU to the output width instead, and reduces
the 2x-wide joint feature with a 1x1 conv before f_glo; it has no residual.

Network (M = 3, N = 21), stride 8:
  stage 1  three 3x3 ConvBNPReLU (32; the first strides)                          -> 1/2
           concat the input image average-pooled to 1/2 (input injection), BN + PReLU (35)
  stage 2  down CG block to 64 (dilation 2, SE reduction 8), M - 1 = 2 CG blocks   -> 1/4
           concat [last block, down block, image pooled to 1/4], BN + PReLU (131)
  stage 3  down CG block to 128 (dilation 4, SE reduction 16), N - 1 = 20 CG blocks  -> 1/8
           concat [down block, last block], BN + PReLU (256)
  head     1x1 conv to the classes (no bias), bilinear upsample to the input size.

Choices and deviations (none changes parameters or outputs' meaning):
- f_glo is `zoo.layers.SqueezeExcite` (pool, 1x1 conv reduce, ReLU, 1x1 conv expand, sigmoid): the official
  code's two nn.Linear layers (with bias) on the pooled vector compute the same thing with the same weights.
- PReLU has one slope per channel and BatchNorm eps is 1e-3, as in the official code.
- Input injection pools with 3x3 stride-2 average pooling (padding 1, count_include_pad=True), once for 1/2
  and twice for 1/4, as in the official code; every stride-2 conv is k3 p1, so sizes agree for any input.
- Upsampling uses `resize_to` (bilinear, align_corners=False), like the official F.upsample call.
- The official code's optional Dropout2d(0.1) before the classifier (off by default) is left out.
- Initialisation: Kaiming-normal convs, as in the official code.

Official weights: `convert_official` (registered with the builder) maps the authors' checkpoint
(checkpoint['model'] of a DataParallel model) onto our keys. Parity: tests/fixtures/parity/cgnet.json,
recorded from model/CGNet.py at the commit above, matches through `load_weights`.
"""

from __future__ import annotations

import re
from functools import partial

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.evaluation import Recipe
from zoo.layers import ConvBNAct, SqueezeExcite, resize_to
from zoo.registry import register_model

_BN = partial(nn.BatchNorm2d, eps=1e-3)


def conv_bn_prelu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> ConvBNAct:
    block = ConvBNAct(in_channels, out_channels, kernel_size, stride, norm_layer=_BN, act_layer=None)
    block.act = nn.PReLU(out_channels)  # one slope per channel, which ConvBNAct's act_layer() cannot build
    return block


class BNPReLU(nn.Sequential):
    def __init__(self, channels: int):
        super().__init__()
        self.bn = _BN(channels)
        self.act = nn.PReLU(channels)


def _channelwise(channels: int, dilation: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels, bias=False)


class CGBlock(nn.Module):
    """Context Guided block (paper Fig. 3); `down=True` is the stride-2 variant opening each stage."""

    def __init__(
        self, in_channels: int, out_channels: int, dilation: int, reduction: int, down: bool = False
    ):
        super().__init__()
        self.down = down
        # The down block works at full output width and reduces the 2x joint feature afterwards; the
        # normal block halves the width first so that the concatenated joint feature is out_channels wide.
        mid = out_channels if down else out_channels // 2
        self.reduce_in = (
            conv_bn_prelu(in_channels, mid, 3, stride=2) if down else conv_bn_prelu(in_channels, mid, 1)
        )
        self.f_loc = _channelwise(mid, 1)
        self.f_sur = _channelwise(mid, dilation)
        self.f_joi = BNPReLU(2 * mid)
        self.reduce_out = nn.Conv2d(2 * mid, out_channels, 1, bias=False) if down else nn.Identity()
        self.f_glo = SqueezeExcite(out_channels, out_channels // reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce_in(x)
        y = self.f_glo(self.reduce_out(self.f_joi(torch.cat([self.f_loc(y), self.f_sur(y)], dim=1))))
        return y if self.down else x + y


class InputInjection(nn.Sequential):
    """The input image average-pooled `times` times by 3x3 stride-2 windows (1/2, 1/4, ...)."""

    def __init__(self, times: int):
        super().__init__(*(nn.AvgPool2d(3, stride=2, padding=1) for _ in range(times)))


class CGNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]. `m`, `n`: CG blocks in stages 2 and 3 (each
    counting its down-sampling block), 3 and 21 for CGNet_M3N21."""

    def __init__(self, num_classes: int = 19, m: int = 3, n: int = 21):
        super().__init__()
        self.stage1 = nn.Sequential(
            conv_bn_prelu(3, 32, 3, 2), conv_bn_prelu(32, 32, 3), conv_bn_prelu(32, 32, 3)
        )
        self.inject_2 = InputInjection(1)
        self.inject_4 = InputInjection(2)
        self.norm1 = BNPReLU(32 + 3)
        self.down2 = CGBlock(32 + 3, 64, dilation=2, reduction=8, down=True)
        self.stage2 = nn.Sequential(*(CGBlock(64, 64, dilation=2, reduction=8) for _ in range(m - 1)))
        self.norm2 = BNPReLU(2 * 64 + 3)
        self.down3 = CGBlock(2 * 64 + 3, 128, dilation=4, reduction=16, down=True)
        self.stage3 = nn.Sequential(*(CGBlock(128, 128, dilation=4, reduction=16) for _ in range(n - 1)))
        self.norm3 = BNPReLU(2 * 128)
        self.classifier = nn.Conv2d(2 * 128, num_classes, 1, bias=False)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.norm1(torch.cat([self.stage1(x), self.inject_2(x)], dim=1))
        d2 = self.down2(f1)
        f2 = self.norm2(torch.cat([self.stage2(d2), d2, self.inject_4(x)], dim=1))
        d3 = self.down3(f2)
        f3 = self.norm3(torch.cat([d3, self.stage3(d3)], dim=1))
        return resize_to(self.classifier(f3), x)


_CODE = "wutianyiRosun/CGNet@ebc812c445b2f10a6cf64a2b16bbfe1cc2fec10f:model/CGNet.py"

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="CGNet: A Light-weight Context Guided Network for Semantic Segmentation",
        venue="IEEE TIP",
        year=2020,
        arxiv="1811.08201",
    ),
    official_code="https://github.com/wutianyiRosun/CGNet",
    implementation="segbench",
    num_classes=19,
    input_hw=(1024, 2048),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            "params",
            0.4963,
            source=_CODE,
            note="Count of the official Context_Guided_Network(classes=19, M=3, N=21), 496,306; ours has "
            "the same parameters and, loaded with the official weights, gives identical logits. The "
            "paper's abstract says only 'less than 0.5 M parameters'.",
        ),
        Reported(
            "miou",
            64.8,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="test",
            protocol="single-scale, no post-processing, no multi-scale testing",
            note="Trained on fine annotations only. The benchmark server lists the submission at 64.76 "
            "(cityscapes-dataset.com method details, submission 2095). The split is named in the official "
            "README ('Results on Cityscapes test set').",
        ),
        Reported(
            "fps",
            50.0,
            source="paper abstract (arXiv v1); also wutianyiRosun/CGNet README",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            device="NVIDIA Tesla K80",
            backend="PyTorch 0.5 (pre-release), CUDA 8.0",
            note="Dropped from the later abstract. The project's methods survey cites wutianyiRosun/CGNet#2 "
            "('Wrong Speed Test': no CUDA synchronisation in the authors' timing; not re-read here), so this "
            "likely overstates the speed. The benchmark server lists 0.02 s on a Tesla K80. Backend: the "
            "README's development environment, not stated for the timing itself.",
        ),
    ),
    notes="Params: the card's figure is the official code's count (496,306 at 19 classes), since "
    "the abstract bounds it only by 0.5M; secondary tables quote 0.5M for M3N21, which we could not open "
    "at its source. The paper's FLOPs were not verified, so none is recorded. mIoU of the TIP version's "
    "tables and CamVid results are left out for the same reason.",
)


_RULES = (  # official model/CGNet.py names -> ours, first match wins
    (r"^level1_(\d)\.", r"stage1.\1."),
    (r"^b1\.", "norm1."),
    (r"^bn_prelu_([23])\.", r"norm\1."),
    (r"^level([23])_0\.", r"down\1."),
    (r"^level([23])\.(\d+)\.", r"stage\1.\2."),
    (r"^classifier\.\d\.conv\.", "classifier."),  # Sequential([Dropout2d,] Conv)
)
_BLOCK_RULES = (  # inside a CG block
    (r"\.conv1x1\.", ".reduce_in."),
    (r"\.F_(loc|sur)\.conv\.", r".f_\1."),
    (r"\.bn_prelu\.", ".f_joi."),
    (r"^(down\d)\.(bn|act)\.", r"\1.f_joi.\2."),
    (r"^(down\d)\.reduce\.conv\.", r"\1.reduce_out."),
    (r"\.F_glo\.fc\.0\.", ".f_glo.reduce."),
    (r"\.F_glo\.fc\.2\.", ".f_glo.expand."),
)


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official checkpoint (checkpoint['model'], `module.` stripped on reading) -> ours. The f_glo
    nn.Linear weights (out, in) become 1x1 conv weights (out, in, 1, 1)."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _RULES:
            key, n = re.subn(pattern, repl, key)
            if n:
                break
        for pattern, repl in _BLOCK_RULES:
            key = re.sub(pattern, repl, key)
        if ".f_glo." in key and key.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out[key] = value
    return out


# wutianyiRosun/CGNet camvid_train.py: Adam (0.9, 0.999) lr 1e-3, weight decay 5e-4, poly 0.9, crop
# 360x360, batch 8, random scale + mirror, class-weighted CE from the train+val histogram (1.10).
RECIPE = Recipe(
    optimizer="adam",
    lr=1e-3,
    weight_decay=5e-4,
    schedule="poly",
    power=0.9,
    batch_size=8,
    crop_hw=(360, 360),
    scale_range=(0.5, 2.0),
    flip=True,
    class_weighting="enet",
    class_weight_c=1.10,
    aux_weight=0.0,
    source="wutianyiRosun/CGNet@ebc812c camvid_train.py",
)


@register_model(card=CARD, converter=convert_official, recipe=RECIPE)
def cgnet(num_classes: int = 19, **kwargs) -> nn.Module:
    """CGNet_M3N21 (kwargs m, n for other depths); CGNet has no training-only heads."""
    return CGNet(num_classes=num_classes, **kwargs)
