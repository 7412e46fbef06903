"""DeepLabv3+: Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for
Semantic Image Segmentation", ECCV 2018 (arXiv 1802.02611).

Official code (TensorFlow): tensorflow/models research/deeplab. Read: model.py (extract_features: ASPP;
refine_by_decoder; get_branch_logits) and core/resnet_v1_beta.py at commit 3100470, core/feature_extractor.py
at 965cc3e. Its first release (2018) built only Xception-65 and MobileNetV2; ResNet variants came later.

The paper's ResNet-101 model (Sec 3.1, 4.1, 4.2 and Table 3): the DeepLabv3 encoder, i.e. an atrous ResNet at
output stride 16 (block4 at rate 2) and ASPP (rates 6, 12, 18, image pooling, 256 channels, BN), whose output
is the "encoder output"; the decoder upsamples it by 4 (bilinear), concatenates it with the low-level Conv2
features (res2x's last map, "before striding", stride 4) reduced by [1x1, 48] + BN + ReLU, refines with two
[3x3, 256] + BN + ReLU, then a 1x1 classifier and bilinear upsampling by 4 to the input size.

Decisions and deviations, and why:
- Plain (not depthwise separable) 3x3 convs in ASPP and decoder for ResNet. The paper adopts separable convs
  ("SC") only in its Xception study (Table 5, where they cut Multiply-Adds by 33-41%); its ResNet-101 table
  (Table 3) has no SC column, and its 101.28B Multiply-Adds at 513x513 are near our plain-conv count (93.1G)
  and far from the separable one (60.5G). The official flags aspp_with_separable_conv and
  decoder_use_separable_conv default to True (set for Xception); `separable=True` builds that variant.
- Multi-grid (1, 2, 4) in block4, inferred: Table 3's no-decoder rows are DeepLabv3's ResNet-101 MG(1, 2, 4)
  model; the paper drops multi-grid only for Xception (Sec 4.3). Dilation changes neither params nor MACs.
- Trunk: torchvision's ResNet-50/101 (7x7 stem; see `deeplabv3.py` for how its stride placement differs
  from TF-slim's `resnet_v1_*`: same parameters, slightly more MACs). The low-level features are layer1's
  output (256 channels, stride 4). The later official code taps `block1/unit_2/bottleneck_v1/conv3`, the
  second unit's residual branch before the shortcut sum and ReLU (slim strides in block1's third unit,
  torchvision at the start of layer2); the paper says "the last feature map in res2x ... before striding",
  which in torchvision's layout is layer1's output.
- Upsampling uses align_corners=False (PyTorch default); the TF code resizes with align_corners=True.
- No dropout: the official dropout after the ASPP projection is training-only. No auxiliary head.
- Parity with the official code is not tested and there is no converter, for the reasons deeplabv3.py gives
  (TensorFlow code and checkpoints; TF-slim's stride placement and 'SAME' padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.backbones import ResNetFeatures
from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ASPP, ConvBNAct, SeparableConvBNAct, resize_to
from zoo.models.deeplabv3 import _UNVERIFIED
from zoo.registry import register_model

_ASPP_RATES_OS16 = (6, 12, 18)  # paper Sec 4.2 (DeepLabv3's rates at output stride 16); doubled at 8


class Decoder(nn.Module):
    """[1x1, 48] on the low-level features; concat with the encoder output upsampled to their size; two
    [3x3, 256] (ConvBNAct, or depthwise separable with `separable=True`)."""

    def __init__(
        self,
        low_channels: int,
        encoder_channels: int = 256,
        reduced_channels: int = 48,
        channels: int = 256,
        separable: bool = False,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        self.reduce = ConvBNAct(low_channels, reduced_channels, 1, norm_layer=norm_layer)
        conv = SeparableConvBNAct if separable else ConvBNAct
        self.refine = nn.Sequential(
            conv(encoder_channels + reduced_channels, channels, 3, norm_layer=norm_layer),
            conv(channels, channels, 3, norm_layer=norm_layer),
        )

    def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return self.refine(torch.cat([resize_to(x, low), self.reduce(low)], dim=1))


class DeepLabV3Plus(nn.Module):
    """Atrous ResNet -> ASPP (encoder output, stride 16) -> decoder with the stride-4 features -> 1x1
    classifier -> bilinear upsample to the input size.

    `forward(x[N, 3, H, W]) -> logits[N, num_classes, H, W]` for any H, W.
    """

    def __init__(
        self,
        num_classes: int = 19,
        depth: int = 50,
        output_stride: int = 16,
        multi_grid: Sequence[int] = (1, 2, 4),
        separable: bool = False,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"DeepLabv3+ uses output stride 8 or 16, got {output_stride}")
        # torchvision's layer names, so ImageNet ResNet weights load into `backbone` by key (less fc).
        self.backbone = ResNetFeatures(depth, output_stride, multi_grid, norm_layer)
        rates = tuple(r * 16 // output_stride for r in _ASPP_RATES_OS16)
        self.aspp = ASPP(2048, 256, rates=rates, norm_layer=norm_layer, separable=separable)
        low_channels = self.backbone.feature_info[0]["channels"]
        self.decoder = Decoder(low_channels, 256, separable=separable, norm_layer=norm_layer)
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        return resize_to(self.classifier(self.decoder(self.aspp(features[-1]), features[0])), x)


_PAPER = Paper(
    title="Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation",
    venue="ECCV",
    year=2018,
    arxiv="1802.02611",
)
_OFFICIAL = "https://github.com/tensorflow/models/tree/master/research/deeplab"
_TF = "tensorflow/models@3100470fe48ae83c6b4fe3e8ceb3a8db560aa4d2:research/deeplab/model.py"
_VOC = "PASCAL VOC 2012"
_VOC_HW = (513, 513)
_TABLE3 = (
    "ResNet-101, ImageNet-pretrained, trained at output stride 16 on trainaug (10,582 images), crop 513; 21 "
    "classes; decoder, no separable convs. "
)
# The official Cityscapes evaluation runs on the whole image (g3doc/cityscapes.md: eval_crop_size 1025x2049).
_CS_HW = (1024, 2048)


def _params(depth: int, count: int) -> Reported:
    return Reported(
        "params",
        round(count / 1e6, 2),
        source=_TF,
        note=f"Not printed by the paper or the repo: our count ({count:,}) of the trainable variables the "
        f"official definition creates for model_variant=resnet_v1_{depth} (core/resnet_v1_beta.py, 7x7 root) "
        "with decoder_output_stride=4, aspp_with_separable_conv=False and decoder_use_separable_conv=False "
        "(the paper's ResNet model), image pooling, 1x1 logits with bias, 19 classes; slim BN counts gamma "
        "and beta.",
    )


def _table3(value: float, protocol: str) -> Reported:
    return Reported(
        "miou",
        value,
        source="paper Table 3",
        input_hw=_VOC_HW,
        dataset=_VOC,
        split="val",
        protocol=protocol,
        variant="evaluated at output stride 8" if "output stride 8" in protocol else None,
        note=_TABLE3 + "MS scales not stated (the paper follows DeepLabv3's protocol).",
    )


def _macs(value: float, eval_os: int, ours: float) -> Reported:
    return Reported(
        "macs",
        value,
        source="paper Table 3",
        input_hw=_VOC_HW,
        dataset=_VOC,
        convention="multiply-adds",
        variant=None if eval_os == 16 else f"evaluated at output stride {eval_os}",
        note=f"'Multiply-Adds' column (the paper's unit), single-scale, eval output stride {eval_os}, 21 "
        f"classes. Our fvcore count for the same configuration: {ours} G (see the card's notes).",
    )


CARD_R50 = ModelCard(
    group="semantic",
    paper=_PAPER,
    official_code=_OFFICIAL,
    implementation="segbench (torchvision 0.29 ResNet-50 trunk)",
    num_classes=19,
    input_hw=_CS_HW,
    reported=(_params(50, 40_351_667),),
    notes="The paper reports only ResNet-101 and Xception results, so this ResNet-50 variant (the survey's) "
    "has no paper mIoU or cost; the params figure is counted from the official code's definition (see its "
    "note). input_hw is Cityscapes' full resolution, which the official code evaluates on whole (1025x2049); "
    "the paper's ResNet numbers are PASCAL VOC at 513x513. " + _UNVERIFIED,
)

CARD_R101 = ModelCard(
    group="semantic",
    paper=_PAPER,
    official_code=_OFFICIAL,
    implementation="segbench (torchvision 0.29 ResNet-101 trunk)",
    num_classes=19,
    input_hw=_CS_HW,
    reported=(
        _params(101, 59_343_795),
        _macs(101.28, 16, 93.08),
        _macs(297.92, 8, 268.50),
        _table3(78.85, "single-scale, output stride 16"),
        _table3(80.09, "multi-scale, output stride 16"),
        _table3(80.22, "multi-scale + flip, output stride 16"),
        _table3(79.35, "single-scale, output stride 8"),
        _table3(80.57, "multi-scale + flip, output stride 8"),
    ),
    notes="The paper gives no parameter count; the params figure is counted from the official code's "
    "definition (see its note). Multiply-Adds: ours are 8% (output stride 16) and 10% (8) below Table 3. "
    "The gap is in the encoder: the same table's DeepLabv3 rows (81.02 / 276.18 G) exceed our deeplabv3_r101 "
    "count (71.28 / 246.72 G), while the decoder's increment agrees (paper +20.3 / +21.7 G, ours +21.8 G). "
    "The paper does not say how it counted; with separable convs ours would be 60.47 G, far below. The "
    "paper's ResNet-101 results are all PASCAL VOC 2012 val (Table 3); its "
    "Cityscapes and test-set results are Xception-65/71 models, not recorded here. input_hw is Cityscapes' "
    "full resolution, which the official code evaluates on whole (1025x2049). " + _UNVERIFIED,
)


@register_model(card=CARD_R50)
def deeplabv3plus_r50(num_classes: int = 19, output_stride: int = 16, **kwargs) -> nn.Module:
    return DeepLabV3Plus(num_classes, 50, output_stride, **kwargs)


@register_model(card=CARD_R101)
def deeplabv3plus_r101(num_classes: int = 19, output_stride: int = 16, **kwargs) -> nn.Module:
    return DeepLabV3Plus(num_classes, 101, output_stride, **kwargs)
