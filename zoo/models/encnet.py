"""EncNet: Zhang, Dana, Shi, Zhang, Wang, Tyagi, Agrawal, "Context Encoding for Semantic Segmentation",
CVPR 2018, arXiv 1803.08904.

Official code: https://github.com/zhanghang1989/PyTorch-Encoding. Read at its first segmentation release,
v0.4.2 (commit d8abf505, June 2018: encoding/models/encnet.py, encoding/nn/encoding.py,
encoding/dilated/resnet.py), and at HEAD (ac748410: encoding/models/sseg/encnet.py, encoding/nn/encoding.py).

The model: a dilated ResNet at output stride 8 (7x7 stem), a 3x3 conv (2048 -> 512) + BN + ReLU, then the
Context Encoding Module: an Encoding layer with K = 32 codewords d_k and smoothing factors s_k turns the
N = H x W features x_i into K aggregated residuals e_k = sum_i a_ik (x_i - d_k), with soft assignments
a_ik = softmax_k(s_k ||x_i - d_k||^2); BN + ReLU on each e_k, summed over k into e (512); an FC + sigmoid
predicts the channel scaling factors gamma, which re-weight the 512 feature maps; dropout + 1x1 classifier
and bilinear upsampling to the input size. In training, an FC on e predicts which classes are present
(the SE-loss branch) and the FCN head on layer3 predicts the segmentation (auxiliary loss); both live under
`aux_heads` and neither runs in eval.

Choices and deviations:
- Soft assignment over the codewords (softmax over k), as the Encoding layer's formula (reproduced in the
  official docstring) and the official code from v0.5.0 (f891919) on have it. From v0.2.0 to v0.4.3
  (Nov 2017 to Sep 2018: the paper's time and its first released models) the official layer normalised
  over the N positions instead (softmax dim=1 of a B x N x K tensor, commit 8425bd8 "fix typo").
  `assignment="positions"` builds that, so v0.4.2's released checkpoints compute their function here: with
  it, parity with the official v0.4.2 code is tested (tests/fixtures/parity/encnet_r*.json). The default is
  the paper's; the option changes no parameter or MAC.
- The Encoding layer is written with two matmuls, expanding ||x_i - d_k||^2 and sum_i a_ik (x_i - d_k),
  instead of the official CUDA kernels (scaled_l2, aggregate): same result, no N x K x D residual tensor,
  and fvcore counts its multiply-adds. The smoothing factor is stored as in the official code (negative,
  initialised in (-1, 0), multiplied in directly; the formula writes exp(-s_k ...)), so weights map 1:1.
- Module structure as in the first official release (v0.4.2): Encoding -> BN -> ReLU -> sum over the
  codewords -> FC + sigmoid, output x + x * gamma (the official code keeps the input as a residual; the
  paper describes a channel-wise multiplication of x by gamma: a different range of the learned scaling,
  the same cost). From v0.4.3 on, the official module adds a 1x1 conv + BN + ReLU (512 -> 512) before the
  Encoding layer, averages instead of sums and applies a ReLU after the re-weighting (+263K parameters,
  +0.8%); its later model zoo also moves to the deep 3x3 stem ("resnet50s"/"resnet101s") and, on PASCAL
  datasets, adds lateral connections from layer2/layer3. We have none of these, as the paper's EncNet.
- Trunk: torchvision's ResNet, whose dilation pattern (layer3 rates 1, 2, 2, ...; layer4 2, 4, 4) equals
  the official dilated ResNet's; 7x7 stem (deep_stem=False) as in the official code of the paper's time.
- Training-only heads, as in every official version: the SE-loss FC on the main head's encoding, and the
  FCN auxiliary head (3x3 conv 1024 -> 256, BN, ReLU, dropout, 1x1) on layer3. In train mode forward
  returns (logits, [FCN aux logits at input size, SE-loss class-presence logits (N, num_classes)]).
- Upsampling uses align_corners=True, as the official code.
- `convert_official` maps a v0.4.2 checkpoint: it drops the trunk's never-called ImageNet classifier
  (`pretrained.fc`) and folds the auxiliary head's conv bias (official FCNHead) into its BN's running mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct
from zoo.models.dilated import DilatedResNetSegmenter
from zoo.registry import register_model

ASSIGNMENTS = ("codewords", "positions")


class Encoding(nn.Module):
    """Residual encoding layer (Deep TEN, CVPR 2017; EncNet Sec. 3.1): (B, D, H, W) -> (B, K, D).

    `assignment`: the axis the soft-assignment softmax normalises over: "codewords" (the paper's formula)
    or "positions" (the official code v0.2.0 to v0.4.3, whose released models were trained with it).
    """

    def __init__(self, channels: int, num_codes: int, assignment: str = "codewords"):
        super().__init__()
        if assignment not in ASSIGNMENTS:
            raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")
        self.assign_dim = -1 if assignment == "codewords" else 1
        self.codewords = nn.Parameter(torch.empty(num_codes, channels))
        self.scale = nn.Parameter(torch.empty(num_codes))
        bound = 1.0 / math.sqrt(num_codes * channels)  # the official initialisation
        nn.init.uniform_(self.codewords, -bound, bound)
        nn.init.uniform_(self.scale, -1.0, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        codewords = self.codewords
        # ||x_i - d_k||^2 = ||x_i||^2 - 2 x_i.d_k + ||d_k||^2; the batched operand goes first in each matmul
        # so that fvcore's matmul rule counts the batch.
        sq_dist = (
            x.pow(2).sum(-1, keepdim=True) - 2 * torch.matmul(x, codewords.t()) + codewords.pow(2).sum(-1)
        )
        assign = torch.softmax(sq_dist * self.scale, dim=self.assign_dim)  # (B, N, K)
        # sum_i a_ik (x_i - d_k) = (A^T X)_k - (sum_i a_ik) d_k
        return torch.matmul(assign.transpose(1, 2), x) - assign.sum(1).unsqueeze(-1) * codewords


class ContextEncoding(nn.Module):
    """Encoding -> BN + ReLU per codeword -> sum -> FC + sigmoid channel scaling (paper Fig. 2).

    forward(x) -> (x + x * gamma, encoded e); e feeds the training-only SE-loss FC.
    """

    def __init__(self, channels: int = 512, num_codes: int = 32, assignment: str = "codewords"):
        super().__init__()
        self.encoding = Encoding(channels, num_codes, assignment)
        self.bn = nn.BatchNorm1d(num_codes)  # normalises each codeword's residual over batch and channels
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = F.relu(self.bn(self.encoding(x))).sum(1)  # (B, D)
        gamma = torch.sigmoid(self.fc(encoded))
        return x + x * gamma[:, :, None, None], encoded


class EncHead(nn.Module):
    """3x3 ConvBNAct (in -> 512), then the Context Encoding Module."""

    def __init__(
        self, in_channels: int = 2048, channels: int = 512, num_codes: int = 32, assignment: str = "codewords"
    ):
        super().__init__()
        self.conv = ConvBNAct(in_channels, channels, 3)
        self.encode = ContextEncoding(channels, num_codes, assignment)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(self.conv(x))


class EncNet(DilatedResNetSegmenter):
    """forward(x[N, 3, H, W]) -> logits[N, num_classes, H, W] in eval; in train mode with aux heads,
    (logits, [FCN aux logits, SE-loss class-presence logits (N, num_classes)])."""

    def __init__(
        self,
        num_classes: int = 19,
        depth: int = 50,
        num_codes: int = 32,
        aux_heads: bool = True,
        assignment: str = "codewords",
        **kwargs,
    ):
        head = EncHead(2048, 512, num_codes, assignment)
        super().__init__(
            head, 512, num_classes, depth=depth, aux_heads=aux_heads, align_corners=True, **kwargs
        )
        if aux_heads:
            self.aux_heads.append(nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor):
        features = self.backbone(x)
        feat, encoded = self.head(features[-1])
        logits = self.upsample(self.classifier(feat), x)
        if self.training and self.aux_heads is not None:
            fcn_aux, se_fc = self.aux_heads
            return logits, [self.upsample(fcn_aux(features[2]), x), se_fc(encoded)]
        return logits


_PAPER = Paper(
    title="Context Encoding for Semantic Segmentation", venue="CVPR", year=2018, arxiv="1803.08904"
)
_CODE = "https://github.com/zhanghang1989/PyTorch-Encoding"
_V042 = "zhanghang1989/PyTorch-Encoding@d8abf505f686220c0bfad1093003151dd27728d9"
_ZOO_DOC = f"{_V042}:docs/source/experiments/segmentation.rst"
_PARAMS_NOTE = (
    "Neither the paper nor the official repo states a parameter count; this is the count of the official "
    "v0.4.2 definition (torchvision-equal dilated ResNet without fc, EncHead with 32 codewords, 19 classes), "
    "counted from its layer shapes, without the training-only FCN auxiliary head and SE-loss FC."
)
_PCONTEXT_NOTE = (
    "Official model zoo table of the release this file follows (7x7-stem ResNet, no lateral connections, "
    "trained with --aux --se-loss); evaluated multi-scale ('using MS' in the same document); PASCAL-Context "
    "59 classes, pixAcc {}%. That release's Encoding layer normalised the soft assignments over positions, "
    "not codewords (see the module docstring): its weights compute their function here only when built with "
    "assignment='positions'."
)
_NOTES = (
    "The paper reports no parameter count and no FLOPs; the params figure is the official code's count (see "
    "its note). The paper evaluates on PASCAL-Context, PASCAL VOC 2012 and ADE20K, not Cityscapes; 19 "
    "classes is SegBench's default. input_hw: 480x480, the official training crop and the per-forward size "
    "of HEAD's test script (long side resized to 520, then 480x480 sliding windows); v0.4.2's evaluator "
    "instead ran the whole resized image (long side 520, short side padded to 480) at scales up to 1.25. "
    "The paper's per-backbone tables could not be read here, so only the "
    "abstract's numbers are recorded for the paper; the abstract's ADE20K test score (0.5567, the mean of "
    "pixAcc and mIoU) is not an mIoU and is left out. The official repo's later model zoo (deep-stem "
    "'ResNet50s/101s', and lateral connections on PASCAL datasets) describes other architectures and is "
    "not recorded."
)


def _card(depth: int, params_m: float, reported: tuple[Reported, ...]) -> ModelCard:
    return ModelCard(
        group="semantic",
        paper=_PAPER,
        official_code=_CODE,
        implementation=f"segbench (torchvision 0.29 ResNet-{depth} trunk)",
        num_classes=19,
        input_hw=(480, 480),
        reported=(
            Reported("params", params_m, source=f"{_V042}:encoding/models/encnet.py", note=_PARAMS_NOTE),
        )
        + reported,
        notes=_NOTES,
    )


def _pcontext(value: float, pixacc: float) -> Reported:
    return Reported(
        "miou",
        value,
        source=_ZOO_DOC,
        dataset="PASCAL-Context",
        split="val",
        protocol="multi-scale (official test.py)",
        variant="v0.4.2 Encoding layer: soft assignment over positions (assignment='positions')",
        note=_PCONTEXT_NOTE.format(pixacc),
    )


_ABSTRACT_NOTE = (
    "The abstract does not name the backbone; attributed to ResNet-101 as the official model zoo lists its "
    "VOC model as EncNet_ResNet101s_VOC, 85.9% (HEAD ac748410 docs/source/model_zoo/segmentation.rst). "
)

CARD_R50 = _card(50, 33.235123, (_pcontext(49.5, 78.6),))
CARD_R101 = _card(
    101,
    52.227251,
    (
        _pcontext(52.1, 80.0),
        Reported(
            "miou",
            51.7,
            source="paper abstract",
            dataset="PASCAL-Context",
            split="not stated in the abstract",
            protocol="not stated in the abstract",
            note=_ABSTRACT_NOTE,
        ),
        Reported(
            "miou",
            85.9,
            source="paper abstract",
            dataset="PASCAL VOC 2012",
            split="not stated in the abstract",
            protocol="not stated in the abstract",
            variant="MS-COCO pretrained (the official training command for the VOC model)",
            note=_ABSTRACT_NOTE + "The official training command for it starts from an MS-COCO model.",
        ),
    ),
)


_RENAMES = (
    ("pretrained.", "backbone."),
    ("head.conv5.0.", "head.conv.conv."),
    ("head.conv5.1.", "head.conv.bn."),
    ("head.encmodule.encoding.0.", "head.encode.encoding."),
    ("head.encmodule.encoding.1.", "head.encode.bn."),
    ("head.encmodule.fc.0.", "head.encode.fc."),
    ("head.encmodule.selayer.", "aux_heads.1."),
    ("head.conv6.", "classifier.1."),
    ("auxlayer.conv5.0.", "aux_heads.0.conv.conv."),
    ("auxlayer.conv5.1.", "aux_heads.0.conv.bn."),
    ("auxlayer.conv5.4.", "aux_heads.0.cls."),
)


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a zhanghang1989/PyTorch-Encoding v0.4.2 EncNet checkpoint (encoding/models/encnet.py) onto ours."""
    out = {}
    for key, value in state.items():
        if key.startswith("pretrained.fc."):  # the ImageNet classifier, never called
            continue
        for old, new in _RENAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    bias = out.pop("aux_heads.0.conv.conv.bias", None)
    if bias is not None:  # a conv bias before BN shifts the BN's input: fold it into the running mean
        out["aux_heads.0.conv.bn.running_mean"] = out["aux_heads.0.conv.bn.running_mean"] - bias
    return out


@register_model(card=CARD_R50, converter=convert_official)
def encnet_r50(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return EncNet(num_classes=num_classes, depth=50, aux_heads=aux_heads, **kwargs)


@register_model(card=CARD_R101, converter=convert_official)
def encnet_r101(num_classes: int = 19, aux_heads: bool = True, **kwargs) -> nn.Module:
    return EncNet(num_classes=num_classes, depth=101, aux_heads=aux_heads, **kwargs)
