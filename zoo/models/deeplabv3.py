"""DeepLabv3 with a ResNet-50 or ResNet-101 trunk: Chen, Papandreou, Schroff, Adam, "Rethinking Atrous
Convolution for Semantic Image Segmentation", arXiv 1706.05587 (v3, Dec 2017).

Official code (TensorFlow): https://github.com/tensorflow/models/tree/master/research/deeplab

The paper's final model (Sec 3.3, Table 6): an atrous ResNet at output stride 8 (block3 rate 2, block4
rate 4), multi-grid (1, 2, 4) in block4 (its three units' 3x3 convs get rates 4 * (1, 2, 4)), ASPP with BN
and image-level pooling (rates doubled to (12, 24, 36) at output stride 8), a 1x1 conv to the classes, and
logits bilinearly upsampled to the input size. Our ASPP is `zoo.layers.ASPP`.

Deviations and why:
- Trunk: torchvision's ResNet-50/101, not TF-slim's `resnet_v1_50`/`resnet_v1_101`. Both have the 7x7 stem,
  stride on the 3x3 conv and the same parameters, but slim strides in the *last* unit of each block and
  torchvision in the *first* unit of the next; so three convs around the stride 4 -> 8 step run at stride 4
  here (about 8.5 GMACs, 0.7% for ResNet-50, more at 1024x2048 by hand count), and the dilated conv that
  replaces a stride sits one unit later. We keep torchvision's layout so its ImageNet weights load into
  `backbone` by key. The official repo's later `resnet_v1_*_beta` (three 3x3 stem convs) is not what the
  paper describes.
- Block4 rates: torchvision gives its first unit the previous rate (2); we set all three units to the
  paper's 4 * multi_grid (dilation changes neither parameters nor MACs).
- The paper's ASPP results use ResNet-101 (see the cards); `deeplabv3_r50` is the ResNet-50 variant the
  survey asks for, `deeplabv3_r101` the paper's.
- Upsampling uses align_corners=False (PyTorch default); the TF code resizes with align_corners=True.
- TF 'SAME' padding on strided layers pads bottom/right only; PyTorch pads symmetrically (sub-pixel shift).
- No dropout (the official code's dropout after the ASPP projection is training-only) and no auxiliary
  head (the paper has none). torchvision's DeepLabV3 adds a 3x3 conv + BN + ReLU after ASPP and keeps the
  previous rate in layer4[0]; we follow the paper instead.
- Parity with the official code is not tested: it is TensorFlow (not run here), and no PyTorch reference
  builds the paper's network (torchvision's differs as above). Its checkpoints (TF-slim variables) would
  need a TensorFlow checkpoint reader and a trunk with TF-slim's stride placement and 'SAME' padding, which
  this torchvision-layout trunk does not have, so there is no converter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

from zoo.backbones import ResNetFeatures
from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ASPP, resize_to
from zoo.registry import register_model

_ASPP_RATES_OS16 = (6, 12, 18)  # paper Sec 3.3; doubled at output stride 8

_CS = "Cityscapes"
_VOC = "PASCAL VOC 2012"
_CS_VAL = "Trained on train_fine only (2975 images), 90K iterations, crop 769; whole-image inference. "
_VOC_VAL = "Trained on trainaug (10,582 images), crop 513; 21 classes. "
_CS_HW = (1024, 2048)
_TF = "tensorflow/models@3100470fe48ae83c6b4fe3e8ceb3a8db560aa4d2"


def _backbone_note(depth: int) -> str:
    not_r50 = ", not ResNet-50" if depth == 50 else ""
    return (
        f"Backbone ResNet-101{not_r50} (inferred: the paper names no backbone for this table, but its ASPP "
        "study builds on the ResNet-101 multi-grid study, Sec 4.3 vs Table 3, and its JFT variant is 'the "
        "ResNet-101 model'). The paper's final model: MG(1, 2, 4) + ASPP(6, 12, 18) + image pooling, "
        "ImageNet-pretrained, trained at output stride 16."
    )


def _miou(
    depth: int,
    value: float,
    table: str,
    dataset: str,
    split: str,
    protocol: str,
    note: str,
    input_hw: tuple[int, int] | None = None,
    trained: str | None = None,
) -> Reported:
    return Reported(
        "miou",
        value,
        source=f"paper {table}",
        input_hw=input_hw,
        dataset=dataset,
        split=split,
        protocol=protocol,
        variant=_variant(depth, protocol, trained),
        note=note + _backbone_note(depth),
    )


def _variant(depth: int, protocol: str, trained: str | None) -> str | None:
    """The network a claim was measured on, where it is not the registry id's (ResNet-`depth`, output
    stride 8, trained on the dataset's train split from ImageNet)."""
    parts = ["ResNet-101 backbone"] if depth != 101 else []
    parts += [trained] if trained else []
    stride = re.search(r"output stride (\d+)", protocol)
    if stride and stride[1] != "8":
        parts.append(f"evaluated at output stride {stride[1]}")
    return "; ".join(parts) or None


def _paper_mious(depth: int) -> tuple[Reported, ...]:
    """The paper's final-model numbers, all ResNet-101."""
    return (
        _miou(depth, 77.82, "Table 12", _CS, "val", "single-scale, output stride 8", _CS_VAL, _CS_HW),
        _miou(depth, 77.23, "Table 12", _CS, "val", "single-scale, output stride 16", _CS_VAL, _CS_HW),
        _miou(
            depth,
            79.30,
            "Table 12",
            _CS,
            "val",
            "ms (0.75, 1, 1.25) + flip, output stride 8",
            _CS_VAL,
            _CS_HW,
        ),
        _miou(
            depth,
            81.3,
            "Table 13",
            _CS,
            "test",
            "ms (0.75 to 2, 6 scales), output stride 4; flip not stated",
            "Trained on trainval fine + ~20K coarse images. ",
            _CS_HW,
            trained="trained on trainval fine + coarse",
        ),
        _miou(depth, 78.51, "Table 6", _VOC, "val", "single-scale, output stride 8", _VOC_VAL, (513, 513)),
        _miou(
            depth,
            79.77,
            "Table 6",
            _VOC,
            "val",
            "ms (0.5 to 1.75, step 0.25) + flip, output stride 8",
            _VOC_VAL,
            (513, 513),
        ),
        _miou(
            depth,
            85.7,
            "Table 7",
            _VOC,
            "test",
            "not stated (fine-tuned at output stride 8)",
            "MS-COCO pretrained, fine-tuned on trainval with bootstrapping on hard images. ",
            (513, 513),
            trained="MS-COCO pretrained, trained on trainval",
        ),
    )


def _plus_table3(value: float, output_stride: int, ours: float) -> Reported:
    return Reported(
        "macs",
        value,
        source="DeepLabv3+ paper (arXiv 1802.02611) Table 3",
        input_hw=(513, 513),
        dataset=_VOC,
        convention="multiply-adds",
        variant=None if output_stride == 8 else f"evaluated at output stride {output_stride}",
        note=f"Same authors, this model: ResNet-101 DeepLabv3 without decoder, trained at output stride 16, "
        f"evaluated single-scale at output stride {output_stride}, 21 classes ('Multiply-Adds' column). Our "
        f"fvcore count for that configuration: {ours} G (see deeplabv3plus_r101's notes on the gap).",
    )


_UNVERIFIED = (
    "Parity with the official code is not tested and official checkpoints have no converter: the code and "
    "checkpoints are TensorFlow, and its TF-slim trunk strides and pads otherwise (see the module docstring)."
)
_PAPER = Paper(
    title="Rethinking Atrous Convolution for Semantic Image Segmentation",
    venue="arXiv",
    year=2017,
    arxiv="1706.05587",
)
_OFFICIAL = "https://github.com/tensorflow/models/tree/master/research/deeplab"

CARD = ModelCard(
    group="semantic",
    paper=_PAPER,
    official_code=_OFFICIAL,
    implementation="segbench (torchvision 0.29 ResNet-50 trunk)",
    num_classes=19,
    input_hw=_CS_HW,  # Appendix C: Cityscapes inference on the whole image
    reported=(
        Reported(
            "params",
            39.048,
            source=f"{_TF}:research/deeplab/model.py",
            note="Not printed by the paper or the repo: our count (39,048,019) of the trainable variables "
            "the official definition creates for the paper's model with model_variant=resnet_v1_50 (7x7 "
            "root), plain 3x3 atrous ASPP with image pooling, no decoder, 1x1 logits with bias, 19 classes.",
        ),
        *_paper_mious(50),
    ),
    notes=(
        "The paper gives no parameter count or FLOPs; the params figure is counted from the official "
        "code's definition (see its note). For comparison only (our "
        "count, not a paper number): torchvision 0.29 deeplabv3_resnet50(weights=None, "
        "weights_backbone=None, aux_loss=False, num_classes=19) has 39,638,355 parameters and ours "
        "39,048,019; the 590,336 more are torchvision's 3x3 conv (256 -> 256) + BN after ASPP, which the "
        "paper does not have. The paper's only ResNet-50 numbers (Tables 1-2, e.g. 75.18% VOC val at output "
        "stride 8) are for its cascaded-blocks model without ASPP, a different architecture, so they are not "
        "recorded. Every mIoU above is ResNet-101. " + _UNVERIFIED
    ),
)

CARD_R101 = ModelCard(
    group="semantic",
    paper=_PAPER,
    official_code=_OFFICIAL,
    implementation="segbench (torchvision 0.29 ResNet-101 trunk)",
    num_classes=19,
    input_hw=_CS_HW,  # Appendix C: Cityscapes inference on the whole image
    reported=(
        Reported(
            "params",
            58.04,
            source=f"{_TF}:research/deeplab/model.py",
            note="Not printed by the paper or the repo: our count (58,040,147) of the trainable variables "
            "the official definition creates for the paper's model: model_variant=resnet_v1_101 (core/"
            "resnet_v1_beta.py, 7x7 root), ASPP with plain 3x3 atrous convs (aspp_with_separable_conv=False, "
            "as in the paper) and image pooling, no decoder, 1x1 logits with bias, 19 classes; slim BN "
            "counts gamma and beta. The repo's first release (2018) had no ResNet variant.",
        ),
        *(_plus_table3(v, os, ours) for v, os, ours in ((276.18, 8, 246.72), (81.02, 16, 71.28))),
        *_paper_mious(101),
    ),
    notes=(
        "The paper gives no parameter count or FLOPs; the params figure is counted from the official code's "
        "definition (see its note), the Multiply-Adds come from the DeepLabv3+ paper (ours are 11% and 12% "
        "lower; see deeplabv3plus_r101's notes). For comparison only: torchvision 0.29 "
        "deeplabv3_resnet101(weights=None, weights_backbone=None, aux_loss=False, num_classes=19) has "
        "58,630,483 parameters, 590,336 more than ours: its 3x3 conv (256 -> 256) + BN after ASPP, which the "
        "paper does not have. " + _UNVERIFIED
    ),
)


class DeepLabV3(nn.Module):
    """Atrous ResNet-50/101 trunk -> ASPP -> 1x1 classifier -> bilinear upsample to the input size.

    `forward(x[N, 3, H, W]) -> logits[N, num_classes, H, W]` for any H, W.
    """

    def __init__(
        self,
        num_classes: int = 19,
        depth: int = 50,
        output_stride: int = 8,
        multi_grid: Sequence[int] = (1, 2, 4),
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ):
        super().__init__()
        if output_stride not in (8, 16):
            raise ValueError(f"DeepLabv3 uses output stride 8 or 16, got {output_stride}")
        # torchvision's layer names, so ImageNet ResNet weights load into `backbone` by key (less fc).
        self.backbone = ResNetFeatures(depth, output_stride, multi_grid, norm_layer)
        rates = tuple(r * 16 // output_stride for r in _ASPP_RATES_OS16)
        self.aspp = ASPP(2048, 256, rates=rates, norm_layer=norm_layer)
        self.classifier = nn.Conv2d(256, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to(self.classifier(self.aspp(self.backbone(x)[-1])), x)


@register_model(card=CARD)
def deeplabv3_r50(num_classes: int = 19, output_stride: int = 8, multi_grid=(1, 2, 4), **kwargs) -> nn.Module:
    return DeepLabV3(num_classes, 50, output_stride, multi_grid, **kwargs)


@register_model(card=CARD_R101)
def deeplabv3_r101(
    num_classes: int = 19, output_stride: int = 8, multi_grid=(1, 2, 4), **kwargs
) -> nn.Module:
    return DeepLabV3(num_classes, 101, output_stride, multi_grid, **kwargs)
