"""SFNet with a ResNet-18 encoder: Li, You, Zhu, Zhao, Yang, Yang, Tan, Tong, "Semantic Flow for Fast and
Accurate Scene Parsing", ECCV 2020, arXiv 2002.10120.

Official code: lxtGH/SFSegNets @ ba475bafbfde7ce0caf94b3d839574ab0b9b953a, network/sfnet_resnet.py
(`DeepR18_SF_deeply` -> `AlignNetResNet(trunk='resnet-18-deep', variant='D')` with `UperNetAlignHead`),
network/nn/operators.py (`AlignedModule`, `PSPModule`), network/resnet_d.py (the deep-stem ResNet-18) and
scripts/cityscacpes/train_cityscapes_sfnet_res18.sh (the Cityscapes model). An independent
re-implementation that computes the official function: tests/fixtures/parity/sfnet_r18.json checks it, and
`convert_official` loads the released checkpoints ({'state_dict', 'optimizer', ...} files of the
DataParallel model) strictly, the `+dsn` one into `aux_heads=True`.

Architecture (official code): ResNet-18 encoder -> PPM on the stride-32 features (bins 1, 2, 3, 6; each bin a
1x1 conv to 128 + BN without ReLU; the four branches then the input concatenated, fused by 1x1 conv-BN-ReLU
to 128). FPN
top-down path at 128 channels: each of layer3, layer2, layer1 gets a 1x1 conv(+bias)-BN-ReLU lateral; a Flow
Alignment Module (FAM) warps the coarser path onto the lateral's grid, the two are summed, and a 3x3
conv-BN-ReLU gives that level's output. The outputs of the four levels (the PPM's included) are upsampled
to stride 4, concatenated (512 channels) and classified by 3x3 conv-BN-ReLU (128) + 1x1 conv; the logits
are upsampled to the input size.

FAM: both inputs are reduced by 1x1 convs (128 -> 64, no bias); the reduced coarse map is bilinearly
upsampled, concatenated with the reduced fine map (coarse first) and a 3x3 conv (no bias) predicts a
2-channel semantic flow. The *unreduced* coarse map is then sampled with `grid_sample` (bilinear,
align_corners=True, zero padding) at a base grid spanning [-1, 1] over the fine map's pixels plus
flow / (W, H). The base grid is built from tensor shapes with `linspace`/`meshgrid`, no data-dependent
control flow.

Encoder, faithful to the official code rather than to torchvision:
- Deep stem (`deep_stem=True`): three 3x3 convs (3 -> 64 stride 2, 64 -> 64, 64 -> 128) with BN-ReLU between
  them, then BN-ReLU and max-pool, so layer1's first unit takes 128 channels and gets a 1x1 projection
  shortcut. The authors' ImageNet weights (resnet18-deep-inplane128) are for this trunk:
  `zoo.backbones.ResNetFeatures(18, deep_stem=True)`; `deep_stem=False` keeps torchvision's 7x7 stem
  (148,480 fewer parameters).
- `variant='D'` in the official code sets dilation 2 on both 3x3 `conv2`s of layer3 and dilation 4 on
  layer4's, without removing any stride: the output stride stays 32. We do the same (no change in params
  or MACs; it enlarges the receptive field).

Every bilinear resize uses align_corners=True, as the official code does everywhere (its `Upsample`, the
PPM, the FAM and the warp, whose [-1, 1] linspace base grid assumes it).

Deviations and why:
- The PPM's Dropout2d(0.1) after the fusion is training-only and left out.
- Deep supervision (`aux_heads=True`): the official `fpn_dsn` heads (3x3 conv(+bias)-BN-ReLU, dropout,
  1x1 conv) on the three fused FPN levels before their 3x3 output conv. Off by default because the
  official Cityscapes ResNet-18 script (`DeepR18_SF_deeply`) trains without them; the `_dsn` script and
  `DeepR18_SFV2_deeply_dsn_FA_Atten` use them.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torch.nn import functional as F

from zoo.backbones import ResNetFeatures
from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, PyramidPooling, SegHead, resize_to
from zoo.registry import register_model


def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `x` at the flow's grid: a [-1, 1] base grid over flow's H x W plus flow / (W, H)."""
    n, _, h, w = flow.shape
    ys = torch.linspace(-1.0, 1.0, h, dtype=flow.dtype, device=flow.device)
    xs = torch.linspace(-1.0, 1.0, w, dtype=flow.dtype, device=flow.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack((gx, gy), dim=-1).unsqueeze(0)  # (1, H, W, 2), x first as grid_sample expects
    grid = base + flow.permute(0, 2, 3, 1) / flow.new_tensor([w, h])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class FlowAlignment(nn.Module):
    """Flow Alignment Module: predicts a semantic flow from the fine and (upsampled) coarse maps and warps
    the coarse map onto the fine map's grid."""

    def __init__(self, channels: int = 128, mid_channels: int = 64):
        super().__init__()
        self.down_high = nn.Conv2d(channels, mid_channels, 1, bias=False)
        self.down_low = nn.Conv2d(channels, mid_channels, 1, bias=False)
        self.flow = nn.Conv2d(2 * mid_channels, 2, 3, padding=1, bias=False)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        reduced = resize_to(self.down_high(coarse), fine, align_corners=True)
        flow = self.flow(torch.cat([reduced, self.down_low(fine)], dim=1))
        return flow_warp(coarse, flow)


def _dsn_head(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        ConvBNAct(channels, channels, 3, bias=True), nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, 1)
    )


class SFNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with deep supervision,
    (logits, [aux logits of the stride-16, 8, 4 FPN levels, each upsampled to H, W]). `aux_heads[i]`
    supervises the level of `lateral[i]`, as the official `dsn[i]`."""

    def __init__(
        self,
        num_classes: int = 19,
        deep_stem: bool = True,
        fpn_channels: int = 128,
        ppm_bins: tuple[int, ...] = (1, 2, 3, 6),
        aux_heads: bool = False,
    ):
        super().__init__()
        self.backbone = ResNetFeatures(18, deep_stem=deep_stem)
        for layer, rate in ((self.backbone.layer3, 2), (self.backbone.layer4, 4)):
            for unit in layer:  # the official variant 'D': dilated conv2, strides kept
                unit.conv2.dilation = unit.conv2.padding = (rate, rate)
        in_channels = [info["channels"] for info in self.backbone.feature_info]  # 64, 128, 256, 512
        c = fpn_channels
        self.ppm = PyramidPooling(
            in_channels[3], c, ppm_bins, act_layer=None, input_first=False, align_corners=True
        )
        self.ppm_fuse = ConvBNAct(self.ppm.out_channels, c, 1)
        self.lateral = nn.ModuleList(ConvBNAct(ch, c, 1, bias=True) for ch in in_channels[:3])
        self.align = nn.ModuleList(FlowAlignment(c, c // 2) for _ in in_channels[:3])
        self.fpn_out = nn.ModuleList(ConvBNAct(c, c, 3) for _ in in_channels[:3])
        self.head = SegHead(4 * c, c, num_classes)
        self.aux_heads = nn.ModuleList(_dsn_head(c, num_classes) for _ in range(3)) if aux_heads else None

    def forward(self, x: torch.Tensor):
        feats = self.backbone(x)
        f = self.ppm_fuse(self.ppm(feats[3]))
        pyramid, aux = [f], []
        for i in (2, 1, 0):  # top-down: layer3, layer2, layer1
            lateral = self.lateral[i](feats[i])
            f = lateral + self.align[i](lateral, f)
            if self.training and self.aux_heads is not None:
                aux.append(resize_to(self.aux_heads[i](f), x, align_corners=True))
            pyramid.append(self.fpn_out[i](f))
        finest = pyramid[-1]
        coarser = [resize_to(p, finest, align_corners=True) for p in reversed(pyramid[:-1])]
        logits = resize_to(self.head(torch.cat([finest, *coarser], dim=1)), x, align_corners=True)
        return (logits, aux) if aux else logits


_CODE = "lxtGH/SFSegNets@ba475bafbfde7ce0caf94b3d839574ab0b9b953a"

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="Semantic Flow for Fast and Accurate Scene Parsing",
        venue="ECCV",
        year=2020,
        arxiv="2002.10120",
    ),
    official_code="https://github.com/lxtGH/SFSegNets",
    implementation="segbench (torchvision 0.29 ResNet-18 trunk with the official deep stem)",
    num_classes=19,
    input_hw=(1024, 2048),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="params",
            value=12.869715,
            source=f"{_CODE}:network/sfnet_resnet.py",
            note="Not read in the paper: the count of the official `DeepR18_SF_deeply` model (19 classes, "
            "no DSN heads), 12,869,715, counted by us by building the official code (with the DSN heads: "
            "13,320,588). The paper's own params figure could not be read here.",
        ),
        Reported(
            metric="miou",
            value=79.0,
            source=f"{_CODE}:README.md",
            dataset="Cityscapes",
            split="val",
            protocol="not stated in the README",
            note="Released checkpoint 'resnet18' (the README gives 78.4 for one trained without balanced "
            "(class-uniform) sampling, which the training script enables).",
        ),
        Reported(
            metric="miou",
            value=79.9,
            source=f"{_CODE}:README.md",
            dataset="Cityscapes",
            split="val",
            protocol="not stated in the README",
            variant="pre-trained on Mapillary Vistas, then Cityscapes",
            note="Released checkpoint 'resnet18 + map': pre-trained on Mapillary Vistas first.",
        ),
    ),
    notes=(
        "The paper's abstract claims 80.4% mIoU on Cityscapes at 26 FPS without naming the backbone or "
        "split; lxtGH/SFSegNets#42 ties the 26 FPS to SFNet(ResNet-18) and says it was measured with "
        "TensorRT. As the paper body (tables, device, FLOPs) could not be read here, those numbers are "
        "not recorded; the params figure is the official code's count and the mIoUs are the official "
        "README's. A third-party PaddleSeg reproduction reports 12.87M params and 243.32 GFLOPs for this "
        "model (not verified, not recorded). With deep_stem=False (torchvision's 7x7 stem) the model has "
        "148,480 fewer parameters. The released checkpoints load through the model's converter, and the "
        "forward matches the official code's (parity manifest, lxtGH/SFSegNets@ba475ba)."
    ),
)


# Official AlignNetResNet state_dict prefixes -> ours (first match wins).
_RENAMES = (
    ("layer0.0.", "backbone.conv1."),
    ("layer0.1.", "backbone.bn1."),
    ("head.ppm.bottleneck.0.", "ppm_fuse.conv."),
    ("head.ppm.bottleneck.1.", "ppm_fuse.bn."),
    ("head.conv_last.0.0.", "head.conv.conv."),
    ("head.conv_last.0.1.", "head.conv.bn."),
    ("head.conv_last.1.", "head.cls."),
)
_INDEXED = (  # official (with the index as {}) -> ours
    (r"head\.ppm\.stages\.(\d+)\.1\.", "ppm.stages.{}.1.conv."),
    (r"head\.ppm\.stages\.(\d+)\.2\.", "ppm.stages.{}.1.bn."),
    (r"head\.fpn_in\.(\d+)\.0\.", "lateral.{}.conv."),
    (r"head\.fpn_in\.(\d+)\.1\.", "lateral.{}.bn."),
    (r"head\.fpn_out\.(\d+)\.0\.0\.", "fpn_out.{}.conv."),
    (r"head\.fpn_out\.(\d+)\.0\.1\.", "fpn_out.{}.bn."),
    (r"head\.fpn_out_align\.(\d+)\.down_h\.", "align.{}.down_high."),
    (r"head\.fpn_out_align\.(\d+)\.down_l\.", "align.{}.down_low."),
    (r"head\.fpn_out_align\.(\d+)\.flow_make\.", "align.{}.flow."),
    (r"head\.dsn\.(\d+)\.0\.", "aux_heads.{}.0.conv."),
    (r"head\.dsn\.(\d+)\.1\.", "aux_heads.{}.0.bn."),
    (r"head\.dsn\.(\d+)\.4\.", "aux_heads.{}.2."),
)


def convert_official(state: dict) -> dict:
    """Official SFNet checkpoint (network/sfnet_resnet.py AlignNetResNet, ResNet-18 deep) -> ours."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        for official, ours in _RENAMES:
            if key.startswith(official):
                key = ours + key.removeprefix(official)
                break
        else:
            for pattern, ours in _INDEXED:
                if match := re.match(pattern, key):
                    key = ours.format(match[1]) + key[match.end() :]
                    break
            else:
                key = f"backbone.{key}" if key.startswith("layer") else key
        out[key] = value
    return out


@register_model(card=CARD, converter=convert_official)
def sfnet_r18(num_classes: int = 19, **kwargs) -> nn.Module:
    return SFNet(num_classes=num_classes, **kwargs)
