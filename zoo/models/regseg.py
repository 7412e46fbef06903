"""RegSeg: Gao, "Rethink Dilated Convolution for Real-time Semantic Segmentation", arXiv 2111.09957.

Official code: RolandGao/RegSeg @ 0f61c66dd9fa1bbf751a44732d9b333fdb1945b4 (model.py: RegSeg with name
"exp48_decoder26", "what we call RegSeg in our paper"; blocks.py: DBlock, DilatedConv, SEModule, Shortcut,
RegSegBody, Exp2_Decoder26). Read for understanding; this is an independent re-implementation.

Architecture (exp48_decoder26). Stem: 3x3 stride-2 ConvBNReLU to 32. Body of D blocks (group width 16):
1/4: one block 32->48 (stride 2); 1/8: 48->128 (stride 2) + two 128; 1/16: 128->256 (stride 2), then
256-wide blocks with dilation pairs (1), (1,2), 4x(1,4), 6x(1,14), and a last 256->320 block with (1,14).
A D block (paper Fig. 2b) is SE-ResNeXt-like: 1x1 ConvBNReLU, a grouped 3x3 conv whose channels are split
into equal parts with one dilation rate each (concatenated), BN, ReLU, SE, 1x1 conv + BN, plus the shortcut,
then ReLU. The SE bottleneck is in_channels // 4 (the block's *input* width, as in the official code). The
stride-2 shortcut is 2x2 average pooling (ceil mode) + 1x1 conv + BN; a width change alone uses 1x1 conv +
BN. Decoder (paper Fig. 3): 1x1 ConvBNReLU of the 1/16 features to 128, upsampled and summed with the 1/8
features (1x1 to 128), 3x3 ConvBNReLU to 64, upsampled and concatenated with the 1/4 features (1x1 to 8),
3x3 ConvBNReLU to 64, 1x1 classifier; bilinear (align_corners=False) to the input size. No auxiliary heads:
the paper trains with plain cross-entropy and no ImageNet pretraining.

Deviations: none in the function. A single-rate block (dilations (1,)) is one grouped conv, as officially;
the official code splits with torch.tensor_split, here torch.chunk (same equal split). All stride-2 ops
shrink by ceil(n/2) and the decoder resizes to explicit sizes, so any input size works.

Official weights: `convert_official` (registered with the builder) maps the authors' checkpoints onto our
keys. Parity: tests/fixtures/parity/regseg.json, recorded from model.py at the commit above, matches
through `load_weights`.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, SqueezeExcite, resize_to
from zoo.registry import register_model

# Dilation rates of the 1/16 stage after its stride-2 block (exp48); the last entry is the 256->320 block.
EXP48_DILATIONS = ((1,), (1, 2)) + 4 * ((1, 4),) + 7 * ((1, 14),)


class SplitDilatedConv(nn.Module):
    """Grouped 3x3 conv whose channels are split into len(dilations) equal parts, one dilation rate each."""

    def __init__(self, channels: int, dilations: tuple[int, ...], group_width: int, stride: int = 1):
        super().__init__()
        split = channels // len(dilations)
        if split * len(dilations) != channels or split % group_width:
            raise ValueError(
                f"{channels} channels do not split into {dilations} with group width {group_width}"
            )
        self.convs = nn.ModuleList(
            nn.Conv2d(split, split, 3, stride, padding=d, dilation=d, groups=split // group_width, bias=False)
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        parts = torch.chunk(x, len(self.convs), dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts, strict=True)], dim=1)


class DBlock(nn.Module):
    """Paper Fig. 2b: 1x1 -> split dilated grouped 3x3 -> SE -> 1x1 (linear), + shortcut, ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: tuple[int, ...] = (1,),
        group_width: int = 16,
        stride: int = 1,
    ):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 1)
        self.conv2 = SplitDilatedConv(out_channels, dilations, group_width, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act2 = nn.ReLU()
        self.se = SqueezeExcite(out_channels, in_channels // 4)
        self.conv3 = ConvBNAct(out_channels, out_channels, 1, act_layer=None)
        if stride != 1:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(2, 2, ceil_mode=True), ConvBNAct(in_channels, out_channels, 1, act_layer=None)
            )
        elif in_channels != out_channels:
            self.shortcut = ConvBNAct(in_channels, out_channels, 1, act_layer=None)
        else:
            self.shortcut = nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.act2(self.bn2(self.conv2(self.conv1(x)))))
        return self.act(self.conv3(y) + self.shortcut(x))


class RegSegBody(nn.Module):
    """The D-block body; forward -> [1/4 (48), 1/8 (128), 1/16 (320)] features."""

    def __init__(self, dilations: tuple[tuple[int, ...], ...] = EXP48_DILATIONS, group_width: int = 16):
        super().__init__()
        gw = group_width
        self.stage4 = DBlock(32, 48, (1,), gw, 2)
        self.stage8 = nn.Sequential(DBlock(48, 128, (1,), gw, 2), DBlock(128, 128), DBlock(128, 128))
        self.stage16 = nn.Sequential(
            DBlock(128, 256, (1,), gw, 2),
            *(DBlock(256, 256, d, gw) for d in dilations[:-1]),
            DBlock(256, 320, dilations[-1], gw),
        )
        self.out_channels = (48, 128, 320)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x4 = self.stage4(x)
        x8 = self.stage8(x4)
        return [x4, x8, self.stage16(x8)]


class RegSegDecoder(nn.Module):
    """Paper Fig. 3 (official Exp2_Decoder26)."""

    def __init__(self, num_classes: int, channels: tuple[int, int, int] = (48, 128, 320)):
        super().__init__()
        c4, c8, c16 = channels
        self.head16 = ConvBNAct(c16, 128, 1)
        self.head8 = ConvBNAct(c8, 128, 1)
        self.head4 = ConvBNAct(c4, 8, 1)
        self.conv8 = ConvBNAct(128, 64, 3)
        self.conv4 = ConvBNAct(64 + 8, 64, 3)
        self.classifier = nn.Conv2d(64, num_classes, 1)

    def forward(self, x4: torch.Tensor, x8: torch.Tensor, x16: torch.Tensor) -> torch.Tensor:
        x8 = self.head8(x8)
        x8 = self.conv8(x8 + resize_to(self.head16(x16), x8))
        x4 = self.head4(x4)
        return self.classifier(self.conv4(torch.cat([resize_to(x8, x4), x4], dim=1)))


class RegSeg(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W] (no training-only heads)."""

    def __init__(self, num_classes: int = 19, dilations: tuple[tuple[int, ...], ...] = EXP48_DILATIONS):
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, stride=2)
        self.body = RegSegBody(dilations)
        self.decoder = RegSegDecoder(num_classes, self.body.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(self.decoder(*self.body(self.stem(x))), x)


_OFFICIAL = "RolandGao/RegSeg@0f61c66dd9fa1bbf751a44732d9b333fdb1945b4"
_SPEED = dict(device="T4", backend="PyTorch", precision="fp16 (torch.cuda.amp autocast)")
_SPEED_NOTE = (
    "Batch 1; official benchmark.py (eval mode, amp autocast, torch.cuda.synchronize per iteration, 10 "
    "warm-up + 100 timed, mean). Input size from model.py {fn}; the abstract does not state it."
)

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="Rethink Dilated Convolution for Real-time Semantic Segmentation",
        venue="arXiv",
        year=2021,
        arxiv="2111.09957",
    ),
    official_code="https://github.com/RolandGao/RegSeg",
    implementation="segbench",
    num_classes=19,
    input_hw=(1024, 2048),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="params",
            value=3.334951,
            source=f"{_OFFICIAL}:model.py",
            note="Count of the official RegSeg('exp48_decoder26', 19): 3,334,951 (the model has no "
            "training-only heads). The paper's own figure (3.34M per a secondary table) could not be read "
            "at its source; the README's params plot (figs/miou_vs_params.png) places RegSeg near 3.3M.",
        ),
        Reported(
            metric="fps",
            value=37.0,
            source="paper abstract (current arXiv version)",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            note=_SPEED_NOTE.format(fn="cityscapes_speed_test") + " arXiv v1's abstract and the README say "
            "30 FPS for the same model and GPU.",
            **_SPEED,
        ),
        Reported(
            metric="miou",
            value=78.3,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="test",
            protocol="single-scale full resolution, no flip; trained on train+val, no ImageNet pretraining",
        ),
        Reported(
            metric="miou",
            value=78.85,
            source=f"{_OFFICIAL}:README.md",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="val",
            protocol="single-scale full resolution, no flip; trained on train only",
            note="Best of three released training runs (77.76, 78.85, 78.07; README comparison table); "
            "AblationStudies.md says evaluating the best model should give 78.85.",
        ),
        Reported(
            metric="fps",
            value=112.0,
            source="paper abstract (current arXiv version)",
            input_hw=(720, 960),
            dataset="CamVid",
            variant="the CamVid model (11 classes)",
            note=_SPEED_NOTE.format(fn="camvid_speed_test") + " arXiv v1's abstract says 70 FPS.",
            **_SPEED,
        ),
        Reported(
            metric="miou",
            value=80.9,
            source="paper abstract",
            input_hw=(720, 960),
            dataset="CamVid",
            split="test",
            protocol="single-scale at 720x960, no flip; trained on train+val from the Cityscapes trainval "
            "checkpoint (official configs/camvid_200epochs.yaml), no ImageNet pretraining",
            variant="the CamVid model (11 classes, trained on CamVid train+val)",
            note="CamVid has 11 classes; the card's model has 19.",
        ),
    ),
    notes="No training-only heads, so aux heads do not arise. FLOPs: the official repo counts them with "
    "fvcore (model.py calculate_flops, i.e. multiply-adds) at 1024x2048 and the README's FLOPs plot places "
    "RegSeg near 39 GFLOPs, but the exact paper figure could not be read at its source, so the card carries "
    "none. The paper's Cityscapes val mIoU (78.5 per a secondary table) could not be read at its source "
    "either; the val number above is the README's. FPS: the current arXiv abstract (as ar5iv renders it) "
    "gives 37 FPS Cityscapes / 112 FPS CamVid; v1 (Nov 2021) gave 30 / 70 for the same T4 and model.",
)


_BLOCK_RULES = (  # official DBlock names -> ours, first match wins
    (r"\.se\.conv1\.", ".se.reduce."),
    (r"\.se\.conv2\.", ".se.expand."),
    (r"\.conv1\.weight$", ".conv1.conv.weight"),
    (r"\.bn1\.", ".conv1.bn."),
    (r"\.conv2\.weight$", ".conv2.convs.0.weight"),  # single-rate block: one grouped conv
    (r"\.conv3\.weight$", ".conv3.conv.weight"),
    (r"\.bn3\.", ".conv3.bn."),
)


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official RegSeg("exp48_decoder26") checkpoint (its {'model': ...} wrapper unwrapped on reading) ->
    ours. Stem and decoder keys are the same; D-block keys are renamed; a stride-2 shortcut (average pool,
    then conv + BN) is our Sequential's second entry."""
    out = {}
    for key, value in state.items():
        if key.startswith("body."):
            for pattern, repl in _BLOCK_RULES:
                key, n = re.subn(pattern, repl, key)
                if n:
                    break
            if re.match(r"body\.(stage4|stage8\.0|stage16\.0)\.shortcut\.", key):  # the stride-2 blocks
                key = key.replace(".shortcut.", ".shortcut.1.")
        out[key] = value
    return out


@register_model(card=CARD, converter=convert_official)
def regseg(num_classes: int = 19, **kwargs) -> nn.Module:
    """RegSeg (exp48_decoder26). kwargs: dilations (the 1/16-stage rates, EXP48_DILATIONS)."""
    return RegSeg(num_classes=num_classes, **kwargs)
