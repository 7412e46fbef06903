"""HRNetV2 for semantic segmentation (Wang et al., "Deep High-Resolution Representation Learning for Visual
Recognition", TPAMI, arXiv 1908.07919): HRNetV2-W18-Small-v1 and HRNetV2-W48 on Cityscapes.

Official code: HRNet/HRNet-Semantic-Segmentation, branch pytorch-v1.1 @ 88419ab: lib/models/seg_hrnet.py and
experiments/cityscapes/seg_hrnet_w18_small_v1_*.yaml, seg_hrnet_w48_train_*.yaml. The trunk is the
classification HRNet's (a stem of two stride-2 3x3 convs, four stages of parallel streams at strides 4, 8,
16, 32 joined by exchange units); the HRNetV2 head upsamples the three lower streams bilinearly to the
stride-4 one, concatenates all four, mixes them with a 1x1 conv (with bias) + BN + ReLU keeping the width
(`last_inp_channels`: 720 for W48, 240 for W18-Small-v1), and a 1x1 classifier predicts at stride 4; the
logits are upsampled to the input size (the official test code does so outside the model).

"W18-Small" is the official README's HRNetV2-W18-Small-v1 (1.5M params), the first of its two small models
and the width the ImageNet model `hrnet_w18_small` (timm, zoo.models.hrnet) shares; Small-v2 (3.9M) is a
wider, deeper trunk (`cfg_cls["hrnet_w18_small_v2"]`), not built here.

Built on timm's HighResolutionNet trunk (head="none"): its stage configs are the official seg YAML ones
(blocks, modules and widths per stage), its parameter count is the official one (the whole model has
1,540,819 and 65,859,379 parameters with 19 classes, as the official code builds it) and its state-dict
keys are the official ones, so `convert_official` only renames the head.

Deviations and why:
- timm's exchange units upsample a lower stream by nearest x2^k (the ImageNet code's choice); the
  segmentation code upsamples bilinearly to the target stream's size. `SegHRModule` does the latter, which
  also makes every input size work (a rounded-up lower stream is resized to its target, never overshoots).
- Bilinear resizing with align_corners=False, as the pytorch-v1.1 code runs it (F.interpolate's default);
  the HRNet-OCR branch switches to align_corners=True (`align_corners` argument, used by zoo.models.ocrnet).

Parity: tests/fixtures/parity/hrnetv2_w18_small.json and hrnetv2_w48.json were recorded from the official
seg_hrnet.py (@ 88419ab) built with the Cityscapes YAMLs and wrapped as tools/train.py saves it (FullModel:
'model.' prefixes and the loss's 'loss.criterion.weight'), so the manifests have the released checkpoints'
layout; `convert_official` loads them strictly and our logits equal the official ones (relative difference
below 1e-6 at 128x192, identical argmax).
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from zoo.backbones import HRNetTrunk
from zoo.card import ModelCard, Paper, Reported
from zoo.layers import ConvBNAct, resize_to
from zoo.registry import register_model


class HRNetV2Seg(nn.Module):
    """HRNet trunk -> concat of the four streams -> 1x1 ConvBNAct (with bias) -> 1x1 classifier -> upsample.

    forward(x[N, 3, H, W]) -> logits[N, num_classes, H, W]. No auxiliary head (the official model has none).
    """

    def __init__(self, variant: str, num_classes: int = 19, align_corners: bool = False):
        super().__init__()
        self.backbone = HRNetTrunk(variant, align_corners)
        channels = sum(self.backbone.out_channels)
        self.head = nn.Sequential(
            ConvBNAct(channels, channels, 1, bias=True), nn.Conv2d(channels, num_classes, 1)
        )
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.concat_streams(self.backbone(x))
        return resize_to(self.head(feats), x, align_corners=self.align_corners)


def convert_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official seg_hrnet.py checkpoint -> ours. Released files prefix keys with 'model.' (the training
    wrapper, stripped by the official test script) and may hold the loss's class weights ('loss.*')."""
    head = {"last_layer.0.": "head.0.conv.", "last_layer.1.": "head.0.bn.", "last_layer.3.": "head.1."}
    out = {}
    for key, value in state.items():
        if key.startswith("loss."):
            continue
        key = key.removeprefix("model.")
        for old, new in head.items():
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            out["backbone." + key] = value
    return out


_PAPER = Paper(
    title="Deep High-Resolution Representation Learning for Visual Recognition",
    venue="TPAMI",
    year=2021,
    arxiv="1908.07919",
)
_COMMIT = "88419ab18813f2c9193985e2d4d31d3d07abe839"
_README = f"HRNet/HRNet-Semantic-Segmentation@{_COMMIT}:README.md"
_CS_HW = (1024, 2048)
_FLOPS_CONVENTION = "multiply-adds / 2^30 (conv and linear layers only)"
_FLOPS_NOTE = (
    "The README's 'GFLOPs'. The repo's lib/utils/modelsummary.py (@{commit}) sums conv and linear "
    "multiply-adds (bias excluded) and divides by 1024**3; our conv multiply-adds at 1024x2048 reproduce the "
    "figure that way: {macs:,} / 2^30 = {gib:.1f}."
)
_PARAMS_NOTE = (
    "'#Params' column. The official code (seg_hrnet.py with the Cityscapes YAML, 19 classes) builds "
    "{count:,} parameters; ours match exactly."
)
_MIOU_PROTOCOL = "single-scale, no flip, whole image (1024x2048)"
_NOTES = (
    "Numbers are the official repo's README (branch pytorch-v1.1); the paper's Cityscapes table was not "
    "retrieved here. Trained on train (2975 images) at 512x1024 crops, tested at 1024x2048. The README's "
    "'GFLOPs' are multiply-adds / 2^30 (see the flops note), so in SI units they are 7.4% larger."
)


def _card(model: str, params: float, count: int, gflops: float, macs: int, miou: float, **extra) -> ModelCard:
    reported = [
        Reported("params", params, source=_README, note=f"{model}. " + _PARAMS_NOTE.format(count=count)),
        Reported(
            "flops",
            gflops,
            source=_README,
            input_hw=_CS_HW,
            convention=_FLOPS_CONVENTION,
            note=_FLOPS_NOTE.format(commit=_COMMIT[:7], macs=macs, gib=macs / 2**30),
        ),
        Reported(
            "miou",
            miou,
            source=_README,
            input_hw=_CS_HW,
            dataset="Cityscapes",
            split="val",
            protocol=_MIOU_PROTOCOL,
            note=f"{model}, trained on train, no OHEM.",
        ),
    ]
    return ModelCard(
        group="semantic",
        paper=_PAPER,
        official_code="https://github.com/HRNet/HRNet-Semantic-Segmentation/tree/pytorch-v1.1",
        implementation=f"segbench (timm {timm.__version__} HighResolutionNet trunk)",
        num_classes=19,
        input_hw=_CS_HW,
        reported=tuple(reported) + extra.pop("more", ()),
        notes=_NOTES + extra.pop("notes", ""),
    )


_W18_SMALL_CARD = _card(
    "HRNetV2-W18-Small-v1 ('Small models' table)",
    1.5,
    1_540_819,
    31.1,
    33_390_854_144,
    70.3,
    notes=" The survey's hrnetv2_w18_small is the README's Small-v1 (Small-v2: 3.9M, 76.2% is not built).",
)

_W48_CARD = _card(
    "HRNetV2-W48 ('Big models' table)",
    65.8,
    65_859_379,
    696.2,
    747_513_053_184,
    81.1,
    more=(
        Reported(
            "latency_ms",
            150.0,
            source=_README,
            input_hw=_CS_HW,
            device="V100",
            backend="PyTorch 1.0",
            note="'Memory usage and time cost' table: infer sec./image 0.150 (precision not stated).",
        ),
        Reported(
            "miou",
            80.9,
            source="HRNet/HRNet-Semantic-Segmentation@8037a7fb867b58d885b26b1ceb8283a7ee252851:README.md",
            input_hw=_CS_HW,
            dataset="Cityscapes",
            split="val",
            protocol=_MIOU_PROTOCOL,
            note="Branch master (PyTorch 0.4.1) 'Big models' table, trained on train, no OHEM.",
        ),
    ),
)


@register_model(card=_W18_SMALL_CARD, converter=convert_official)
def hrnetv2_w18_small(num_classes: int = 19, **kwargs) -> nn.Module:
    return HRNetV2Seg("hrnet_w18_small", num_classes=num_classes, **kwargs)


@register_model(card=_W48_CARD, converter=convert_official)
def hrnetv2_w48(num_classes: int = 19, **kwargs) -> nn.Module:
    return HRNetV2Seg("hrnet_w48", num_classes=num_classes, **kwargs)
