"""BiSeNet (Yu, Wang, Peng, Gao, Yu, Sang, "BiSeNet: Bilateral Segmentation Network for Real-time Semantic
Segmentation", ECCV 2018, arXiv 1808.00897), with the Xception39 and ResNet-18 context paths.

Two paths meet in a Feature Fusion Module (FFM) at stride 8. The Spatial Path is three stride-2
conv-BN-ReLU layers (1/8, 128 channels). The Context Path is a fast-downsampling backbone whose 1/16 and
1/32 features each pass an Attention Refinement Module (ARM); global average pooling on the 1/32 tail adds
image-level context, and the two stages are merged U-shape style (only the last two, as the paper says).
Two auxiliary heads supervise the Context Path outputs (at 1/16 and 1/8) in training only. No copy of the
paper's full text was reachable here: its design was read from the abstract and full-text translations.

Official code: the first author's TorchSeg, ycszen/TorchSeg (now yu-changqian/TorchSeg) @ 62eeb15:
model/bisenet/cityscapes.bisenet.{X39,R18}[.speed]/network.py, furnace/seg_opr/seg_oprs.py (ARM, FFM) and
furnace/base_model/xception.py (Xception39). mmsegmentation links it as the official repo. The paper never
defines Xception39 or any channel width; everything below that the paper leaves open follows TorchSeg, and
with TorchSeg's widths our parameter counts equal its counts.

Xception39 (TorchSeg furnace/base_model/xception.py): 3x3 conv 3->8 stride 2 + BN-ReLU, 3x3 max-pool
stride 2, then three stages of 4, 8, 4 residual blocks (1/8, 1/16, 1/32) with bottleneck widths 16, 32, 64
and outputs 4x that (64, 128, 256). A block is three separable convs (the first strided; ReLU after the
first two), added to an identity or, in each stage's first block, to a strided separable-conv projection,
then ReLU. A separable conv is Xception's: 3x3 depthwise conv with no BN or ReLU, then 1x1 conv + BN
(+ ReLU). TorchSeg's README says its Xception39 was never pretrained on ImageNet in PyTorch, so its X39
results are trained from scratch; no Xception39 ImageNet weights were released.

Choices and deviations:
- Spatial Path: the paper has three layers, each a stride-2 conv + BN + ReLU. As in TorchSeg, they are
  7x7 (3->64), 3x3 (64->64) and 3x3 (64->64), followed by a 1x1 conv-BN-ReLU to 128 channels, a fourth
  layer that the paper does not mention.
- ARM: TorchSeg opens it with a 3x3 conv-BN-ReLU that brings the backbone stage to 128 channels, before
  the paper's global pool -> 1x1 conv -> BN -> sigmoid weighting. The paper's ARM has no such conv; we
  keep it, as the paper gives no widths and the 1/32 and 1/16 stages must meet at one width.
- Global context: pooled 1/32 features -> 1x1 conv-BN-ReLU (128). TorchSeg bilinearly upsamples this 1x1
  map to the 1/32 size before adding; we broadcast-add, which gives the same numbers without the resize.
- After each ARM sum, the map is bilinearly upsampled to the next stage and refined by a 3x3
  conv-BN-ReLU (TorchSeg; the paper does not detail the U-shape merge).
- FFM: concat -> 1x1 conv-BN-ReLU (256) -> squeeze-excitation weighting, output x + x * weight (as in
  the paper). The weighting is `zoo.layers.SqueezeExcite` with no channel reduction (TorchSeg's reduction=1)
  and, as in TorchSeg, no biases in its 1x1 convs.
- Heads (`SegHead`): main 3x3 conv-BN-ReLU 256->64 + 1x1 classifier; auxiliary 128->128 + classifier
  (TorchSeg's real-time ".speed" configs; its full-resolution R18 config widens the aux heads to 256; the
  paper gives no widths). Aux logits are upsampled to the input size, as in TorchSeg's accuracy configs.
- Upsampling is bilinear with align_corners=True, as in TorchSeg, to explicit target sizes (`resize_to`)
  where TorchSeg uses scale factors: the same numbers at sizes that are multiples of 32, and inputs whose
  sides are not still work. (Until parity was tested this used align_corners=False: 79% / 91% argmax
  agreement with TorchSeg for X39 / R18 with identical weights.)
- The ResNet-18 trunk is torchvision's (`zoo.backbones.ResNetFeatures(18)`), as TorchSeg's resnet18
  (deep_stem=False) is the standard one; ImageNet ResNet-18 weights load into `context_path.backbone`.
- The model does not resize its input. For the paper's speed numbers the authors resize 2048x1024 to
  1536x768 (first author in yu-changqian/TorchSeg#6); the harness feeds that size (card input_hw).
- The BNs after global pooling (ARM, global context) need batch size > 1 in training mode.

Official weights: `convert_official` (registered with both builders) maps a TorchSeg BiSeNet checkpoint
onto our keys, aux heads included (build with aux_head_channels=256 for the full-resolution R18 config).
Parity: tests/fixtures/parity/bisenet_{xception39,r18}.json, recorded from the full-resolution X39 and R18
configs' network.py at the commit above, match through `load_weights`.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from zoo.backbones import ResNetFeatures
from zoo.card import ModelCard, Paper, Reported
from zoo.layers import AttentionRefinement, ConvBNAct, FeatureFusion, SegHead, resize_to
from zoo.layers.init import kaiming_init_
from zoo.registry import register_model


class XceptionSepConv(nn.Sequential):
    """Xception's separable conv: 3x3 depthwise (no BN, no ReLU) -> 1x1 conv + BN (+ ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, act: bool = True):
        super().__init__()
        self.depthwise = ConvBNAct(
            in_channels,
            in_channels,
            3,
            stride,
            groups=in_channels,
            norm_layer=None,
            act_layer=None,
            bias=False,
        )
        self.pointwise = ConvBNAct(in_channels, out_channels, 1, act_layer=nn.ReLU if act else None)


class XceptionBlock(nn.Module):
    """Three separable convs (bottleneck `mid`, output 4 x mid) plus a shortcut, then ReLU."""

    expansion = 4

    def __init__(self, in_channels: int, mid_channels: int, stride: int = 1):
        super().__init__()
        out_channels = mid_channels * self.expansion
        self.residual = nn.Sequential(
            XceptionSepConv(in_channels, mid_channels, stride),
            XceptionSepConv(mid_channels, mid_channels),
            XceptionSepConv(mid_channels, out_channels, act=False),
        )
        # Only each stage's first (strided) block changes shape; TorchSeg projects with a separable conv.
        self.shortcut = (
            XceptionSepConv(in_channels, out_channels, stride, act=False) if stride > 1 else nn.Identity()
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.residual(x) + self.shortcut(x))


class Xception39(nn.Module):
    """forward(x) -> [f8, f16, f32]: 64, 128, 256 channels at strides 8, 16, 32 (TorchSeg's definition)."""

    def __init__(
        self, depths: tuple[int, ...] = (4, 8, 4), widths: tuple[int, ...] = (16, 32, 64), stem: int = 8
    ):
        super().__init__()
        self.stem = nn.Sequential(ConvBNAct(3, stem, 3, stride=2), nn.MaxPool2d(3, stride=2, padding=1))
        stages, in_channels = [], stem
        for depth, width in zip(depths, widths, strict=True):
            out_channels = width * XceptionBlock.expansion
            blocks = [XceptionBlock(in_channels, width, stride=2)]
            blocks += [XceptionBlock(out_channels, width) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.feature_info = [
            {"channels": w * XceptionBlock.expansion, "reduction": 2 ** (i + 3)} for i, w in enumerate(widths)
        ]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class ContextPath(nn.Module):
    """Backbone -> ARMs on its last two stages (1/16, 1/32) + global context -> 1/16 and 1/8 features."""

    def __init__(self, backbone: nn.Module, channels: int = 128):
        super().__init__()
        self.backbone = backbone
        c16, c32 = (info["channels"] for info in backbone.feature_info[-2:])
        self.global_context = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNAct(c32, channels, 1))
        self.arm32 = AttentionRefinement(c32, channels)
        self.arm16 = AttentionRefinement(c16, channels)
        self.refine32 = ConvBNAct(channels, channels, 3)
        self.refine16 = ConvBNAct(channels, channels, 3)

    def forward(self, x: torch.Tensor, out_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        f16, f32 = self.backbone(x)[-2:]
        # The pooled context is 1x1: broadcasting equals TorchSeg's bilinear upsampling of it.
        up32 = self.refine32(resize_to(self.arm32(f32) + self.global_context(f32), f16, align_corners=True))
        up16 = self.refine16(resize_to(self.arm16(f16) + up32, out_size, align_corners=True))
        return up32, up16


class BiSeNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with aux heads,
    (logits, [aux logits from the 1/16 and 1/8 Context Path outputs, each upsampled to H,W])."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int = 19,
        aux_heads: bool = True,
        channels: int = 128,
        head_channels: int = 64,
        aux_head_channels: int = 128,
    ):
        super().__init__()
        self.spatial_path = nn.Sequential(
            ConvBNAct(3, 64, 7, stride=2),
            ConvBNAct(64, 64, 3, stride=2),
            ConvBNAct(64, 64, 3, stride=2),
            ConvBNAct(64, channels, 1),
        )
        self.context_path = ContextPath(backbone, channels)
        self.ffm = FeatureFusion(2 * channels, 2 * channels, se_bias=False)
        self.head = SegHead(2 * channels, head_channels, num_classes)
        self.aux_heads = (
            nn.ModuleList(SegHead(channels, aux_head_channels, num_classes) for _ in range(2))
            if aux_heads
            else None
        )
        kaiming_init_(self, mode="fan_in", skip="context_path.backbone")  # TorchSeg's init

    def forward(self, x: torch.Tensor):
        spatial = self.spatial_path(x)
        ctx16, ctx8 = self.context_path(x, spatial.shape[-2:])
        logits = resize_to(self.head(self.ffm(spatial, ctx8)), x, align_corners=True)
        if self.training and self.aux_heads is not None:
            aux = [
                resize_to(h(f), x, align_corners=True)
                for h, f in zip(self.aux_heads, (ctx16, ctx8), strict=True)
            ]
            return logits, aux
        return logits


_TORCHSEG = "ycszen/TorchSeg@62eeb159aee77972048d9d7688a28249d3c56735"
_PAPER = Paper(
    title="BiSeNet: Bilateral Segmentation Network for Real-time Semantic Segmentation",
    venue="ECCV",
    year=2018,
    arxiv="1808.00897",
)
_OFFICIAL = "https://github.com/ycszen/TorchSeg/tree/master/model/bisenet"
_CS = "Cityscapes"
_RT = (
    "Real-time setting: the network runs on the 2048x1024 image resized to 1536x768 "
    "(yu-changqian/TorchSeg#6, first author); single scale."
)
_README_NOTE = (
    "A 'BiSeNet(paper)' row of the official repo's README (trained on train_fine with OHEM); the paper's "
    "own tables could not be read here."
)
_NOTES_COMMON = (
    "Params: no copy of the paper's tables could be read here, so the params figure is the official "
    "code's count without the aux heads (ours is equal). A user of the official "
    "repo quotes the paper's Xception39 figure as 5.8M against 1.54M counted, and another replies that "
    "the paper seems to give size on disk (yu-changqian/TorchSeg#30); secondary tables give 49M for "
    "ResNet-18. Both are close to the official counts' fp32 size in MiB (5.9, 49.2); unverified, so left "
    "out. FLOPs: the paper's FLOPs table (640x360 input, per a translation) could not be read; none is "
    "carried. Nor are CamVid/COCO-Stuff results or the speed table at other input sizes. The official "
    "'.speed' configs score mIoU at 1/8 resolution (labels downsampled 8x; yu-changqian/TorchSeg#51)."
)

CARD_X39 = ModelCard(
    group="realtime",
    paper=_PAPER,
    official_code=_OFFICIAL,
    implementation="segbench",
    num_classes=19,
    input_hw=(768, 1536),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="params",
            value=1.541963,
            source=f"{_TORCHSEG}:model/bisenet/cityscapes.bisenet.X39.speed/network.py",
            note="Not a paper number. Count of the official real-time network built for inference "
            "(is_training off: no auxiliary heads), 19 classes; 1,842,289 with its two aux heads.",
        ),
        Reported(
            metric="fps",
            value=105.0,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset=_CS,
            device="NVIDIA Titan XP",
            note="'for a 2048x1024 input'; the network runs at 1536x768 (first author, "
            "yu-changqian/TorchSeg#6). The abstract names no backbone: attributed to Xception39, whose "
            "Cityscapes val mIoU is 69 against 74.8 for ResNet-18 (official README). Backend and "
            "precision are not stated in any source read here.",
        ),
        Reported(
            metric="miou",
            value=68.4,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset=_CS,
            split="test",
            protocol=_RT,
            note="Backbone attributed as for the fps entry.",
        ),
        Reported(
            metric="miou",
            value=69.0,
            source=f"{_TORCHSEG}:README.md",
            input_hw=(1024, 2048),
            dataset=_CS,
            split="val",
            protocol=_RT,
            note=_README_NOTE + " Real-time Methods table.",
        ),
        Reported(
            metric="miou",
            value=70.1,
            source=f"{_TORCHSEG}:README.md",
            input_hw=(1024, 2048),
            dataset=_CS,
            split="val",
            protocol="Non-real-time setting (full resolution), single scale",
            note=_README_NOTE + " Non-real-time Methods table, 'Mean IoU(ss)'.",
        ),
        Reported(
            metric="miou",
            value=72.0,
            source=f"{_TORCHSEG}:README.md",
            input_hw=(1024, 2048),
            dataset=_CS,
            split="val",
            protocol="Non-real-time setting (full resolution), multi-scale + flip",
            note=_README_NOTE + " Non-real-time Methods table, 'Mean IoU(msf)'.",
        ),
    ),
    notes="Official code is the first author's TorchSeg (the paper links none; mmsegmentation calls it the "
    "official repo). Its Xception39 definition is ours; its ImageNet weights were never released, and its "
    "README's own X39 results (68.51 real-time, 70.32 ss val) are trained from scratch. " + _NOTES_COMMON,
)

CARD_R18 = ModelCard(
    group="realtime",
    paper=_PAPER,
    official_code=_OFFICIAL,
    implementation="segbench",
    num_classes=19,
    input_hw=(768, 1536),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="params",
            value=12.894163,
            source=f"{_TORCHSEG}:model/bisenet/cityscapes.bisenet.R18.speed/network.py",
            note="Not a paper number. Count of the official real-time network built for inference "
            "(is_training off: no auxiliary heads), 19 classes; 13,194,489 with its two aux heads "
            "(13,494,777 in the full-resolution R18 config, whose aux heads are 256 wide).",
        ),
        Reported(
            metric="miou",
            value=74.8,
            source=f"{_TORCHSEG}:README.md",
            input_hw=(1024, 2048),
            dataset=_CS,
            split="val",
            protocol=_RT,
            note=_README_NOTE + " Real-time Methods table.",
        ),
        Reported(
            metric="miou",
            value=76.21,
            source=f"{_TORCHSEG}:README.md",
            input_hw=(1024, 2048),
            dataset=_CS,
            split="val",
            protocol="Non-real-time setting (full resolution), single scale",
            note=_README_NOTE + " Non-real-time Methods table, 'Mean IoU(ss)'.",
        ),
        Reported(
            metric="miou",
            value=78.57,
            source=f"{_TORCHSEG}:README.md",
            input_hw=(1024, 2048),
            dataset=_CS,
            split="val",
            protocol="Non-real-time setting (full resolution), multi-scale + flip",
            note=_README_NOTE + " Non-real-time Methods table, 'Mean IoU(msf)'.",
        ),
    ),
    notes="Official code is the first author's TorchSeg (the paper links none; mmsegmentation calls it the "
    "official repo). The abstract's 105 FPS / 68.4 test belong to Xception39. The ResNet-18 model's "
    "Cityscapes test mIoU (74.7 in a secondary compilation) and its FPS could not be read at source and "
    "are left out. " + _NOTES_COMMON,
)


_RULES = (  # TorchSeg key (after any `module.`) -> ours; first match wins
    (r"^spatial_path\.conv_7x7\.", "spatial_path.0."),
    (r"^spatial_path\.conv_3x3_1\.", "spatial_path.1."),
    (r"^spatial_path\.conv_3x3_2\.", "spatial_path.2."),
    (r"^spatial_path\.conv_1x1\.", "spatial_path.3."),
    (r"^global_context\.", "context_path.global_context."),
    (r"^arms\.0\.conv_3x3\.", "context_path.arm32.conv."),  # arms[0] refines the 1/32 stage
    (r"^arms\.1\.conv_3x3\.", "context_path.arm16.conv."),
    (r"^arms\.0\.channel_attention\.", "context_path.arm32.attention."),
    (r"^arms\.1\.channel_attention\.", "context_path.arm16.attention."),
    (r"^refines\.0\.", "context_path.refine32."),
    (r"^refines\.1\.", "context_path.refine16."),
    (r"^ffm\.conv_1x1\.", "ffm.conv."),
    (r"^ffm\.channel_attention\.1\.conv\.", "ffm.se.reduce."),
    (r"^ffm\.channel_attention\.2\.conv\.", "ffm.se.expand."),
    (r"^heads\.2\.", "head."),  # main head; heads 0 and 1 are the aux heads on the 1/16 and 1/8 outputs
    (r"^heads\.([01])\.", r"aux_heads.\1."),
)
_HEAD_RULES = ((r"\.conv_3x3\.", ".conv."), (r"\.conv_1x1\.", ".cls."))
_XCEPTION_RULES = (  # furnace/base_model/xception.py, after context_path. -> context_path.backbone.
    (r"\.conv1\.(conv|bn)\.", r".stem.0.\1."),  # the stem's ConvBnRelu (ResNet's conv1 is a bare conv)
    (r"\.layer(\d)\.", lambda m: f".stages.{int(m[1]) - 1}."),
    (r"\.residual_branch\.", ".residual."),
    (r"\.proj\.", ".shortcut."),
    (r"\.conv1\.weight$", ".depthwise.conv.weight"),
    (r"\.point_wise_cbr\.", ".pointwise."),
)


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """TorchSeg BiSeNet checkpoint (its engine saves {'model': state_dict, ...}, unwrapped on reading) ->
    ours, for both context paths (TorchSeg's ResNet-18 has torchvision's names). The aux heads (heads.0,
    heads.1) map onto `aux_heads`: 128 wide in the X39 configs and R18.speed, 256 in the full-resolution R18
    config (build that with aux_head_channels=256)."""
    xception = any(".point_wise_cbr." in k for k in state)
    out = {}
    for key, value in state.items():
        if key.startswith("context_path."):
            key = key.replace("context_path.", "context_path.backbone.", 1)
            for pattern, repl in _XCEPTION_RULES if xception else ():
                key = re.sub(pattern, repl, key)
        else:
            for pattern, repl in _RULES:
                key, n = re.subn(pattern, repl, key)
                if n:
                    break
            if key.startswith(("head.", "aux_heads.")):
                for pattern, repl in _HEAD_RULES:
                    key = re.sub(pattern, repl, key)
        out[key] = value
    return out


@register_model(card=CARD_X39, converter=convert_official)
def bisenet_xception39(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    """BiSeNet with TorchSeg's Xception39 context path. kwargs: channels, head_channels, aux_head_channels."""
    return BiSeNet(Xception39(), num_classes=num_classes, aux_heads=aux_heads, **kwargs)


@register_model(card=CARD_R18, converter=convert_official)
def bisenet_r18(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    """BiSeNet with a torchvision ResNet-18 context path. kwargs as for bisenet_xception39."""
    return BiSeNet(ResNetFeatures(18), num_classes=num_classes, aux_heads=aux_heads, **kwargs)
