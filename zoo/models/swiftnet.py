"""SwiftNetRN-18, single scale: Oršić, Krešo, Bevandić, Šegvić, "In Defense of Pre-trained ImageNet
Architectures for Real-time Semantic Segmentation of Road-driving Images", CVPR 2019, arXiv 1903.08469.

Official code: orsic/swiftnet @ 2b88990e1ab674e8ef7cb533a1d8d49ef34ac93d, models/resnet/resnet_single_scale.py
(encoder, SPP, upsampling path), models/util.py (`_BNReluConv`, `_Upsample`, `SpatialPyramidPooling`),
models/semseg.py (logits) and configs/rn18_single_scale.py (the Cityscapes model). Read for understanding;
this is an independent re-implementation.

Architecture (official code): a ResNet-18 encoder (`zoo.backbones.ResNetFeatures(18)`); SPP on the stride-32
features; three light upsampling modules, each adding a bottlenecked lateral skip (1x1) from layer3, layer2,
layer1 to the bilinearly upsampled path and blending with a 3x3 conv (128 channels throughout); a 1x1
classifier at stride 4; logits bilinearly upsampled to the input size. Every decoder unit is pre-activation,
BN -> ReLU -> conv (`_BNReluConv`). The SPP, with the official defaults that configs/rn18_single_scale.py
keeps: BN-ReLU-1x1 bottleneck 512 -> 128; `num_levels=3` levels of 128 // 3 = 42 channels on grids 8, 4,
2 (`spp_grids=(8, 4, 2, 1)`, but only the first three are used), each grid with g rows and round(g * W / H)
columns (`square_grid=False`); concatenated with the bottleneck (254 channels), fused by BN-ReLU-1x1 to 128.

Faithful details worth knowing:
- The lateral skips and the SPP input are the *pre-ReLU* sums of the last residual unit of each stage (the
  official BasicBlock returns both), so the decoder's leading BN-ReLU sees the signed features. We compute
  them from `ResNetFeatures`' own modules (`_stage`), so the trunk stays torchvision's and its ImageNet
  weights load by key.
- Bilinear resizes use align_corners=False, as the official `upsample`.

Deviations and why:
- No input normalisation inside the model (the official encoder subtracts its Cityscapes mean and divides by
  its std on 0-255 input); the harness feeds normalised tensors, as for every other model.
- No auxiliary heads: the paper and the official single-scale config train with one cross-entropy on the
  final logits. (`efficient=True` gradient checkpointing in the official code is a training memory trick.)

Official weights: `convert_official` (registered with the builder) maps the authors' checkpoint onto our
keys and drops the encoder's normalisation buffers, so a model loaded with it expects what the official
encoder computes from 0-255 RGB: (x - mean) / std with configs/rn18_single_scale.py's mean (73.15, 82.90,
72.3) and std (47.67, 48.49, 47.73). Parity: tests/fixtures/parity/swiftnet.json, recorded from the
official code at the commit above (normalisation buffers set to 0 and 1), matches through `load_weights`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from zoo.backbones import ResNetFeatures
from zoo.card import ModelCard, Paper, Reported
from zoo.layers import resize_to
from zoo.registry import register_model


class BNReLUConv(nn.Sequential):
    """Pre-activation unit: BatchNorm -> ReLU -> conv ('same' padding), the official `_BNReluConv`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class SpatialPyramidPooling(nn.Module):
    """BN-ReLU-1x1 bottleneck, then average pooling to grids of g rows x round(g * W / H) columns (the grid
    follows the feature map's aspect ratio), BN-ReLU-1x1 per level, upsampled and concatenated with the
    bottleneck, fused by a BN-ReLU-1x1."""

    def __init__(
        self,
        in_channels: int = 512,
        bottleneck_channels: int = 128,
        level_channels: int = 42,
        out_channels: int = 128,
        grids: tuple[int, ...] = (8, 4, 2),
    ):
        super().__init__()
        self.grids = grids
        self.bottleneck = BNReLUConv(in_channels, bottleneck_channels, 1)
        self.levels = nn.ModuleList(BNReLUConv(bottleneck_channels, level_channels, 1) for _ in grids)
        self.fuse = BNReLUConv(bottleneck_channels + len(grids) * level_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bottleneck(x)
        h, w = x.shape[-2:]
        pyramid = [x]
        for g, level in zip(self.grids, self.levels, strict=True):
            # Shape arithmetic only (constant under tracing); round() is Python's, as in the official code.
            pooled = F.adaptive_avg_pool2d(x, (g, max(1, round(g * int(w) / int(h)))))
            pyramid.append(resize_to(level(pooled), x))
        return self.fuse(torch.cat(pyramid, dim=1))


class UpsampleBlend(nn.Module):
    """Light upsampling module: BN-ReLU-1x1 bottleneck on the lateral skip, bilinear upsampling of the coarse
    path to the skip's size, sum, BN-ReLU-3x3 blending conv."""

    def __init__(self, skip_channels: int, channels: int = 128):
        super().__init__()
        self.bottleneck = BNReLUConv(skip_channels, channels, 1)
        self.blend = BNReLUConv(channels, channels, 3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        skip = self.bottleneck(skip)
        return self.blend(resize_to(x, skip) + skip)


def _stage(stage: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a torchvision ResNet stage; return (output, pre-ReLU sum of its last BasicBlock)."""
    for unit in stage[:-1]:
        x = unit(x)
    last = stage[-1]
    shortcut = x if last.downsample is None else last.downsample(x)
    pre = last.bn2(last.conv2(last.relu(last.bn1(last.conv1(x))))) + shortcut
    return last.relu(pre), pre


class SwiftNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W] for any H, W."""

    def __init__(self, num_classes: int = 19, channels: int = 128):
        super().__init__()
        self.backbone = ResNetFeatures(18)
        skip_channels = [info["channels"] for info in self.backbone.feature_info]  # 64, 128, 256, 512
        self.spp = SpatialPyramidPooling(skip_channels[3], channels, channels // 3, channels)
        # Deepest first: blends the layer3, layer2, layer1 skips in turn.
        self.upsample = nn.ModuleList(UpsampleBlend(c, channels) for c in reversed(skip_channels[:3]))
        self.logits = BNReLUConv(channels, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        y = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        skips = []
        for stage in (b.layer1, b.layer2, b.layer3, b.layer4):
            y, pre = _stage(stage, y)
            skips.append(pre)
        y = self.spp(skips[3])
        for up, skip in zip(self.upsample, reversed(skips[:3]), strict=True):
            y = up(y, skip)
        return resize_to(self.logits(y), x)


_CODE = "orsic/swiftnet@2b88990e1ab674e8ef7cb533a1d8d49ef34ac93d"

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="In Defense of Pre-trained ImageNet Architectures for Real-time Semantic Segmentation of "
        "Road-driving Images",
        venue="CVPR",
        year=2019,
        arxiv="1903.08469",
    ),
    official_code="https://github.com/orsic/swiftnet",
    implementation="segbench (torchvision 0.29 ResNet-18 trunk)",
    num_classes=19,
    input_hw=(1024, 2048),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="params",
            value=11.797071,
            source=f"{_CODE}:configs/rn18_single_scale.py",
            note="Count of the official model that this config builds (SemsegModel(resnet18(...), 19 "
            "classes), which the config prints via get_n_params): 11,797,071, counted by us by building the "
            "official code. It rounds to the 11.8M that secondary sources quote from the paper's table "
            "(orsic/swiftnet#22; zh320/realtime-semantic-segmentation-pytorch README); we could not read "
            "the paper's table itself.",
        ),
        Reported(
            metric="fps",
            value=39.9,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            device="GTX 1080 Ti",
            note="'achieves 39.9 Hz on 1024x2048 images on GTX1080Ti'. Backend and precision are not stated "
            "in the abstract (not verified in the paper body).",
        ),
        Reported(
            metric="miou",
            value=75.5,
            source="paper abstract",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="test",
            protocol="1024x2048 input; test-time augmentation not stated in the abstract",
            note="The SwiftNetRN-18 test submission; its training data (e.g. train+val) is not stated there.",
        ),
    ),
    notes=(
        "Only the paper's abstract could be read here, so the card reports its numbers (75.5% Cityscapes "
        "test, 39.9 Hz at 1024x2048 on a GTX 1080 Ti) and the official code's parameter count. Secondary "
        "sources quote further paper-table values (11.8M params, 104 GFLOPs at 1024x2048, 75.4% val) "
        "that we could not verify at the source, so they are left out; for comparison, fvcore counts "
        "104.13 GMACs for our model at 1024x2048, which suggests the 104 'GFLOPs' are multiply-adds. "
        "Our model loads the official state dict (up to key names) and reproduces the official forward "
        "exactly (checked with random weights at 360x480, 200x328 and 256x512)."
    ),
)


_RENAMES = (  # official key prefix -> ours, first match wins
    ("backbone.spp.spp.spp_bn.", "spp.bottleneck."),
    ("backbone.spp.spp.spp_fuse.", "spp.fuse."),
    ("backbone.spp.spp.spp", "spp.levels."),
    ("backbone.upsample.", "upsample."),
)


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official SemsegModel(resnet18(...)) checkpoint (weights/rn18_single_scale/model_best.pt) -> ours.

    The encoder's normalisation buffers (backbone.img_mean, img_std, img_scale) are dropped: our model takes
    normalised input (see the module docstring); `_BNReluConv`'s norm is our bn, blend_conv our blend."""
    out = {}
    for key, value in state.items():
        if key.startswith(("backbone.img_mean", "backbone.img_std", "backbone.img_scale")):
            continue
        for old, new in _RENAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        if key.startswith(("spp.", "upsample.", "logits.")):
            key = key.replace(".norm.", ".bn.").replace(".blend_conv.", ".blend.")
        out[key] = value
    return out


@register_model(card=CARD, converter=convert_official)
def swiftnet(num_classes: int = 19, **kwargs) -> nn.Module:
    return SwiftNet(num_classes=num_classes, **kwargs)
