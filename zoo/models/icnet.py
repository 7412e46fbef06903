"""ICNet (Zhao, Qi, Shen, Shi, Jia, "ICNet for Real-Time Semantic Segmentation on High-Resolution Images",
ECCV 2018, arXiv 1704.08545).

Official code (Caffe, inference only): hszhao/ICNet @ dd2bf78ff3f9ff05f6d35c40a3ee216158d9e892,
evaluation/prototxt/icnet_cityscapes_bnnomerge.prototxt (the released Cityscapes model, BN unmerged) and
evaluation/eval_sub.m. We build that network layer for layer.

Image cascade: the 1/2-resolution image runs through the first stages of a compressed, dilated PSPNet50
(3x3 deep stem, conv2_x, conv3_1) to stride 16 of the full image. Its output, bilinearly halved, is the
1/4 branch, which continues through conv3_2..conv5_3 (conv4_x dilated 2, conv5_x dilated 4, no more striding:
stride 32), a pyramid pooling whose bins (1, 2, 3, 6) are average-pooled, upsampled and *summed* with the
input (no convs), and a 1x1 ConvBNReLU to 256. The full-resolution image goes through three strided 3x3
ConvBNReLU (32, 32, 64; stride 8). Two cascade feature fusion units (CFF) merge them: the low-resolution
feature is upsampled x2 and passed through a 3x3 dilation-2 conv + BN, the high-resolution one through a
1x1 conv + BN, summed, ReLU. A 1x1 classifier runs on the CFF output upsampled to stride 4, and the logits are
upsampled to the input size. Training-only (cascade label guidance): a 1x1 classifier on each CFF's
upsampled low-resolution input (strides 16 and 8): sub4_out and sub24_out of the reference
re-implementation hellochick/ICNet-tensorflow @ 0b8d28b4eed3de694d613a911e51895287cb2cae, model.py (ICNet_BN),
since the authors did not release their training net.

Model compression: the released model is PSPNet50 with every kernel count halved (stem 32-32-64, bottleneck
widths 32/64/128/256, stage outputs 128/256/512/1024, the pyramid output reduced to 256), which is why it has
6.7 M parameters and not a full ResNet-50's 23.5 M. `width=64` builds the uncompressed trunk. This is also
why the trunk is written here and not taken from `zoo.backbones.ResNetFeatures`: torchvision's ResNet-50 has
a fixed width and a 7x7 stem.

Deviations:
- Caffe's PSPNet ResNet strides on the first 1x1 conv of a bottleneck (kept here), so this trunk's layout is
  not torchvision's, and ImageNet torchvision weights do not apply (the paper initialises from PSPNet50).
- Resizes: Caffe's Interp (align_corners-style bilinear, zoom 2 maps n to 2n - 1) with the official
  1025x2049 input; we resize every branch to explicit sizes with `resize_to` (align_corners=False): the 1/2
  image and the 1/4 branch to ceil(n/2), low-resolution features to the high-resolution feature's size, the
  classifier input to ceil(H/4) x ceil(W/4). Any input size works.
- Pyramid pooling uses adaptive average pooling; the prototxt hard-codes kernels and strides for its 33x65
  map (equal for bins 1, 2 and 6 up to window rounding; bin 3 uses 13x25 windows at stride 10x20 there).
- Max pooling rounds down (PyTorch) where Caffe rounds up; equal for the official odd sizes.
- The official net starts with a per-channel Caffe Scale layer on the input (3 parameters), left out: input
  normalisation belongs to the harness.

Parity: unverified. The official code is Caffe only (prototxt + caffemodel), which does not run here, and
no PyTorch port by the authors exists. What it would take: read the released caffemodel's NetParameter with
protobuf (caffe.proto compiled by protoc; no unpickling), map each Convolution / BatchNorm (mean and
variance divided by its third, scale-factor blob) / Scale layer's blobs onto our keys, and, for exact
outputs, resize with align_corners=True (Caffe's Interp) and pool the pyramid with the prototxt's fixed
windows; then compare on the official 1025x2049 input.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, resize_to
from zoo.registry import register_model


class Bottleneck(nn.Module):
    """Caffe PSPNet's ResNet bottleneck: stride on the 1x1 reduce conv, dilation on the 3x3 conv."""

    def __init__(self, in_channels: int, width: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        out_channels = 4 * width
        self.reduce = ConvBNAct(in_channels, width, 1, stride=stride)
        self.conv = ConvBNAct(width, width, 3, dilation=dilation)
        self.increase = ConvBNAct(width, out_channels, 1, act_layer=None)
        if stride == 1 and in_channels == out_channels:
            self.proj = nn.Identity()
        else:
            self.proj = ConvBNAct(in_channels, out_channels, 1, stride=stride, act_layer=None)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.increase(self.conv(self.reduce(x))) + self.proj(x))


def _stage(in_channels: int, width: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        Bottleneck(in_channels, width, stride, dilation),
        *(Bottleneck(4 * width, width, 1, dilation) for _ in range(blocks - 1)),
    )


class SumPyramidPooling(nn.Module):
    """ICNet's pyramid pooling: average pool per bin size, upsample, sum with the input; no convs."""

    def __init__(self, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.pools = nn.ModuleList(nn.AdaptiveAvgPool2d(b) for b in bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for pool in self.pools:
            out = out + resize_to(pool(x), x)
        return out


class CascadeFeatureFusion(nn.Module):
    """CFF (paper Sec. 3.3): upsampled low-res feature -> 3x3 dilated conv + BN; high-res feature -> 1x1 conv
    + BN; sum, ReLU. Also returns the upsampled low-res feature, which the label-guidance classifier reads."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int = 128):
        super().__init__()
        self.low = ConvBNAct(low_channels, out_channels, 3, dilation=2, act_layer=None)
        self.high = ConvBNAct(high_channels, out_channels, 1, act_layer=None)
        self.act = nn.ReLU()

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = resize_to(low, high)
        return self.act(self.low(low) + self.high(high)), low


def _half(x: torch.Tensor) -> torch.Tensor:
    return resize_to(x, ((x.shape[-2] + 1) // 2, (x.shape[-1] + 1) // 2))  # ceil(n / 2)


class ICNet(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W]; in training mode with aux heads,
    (logits, [the stride-16 and stride-8 label-guidance logits, upsampled to H,W])."""

    def __init__(self, num_classes: int = 19, aux_heads: bool = True, width: int = 32):
        super().__init__()
        w = width
        # 1/2 branch: conv1_x .. conv3_1 (stride 16 of the full image), shared with the 1/4 branch.
        self.stem = nn.Sequential(
            ConvBNAct(3, w, 3, stride=2),
            ConvBNAct(w, w, 3),
            ConvBNAct(w, 2 * w, 3),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.layer1 = _stage(2 * w, w, 3)
        self.layer2_1 = Bottleneck(4 * w, 2 * w, stride=2)
        # 1/4 branch: conv3_2 .. conv5_3 on the halved conv3_1 output, then pyramid pooling and conv5_4_k1.
        self.layer2 = _stage(8 * w, 2 * w, 3)
        self.layer3 = _stage(8 * w, 4 * w, 6, dilation=2)
        self.layer4 = _stage(16 * w, 8 * w, 3, dilation=4)
        self.ppm = SumPyramidPooling()
        self.ppm_reduce = ConvBNAct(32 * w, 256, 1)
        # Full-resolution branch: three strided 3x3 convs to stride 8.
        self.sub1 = nn.Sequential(
            ConvBNAct(3, 32, 3, stride=2), ConvBNAct(32, 32, 3, stride=2), ConvBNAct(32, 64, 3, stride=2)
        )
        self.cff24 = CascadeFeatureFusion(256, 8 * w, 128)
        self.cff12 = CascadeFeatureFusion(128, 64, 128)
        self.classifier = nn.Conv2d(128, num_classes, 1)
        self.aux_heads = (
            nn.ModuleList([nn.Conv2d(256, num_classes, 1), nn.Conv2d(128, num_classes, 1)])
            if aux_heads
            else None
        )

    def forward(self, x: torch.Tensor):
        sub2 = self.layer2_1(self.layer1(self.stem(_half(x))))
        sub4 = self.layer4(self.layer3(self.layer2(_half(sub2))))
        sub4 = self.ppm_reduce(self.ppm(sub4))
        sub24, low4 = self.cff24(sub4, sub2)
        sub124, low24 = self.cff12(sub24, self.sub1(x))
        quarter = ((x.shape[-2] + 3) // 4, (x.shape[-1] + 3) // 4)  # ceil(n / 4): stride 4
        logits = resize_to(self.classifier(resize_to(sub124, quarter)), x)
        if self.training and self.aux_heads is not None:
            aux = [resize_to(head(f), x) for head, f in zip(self.aux_heads, (low4, low24), strict=True)]
            return logits, aux
        return logits


_REPO = "hszhao/ICNet@dd2bf78ff3f9ff05f6d35c40a3ee216158d9e892"
_CS_PROTOCOL = (
    "single-scale: the 1024x2048 image resized to 1025x2049, probabilities resized back; no flip "
    "(official evaluation/eval_sub.m)"
)

CARD = ModelCard(
    group="realtime",
    paper=Paper(
        title="ICNet for Real-Time Semantic Segmentation on High-Resolution Images",
        venue="ECCV",
        year=2018,
        arxiv="1704.08545",
        doi="10.1007/978-3-030-01219-9_25",
    ),
    official_code="https://github.com/hszhao/ICNet",
    implementation="segbench",
    num_classes=19,
    input_hw=(1024, 2048),
    params_counts_aux_heads=False,
    reported=(
        Reported(
            metric="params",
            value=6.700,
            source=f"{_REPO}:evaluation/prototxt/icnet_cityscapes_bnnomerge.prototxt",
            note="Not a paper number: counted from the released deploy prototxt (conv weights, BN scale and "
            "shift, classifier bias): 6,699,987, plus 3 in its input Scale layer. The inference net has no "
            "label-guidance classifiers.",
        ),
        Reported(
            metric="miou",
            value=67.7,
            source=f"{_REPO}:README.md",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="val",
            protocol=_CS_PROTOCOL,
            note="Released model trained on train (fine) for 30k iterations; pixel accuracy 94.5.",
        ),
        Reported(
            metric="miou",
            value=69.5,
            source=f"{_REPO}:README.md",
            input_hw=(1024, 2048),
            dataset="Cityscapes",
            split="test",
            protocol=_CS_PROTOCOL,
            variant="trained on train+val (fine)",
            note="Released model trained on train+val (fine) for 90k iterations.",
        ),
    ),
    notes="Params: the paper's text could not be opened here, so no params figure was verified at its "
    "source; the card carries the official released model's count. The 26.5 M in SegBench's secondary "
    "reference table (a figure other papers' comparison tables cite for ICNet) is about four times the "
    "released model and is not reproduced: the uncompressed trunk (width=64, other widths as released) has "
    "24.7 M. Speed: the README gives approximately 33-36 ms per 1025x2049 image on a TitanX (Caffe `time` "
    "tool, BN merged into the convs), a range, so no latency figure is recorded; the widely cited 30.3 FPS "
    "was not read at its source. No FLOPs figure verified (ours: 29.5 G multiply-adds at 1024x2048, "
    "fvcore). Left out: the 70.6 test mIoU cited by third-party tables, and CamVid and COCO-Stuff results "
    "(not verified here). Parity with the official Caffe model is unverified (module docstring: what a "
    "caffemodel converter would take).",
)


@register_model(card=CARD)
def icnet(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    """ICNet as released (compressed PSPNet50 trunk, width 32). kwargs: width (64: uncompressed trunk)."""
    return ICNet(num_classes=num_classes, aux_heads=aux_heads, **kwargs)
