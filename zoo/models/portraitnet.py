"""PortraitNet (Zhang, Dong, Li, Li, Yang, "PortraitNet: Real-time Portrait Segmentation Network for Mobile
Device", Computers & Graphics, 2019 (CAD/Graphics 2019); ScienceDirect PII S0097849319300305, as the
official README links it; no arXiv version).

Official code (PyTorch 0.3): dong-x16/PortraitNet, model/model_mobilenetv2_seg_small.py (class
MobileNetV2) at commit 5033db1e3dfe1124a54dacf248c84e1b78557da0, built by myTrain/train.py with n_class=2,
channelRatio=1.0, minChannel=16 and, per config/model_mobilenetv2_with_two_auxiliary_losses.yaml,
useUpsample=False and useDeconvGroup=False (full 4x4 transposed convs), addEdge=True. Read for
understanding; our own code.

Architecture (official code, matching the paper's Fig. 2):
  encoder  MobileNetV2 width 1.0 up to the 320-channel block (no 1280-channel conv, no classifier), in the
           official stage layout stage0..stage7 (strides 2, 2, 4, 8, 16, 16, 32, 32).
  decoder  five D-Blocks (`transit1..5`: depthwise-separable residual blocks, 320->96->32->24->16->8), each
           followed by a 4x4 stride-2 transposed conv (`deconv1..5`); the encoder features at 1/16, 1/8 and
           1/4 are added to the upsampled decoder features (the 1/2 feature is not used); a 3x3 conv (no bias)
           predicts the 2 classes at full resolution.
  boundary the training-only boundary head (`edge` in the official code: a 3x3 conv, no bias, on the same
           8-channel map; trained with focal loss, weight 0.1) is `aux_heads[0]`. The consistency-constraint
           loss (KL between the outputs for an image and its texture-augmented copy) needs no module.

Deviations from the official code, and why:
  - Any input size: the official net needs sides divisible by 32 (a transposed conv doubles exactly, so the
    skip sums fail otherwise). Each transposed conv's output is cropped at its bottom/right to the size of
    the feature it is added to (and finally to the input), which changes nothing when sides are multiples of
    32 (the paper's 224x224) and keeps the official alignment elsewhere.
  - The encoder's activations are ReLU, as in the official code (the paper's MobileNetV2 uses ReLU6), and the
    t=1 block keeps its 1x1 expansion conv (32->32), as in the official code (torchvision drops it). Hence the
    official layout here rather than torchvision's mobilenet_v2 features: it matches the official count
    exactly (torchvision's layout would have 1,088 fewer parameters and ReLU6).
  - Initialisation follows the official `_initialize_weights`: Kaiming-normal convs (fan-in), BN (1, 0), and
    every transposed conv set to a bilinear kernel for each (input, output) channel pair, as the official
    code's broadcast copy does.
  - Input normalisation is not part of the model: the official pipeline feeds BGR images as
    (pixel - [103.94, 116.78, 123.68]) * 0.017.

Parity: tests/fixtures/parity/portraitnet.json was recorded from the official MobileNetV2 class (@ e08ccdb,
the file unchanged since 5033db1) built as above, in the layout of the authors' PyTorch 0.3 checkpoints (no
num_batches_tracked buffers, the `edge` head included); `convert_official` loads it strictly and our logits
equal the official ones (relative difference below 1e-6 at 128x192, identical argmax).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, SeparableConvBNAct
from zoo.registry import register_model
from zoo.weights import add_bn_counters

_CODE = "dong-x16/PortraitNet"
_MODEL_FILE = f"{_CODE}@5033db1e3dfe1124a54dacf248c84e1b78557da0:model/model_mobilenetv2_seg_small.py"

# (expansion t, out channels c, repeats n, first stride s) of stage1..stage7, grouped as in the official code.
_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
_DECODER = (320, 96, 32, 24, 16, 8)  # D-Block widths, deepest first


class InvertedResidual(nn.Module):
    """Official MobileNetV2 block: 1x1 expand (kept even for t=1) + ReLU, 3x3 depthwise + ReLU, linear 1x1."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        mid = in_channels * expansion
        self.conv = nn.Sequential(
            ConvBNAct(in_channels, mid, 1),
            ConvBNAct(mid, mid, 3, stride=stride, groups=mid),
            ConvBNAct(mid, out_channels, 1, act_layer=None),
        )
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_shortcut else self.conv(x)


def _stage(in_channels: int, t: int, c: int, n: int, s: int) -> nn.Module:
    blocks = [InvertedResidual(in_channels if i == 0 else c, c, s if i == 0 else 1, t) for i in range(n)]
    return blocks[0] if n == 1 else nn.Sequential(*blocks)  # the official stage1/stage7 are bare blocks


class DBlock(nn.Module):
    """Decoder block (paper Fig. 2b): two depthwise-separable convs (the second without its last ReLU) plus a
    1x1 conv + BN shortcut where the width changes; ReLU after the sum."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            SeparableConvBNAct(in_channels, out_channels, 3),
            SeparableConvBNAct(out_channels, out_channels, 3, act_layer=None),
        )
        self.residual = (
            ConvBNAct(in_channels, out_channels, 1, act_layer=None)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.block(x) + self.residual(x))


def _crop_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bottom/right crop of a x2 transposed-conv output to `like`'s size (odd sides halve to one extra)."""
    return x[..., : like.shape[-2], : like.shape[-1]]


def _bilinear_kernel(size: int) -> torch.Tensor:
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - center).abs() / factor
    return ramp[:, None] * ramp[None, :]


class PortraitNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in train mode with the boundary head,
    (logits, [boundary logits[N,num_classes,H,W]])."""

    def __init__(self, num_classes: int = 2, aux_heads: bool = True):
        super().__init__()
        self.stage0 = ConvBNAct(3, 32, 3, stride=2)
        channels = 32
        for i, (t, c, n, s) in enumerate(_STAGES, start=1):
            setattr(self, f"stage{i}", _stage(channels, t, c, n, s))
            channels = c
        for i, (cin, cout) in enumerate(zip(_DECODER[:-1], _DECODER[1:], strict=True), start=1):
            setattr(self, f"transit{i}", DBlock(cin, cout))
            setattr(self, f"deconv{i}", nn.ConvTranspose2d(cout, cout, 4, stride=2, padding=1, bias=False))
        self.pred = nn.Conv2d(_DECODER[-1], num_classes, 3, padding=1, bias=False)
        self.aux_heads = (
            nn.ModuleList([nn.Conv2d(_DECODER[-1], num_classes, 3, padding=1, bias=False)])
            if aux_heads
            else None
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.ConvTranspose2d):
                with torch.no_grad():
                    m.weight.copy_(_bilinear_kernel(m.kernel_size[0]).expand_as(m.weight))

    def forward(self, x: torch.Tensor):
        f2 = self.stage1(self.stage0(x))
        f4 = self.stage2(f2)
        f8 = self.stage3(f4)
        f16 = self.stage5(self.stage4(f8))
        f32 = self.stage7(self.stage6(f16))
        up = _crop_to(self.deconv1(self.transit1(f32)), f16)
        up = _crop_to(self.deconv2(self.transit2(f16 + up)), f8)
        up = _crop_to(self.deconv3(self.transit3(f8 + up)), f4)
        up = _crop_to(self.deconv4(self.transit4(f4 + up)), f2)
        up = _crop_to(self.deconv5(self.transit5(up)), x)  # the official decoder adds no 1/2 skip
        logits = self.pred(up)
        if self.training and self.aux_heads is not None:
            return logits, [self.aux_heads[0](up)]
        return logits


_EG1800 = "EG1800"
_SP = "Supervise-Portrait"
_PROTO = "single-scale 224x224 input; averaging not stated in the text read"
_TWO_LOSSES = (
    "PortraitNet trained with both auxiliary losses (boundary + consistency constraint). Sec. 1 calls the "
    "figure 'accuracy'; recorded as mIoU, the metric of the paper's result tables per secondary sources (the "
    "tables were not read here). The official training script's validation (myTrain/train.py, test()) "
    "averages the per-image IoU of the person mask at softmax > 0.5."
)

CARD = ModelCard(
    group="portrait",
    paper=Paper(
        title="PortraitNet: Real-time Portrait Segmentation Network for Mobile Device",
        venue="Computers & Graphics (CAD/Graphics 2019)",
        year=2019,
        doi="10.1016/j.cag.2019.03.007",  # not verified here: see the card's notes
    ),
    official_code="https://github.com/dong-x16/PortraitNet",
    implementation="segbench",
    num_classes=2,
    input_hw=(224, 224),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="params",
            value=2.081,
            source=_MODEL_FILE,
            note="Not a paper number read here: count of the official MobileNetV2(n_class=2, "
            "useUpsample=False, useDeconvGroup=False, addEdge=False, channelRatio=1.0, minChannel=16), "
            "2,080,760 parameters, built in a scratch copy; the boundary head (addEdge=True) adds 144.",
        ),
        Reported(
            metric="miou",
            value=96.62,
            source="paper Sec. 1 (Introduction)",
            input_hw=(224, 224),
            dataset=_EG1800,
            split="test (289 images per the official README)",
            protocol=_PROTO,
            note=_TWO_LOSSES,
        ),
        Reported(
            metric="miou",
            value=93.43,
            source="paper Sec. 1 (Introduction)",
            input_hw=(224, 224),
            dataset=_SP,
            split="test",
            protocol=_PROTO,
            note=_TWO_LOSSES,
        ),
        Reported(
            metric="fps",
            value=30.0,
            source="paper abstract",
            input_hw=(224, 224),
            device="iPhone 7",
            backend="not stated",
            precision="not stated",
            note="'capable of processing 224 x 224 RGB images at 30 FPS on iPhone 7' (also in Sec. 1); the "
            "abstract and introduction state neither backend nor precision.",
        ),
    ),
    notes="Params: the card carries the official code's count (2,080,760 without the boundary head), which "
    "secondary sources round to 2.1M (SINet's abstract) and 2.08M (ExtremeC3Net's abstract); ours is "
    "identical. The paper's own params/FLOPs table could not be opened here (only its abstract and "
    "introduction), so no paper FLOPs figure is recorded; our count is 0.377 G multiply-adds (fvcore) "
    "at 224x224. mIoU numbers are from the paper's introduction (verified); per-table results and the "
    "speed table were not verified and are left out. Input size: 224x224 (abstract; official config). "
    "Paper DOI: recalled, not verified here (no arXiv version exists and no stored page shows the DOI); the "
    "official README links the article by its ScienceDirect PII, S0097849319300305.",
)


# Official state_dict keys -> ours: (conv, bn, relu) triples of official nn.Sequentials become ConvBNActs.
_RULES = (
    (r"^edge\.", "aux_heads.0."),
    (r"^(stage0)\.([01])\.", lambda m: f"{m[1]}.{'conv' if m[2] == '0' else 'bn'}."),
    (r"^(transit\d)\.residual\.([01])\.", lambda m: f"{m[1]}.residual.{'conv' if m[2] == '0' else 'bn'}."),
    (r"^(transit\d)\.block\.0\.(\d)\.", lambda m: f"{m[1]}.block.0.{_sep_key(int(m[2]))}."),
    (r"^(transit\d)\.block\.(\d)\.", lambda m: f"{m[1]}.block.1.{_sep_key(int(m[2]) - 1)}."),
    (r"^(stage\d(?:\.\d+)?)\.conv\.(\d)\.", lambda m: f"{m[1]}.conv.{int(m[2]) // 3}.{_conv_bn(int(m[2]))}."),
)


def _conv_bn(index: int) -> str:
    return "conv" if index % 3 == 0 else "bn"


def _sep_key(index: int) -> str:
    """Index in an official (dw, bn, relu, pw, bn, relu) sequence -> our SeparableConvBNAct key."""
    return f"{'depthwise' if index < 3 else 'pointwise'}.{_conv_bn(index)}"


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an official dong-x16/PortraitNet checkpoint's state_dict onto `portraitnet`'s keys."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _RULES:
            new, n = re.subn(pattern, repl, key)
            if n:
                key = new
                break
        out[key] = value
    return add_bn_counters(out)  # PyTorch 0.3 checkpoints predate this buffer


@register_model(card=CARD, converter=convert_official)
def portraitnet(num_classes: int = 2, aux_heads: bool = True, **kwargs) -> nn.Module:
    """PortraitNet (MobileNetV2 1.0 encoder, D-Block decoder); `aux_heads` adds the boundary head."""
    return PortraitNet(num_classes=num_classes, aux_heads=aux_heads, **kwargs)
