"""BSN, the Boundary-Sensitive Network (Du, Wang, Li, Zhu, Tasci, Upright, Walsh, Davis, "Boundary-sensitive
Network for Portrait Segmentation", IEEE FG 2019, arXiv 1712.08675).

No official code: the authors released none that we could find (no repository is linked from the paper's
abstract pages or the first author's publication page, and code/issue searches turn up none). Built from:
  - the paper's abstract (verified): three boundary-sensitive techniques, an individual boundary-sensitive
    kernel (the contour dilated, boundary pixels given multi-class soft labels), a global
    boundary-sensitive kernel (a position-sensitive prior: the training set's mean mask weighting the loss)
    and a boundary-sensitive attribute classifier trained jointly with the segmentation network;
  - two independent secondary summaries of the paper body (GitHub reading notes found by code search; the
    paper body itself could not be opened here): a ResNet + DeepLab-v2 segmentation network predicting three
    classes (background, foreground, boundary), trained with a soft-label cross-entropy weighted per pixel by
    the global kernel, and a parallel hair attribute classifier (long / short hair);
  - DeepLab-v2 ResNet-101 (Chen et al., TPAMI 2018) for the segmentation network, read in its PyTorch port
    kazuto1011/deeplab-pytorch (libs/models/deeplabv2.py, libs/models/resnet.py @ 2760e35 / 07c9ce5).

Architecture: ResNet-101 trunk at output stride 8 (every unit of res4 at rate 2, of res5 at rate 4, as
DeepLab-v2), ASPP-L as DeepLab-v2 has it for ResNet (four 3x3 convs 2048 -> classes with rates 6, 12, 18, 24,
bias, summed), bilinear upsampling of the stride-8 logits to the input size. Three output classes by default
(background, foreground, boundary). Both boundary kernels are loss terms: they add no module.

Choices and deviations, and why:
  - Depth: ResNet-101, DeepLab-v2's ResNet model; the survey and the secondary summaries say "ResNet +
    DeepLab-v2" without a depth we could check in the paper. `depth=50` builds the lighter variant.
  - Trunk: torchvision's ResNet (zoo.backbones.ResNetFeatures), not DeepLab-v2's Caffe MSRA ResNet: the
    parameters are the same, but Caffe strides on the first 1x1 conv of a unit (torchvision on the 3x3)
    and its max-pool rounds up (ceil_mode), so some early feature maps differ by a pixel or a phase; we keep
    torchvision's layout so ImageNet weights load into `backbone` by key. The first unit of layer3 is set to
    rate 2 (torchvision keeps rate 1 there) to match DeepLab-v2.
  - Single-scale inference: DeepLab-v2's multi-scale-input training/testing (MSC, max over scales 1, 0.75,
    0.5) and its dense CRF are not in the model; whether BSN used them could not be checked.
  - The attribute classifier (training only, `aux_heads[0]`): the paper's design could not be read; ours is
    global average pooling of the res5 features and one linear layer to `num_attributes` (2: long / short
    hair), the plainest head a jointly trained image-level classifier on the shared trunk can have.
  - 2-class masks: the network predicts 3 channels. The boundary class is a training device (its soft labels
    spread a boundary pixel's mass over all three classes), so a person mask is read as
    logits[:, 1] > logits[:, 0] (foreground against background; see `person_mask`). This reading is ours.

Parity: unverified, and no converter. With no authors' code or weights there is nothing to record a parity
manifest from or to convert; a parity test against deeplab-pytorch would only check the DeepLab-v2 base,
from which our trunk deliberately differs (torchvision layout, above).
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.backbones import ResNetFeatures
from zoo.card import ModelCard, Paper
from zoo.layers import resize_to
from zoo.registry import register_model

BACKGROUND, FOREGROUND, BOUNDARY = 0, 1, 2


class SummedASPP(nn.Module):
    """DeepLab-v2 ASPP for ResNet: one 3x3 atrous conv per rate straight to the classes, outputs summed."""

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...] = (6, 12, 18, 24)):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r, bias=True) for r in rates
        )
        for conv in self.branches:  # DeepLab-v2's initialisation of the classifier convs
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([branch(x) for branch in self.branches]).sum(0)


class AttributeClassifier(nn.Sequential):
    """Image-level attribute head on the trunk's last features (our design; see the module docstring)."""

    def __init__(self, in_channels: int, num_attributes: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(in_channels, num_attributes))


class BSN(nn.Module):
    """forward(x[N,3,H,W]) -> logits[N,num_classes,H,W] (background, foreground, boundary); in train mode with
    the attribute classifier, (logits, [attribute logits[N,num_attributes]])."""

    def __init__(
        self,
        num_classes: int = 3,
        depth: int = 101,
        aux_heads: bool = True,
        num_attributes: int = 2,
        rates: tuple[int, ...] = (6, 12, 18, 24),
    ):
        super().__init__()
        self.backbone = ResNetFeatures(depth, output_stride=8, multi_grid=(1, 1, 1))
        first = self.backbone.layer3[0].conv2  # DeepLab-v2 dilates every unit of res4, the first included
        first.dilation = first.padding = (2, 2)
        channels = self.backbone.feature_info[-1]["channels"]
        self.aspp = SummedASPP(channels, num_classes, rates)
        self.aux_heads = nn.ModuleList([AttributeClassifier(channels, num_attributes)]) if aux_heads else None

    def forward(self, x: torch.Tensor):
        c5 = self.backbone(x)[-1]
        logits = resize_to(self.aspp(c5), x)
        if self.training and self.aux_heads is not None:
            return logits, [self.aux_heads[0](c5)]
        return logits


def person_mask(logits: torch.Tensor) -> torch.Tensor:
    """2-class (0 background, 1 person) mask from BSN's 3-class logits: foreground against background."""
    return (logits[:, FOREGROUND] > logits[:, BACKGROUND]).long()


CARD = ModelCard(
    group="portrait",
    paper=Paper(
        title="Boundary-sensitive Network for Portrait Segmentation",
        venue="IEEE FG",
        year=2019,
        arxiv="1712.08675",
    ),
    official_code="https://github.com/kazuto1011/deeplab-pytorch",
    implementation="segbench (torchvision 0.29 ResNet-101 trunk)",
    num_classes=3,
    input_hw=(800, 600),
    params_counts_aux_heads=False,
    notes=(
        "The authors released no code; official_code names the DeepLab-v2 re-implementation read for the "
        "base network (DeepLab-v2 ResNet-101 with ASPP-L), not BSN code. Classes: 3 (background, foreground, "
        "boundary), after the paper's individual boundary-sensitive kernel; a 2-class person mask is "
        "foreground > background (`zoo.models.bsn.person_mask`), our reading. Input: 800x600 (H x W), the "
        "size of the PFCN portrait images (Shen et al. 2016) the paper evaluates on, per the survey brief; "
        "neither that size nor whether BSN resizes its input could be checked in the paper here. "
        "Params: no params figure is recorded, as the paper's body (its tables) could not be opened here and "
        "no official code exists. For comparison only (our count, not a paper number): 42,721,356 "
        "parameters at 3 classes without the attribute head (its linear layer adds 4,098). No mIoU, FLOPs or "
        "speed figure is recorded for the same reason: none could be verified at its source. Our count: "
        "327.1 G multiply-adds (fvcore) at 800x600, nearly all in the dilated res4/res5. Parity: "
        "unverified (no authors' code or weights to compare with or convert)."
    ),
)


@register_model(card=CARD)
def bsn(num_classes: int = 3, aux_heads: bool = True, **kwargs) -> nn.Module:
    """BSN: DeepLab-v2 ResNet-101 with 3-class output. kwargs: depth (101), num_attributes (2), rates."""
    return BSN(num_classes=num_classes, aux_heads=aux_heads, **kwargs)
