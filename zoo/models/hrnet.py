"""HRNet ImageNet classifiers (Wang et al., "Deep High-Resolution Representation Learning for Visual
Recognition", TPAMI, arXiv 1908.07919): HRNet-W18-C-Small-v1, HRNet-W18-C and HRNet-W48-C, 224x224.

Official code: HRNet/HRNet-Image-Classification, lib/models/cls_hrnet.py @ 4ad13bb and the configs
experiments/cls_hrnet_w18_small_v1_*.yaml @ 5631f68, cls_hrnet_w18_*.yaml @ 530c601 and
cls_hrnet_w48_*.yaml @ e42406f. A stem of two stride-2 3x3 convs, four stages that keep the high-resolution
stream and add a lower one per stage (exchange units: strided 3x3 convs down, 1x1 conv + nearest upsample
up, summed), then the classification head: bottlenecks lift the four streams to 128/256/512/1024
channels, strided 3x3 convs merge them from high to low resolution, a 1x1 conv to 2048, global average
pooling and the classifier.

Built by timm's HighResolutionNet (`hrnet_w18_small`, `hrnet_w18`, `hrnet_w48`). Its configs are the
official ones (blocks, modules and widths per stage, checked against the YAML files above), its head is
the official head (biased head convs included), and it has the official parameter counts (13,187,464,
21,299,004 and 77,469,864 with 1000 classes). W18-C-Small-v1 is timm's `hrnet_w18_small`.

Deviation: the official exchange units upsample by a fixed factor (2, 4, 8), so a lower stream whose size
was rounded up by a stride-2 conv comes back one pixel too large when an input side is not a multiple of
32, and the sum fails. We crop each upsampled map to its target stream's size (`_AnySizeHRModule`), which is
the identity at multiples of 32 (ImageNet's 224 included) and lets the model run on any size. State dict
keys are timm's, so timm/official weights still load.

Parity: tests/fixtures/parity/hrnet_w18_small.json, hrnet_w18.json and hrnet_w48.json were recorded from the
official cls_hrnet.py (@ f760c98, the file as of 4ad13bb) built with the three YAML configs. The official
state dict has exactly our keys and shapes (tools/valid.py loads the released .pth files strictly into the
model as they are, so they are plain state dicts of those keys), so the authors'
checkpoints load through `zoo.weights.load_weights` without a converter and give the official logits
(relative difference below 1e-6 at 128x192).
"""

from __future__ import annotations

import timm
import torch
from timm.models.hrnet import HighResolutionModule
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.registry import register_model

_README = (
    "HRNet/HRNet-Image-Classification@f760c988482cdb8a1f69b10b219d669721144582:README.md "
    "(table 'ImageNet pretrained models')"
)
_FLOPS_CONVENTION = "multiply-adds / 2^30 (conv and linear layers only)"
_FLOPS_NOTE = (
    "The README's 'GFLOPs'. The repo's lib/utils/modelsummary.py (@890b599) sums conv and linear "
    "multiply-adds and divides by 1024**3; our conv + linear multiply-adds at 224x224 reproduce the "
    "figure that way: {macs:,} / 2^30 = {gib:.3f}."
)


class _AnySizeHRModule(HighResolutionModule):
    """timm's exchange unit, with upsampled inputs cropped to the target stream's size (see docstring)."""

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.num_branches == 1:
            return [self.branches[0](x[0])]
        x = [branch(t) for branch, t in zip(self.branches, x, strict=True)]
        out = []
        for i, fuse in enumerate(self.fuse_layers):
            h, w = x[i].shape[-2:]
            # Summed in timm's order; only the upsampled (j > i) maps can overshoot the target size.
            parts = [
                f(t)[..., :h, :w] if j > i else f(t) for j, (f, t) in enumerate(zip(fuse, x, strict=True))
            ]
            y = parts[0]
            for p in parts[1:]:
                y = y + p
            out.append(self.fuse_act(y))
        return out


def _hrnet(variant: str, num_classes: int, **kwargs) -> nn.Module:
    model = timm.create_model(variant, pretrained=False, num_classes=num_classes, **kwargs)
    for m in model.modules():
        if type(m) is HighResolutionModule:
            m.__class__ = _AnySizeHRModule
    return model


_PAPER = Paper(
    title="Deep High-Resolution Representation Learning for Visual Recognition",
    venue="TPAMI",
    year=2021,
    arxiv="1908.07919",
)
_NOTES = (
    "All numbers are the official repo's README table (the paper's ImageNet table was not retrieved "
    "here). Params include the 1000-class classifier; ours match to the README's rounding. top1 is "
    "100 - the README's top-1 error. The README's 'GFLOPs' are multiply-adds divided by 2^30, not 1e9 "
    "(see the flops note), so in SI units they are 7.4% larger."
)


def _card(variant: str, model: str, params: float, gflops: float, macs: int, top1_err: float) -> ModelCard:
    return ModelCard(
        group="backbone",
        paper=_PAPER,
        official_code="https://github.com/HRNet/HRNet-Image-Classification",
        implementation=f"timm {timm.__version__} {variant}",
        num_classes=1000,
        input_hw=(224, 224),
        reported=(
            Reported("params", params, source=_README, note=f"{model}, '#Params' column"),
            Reported(
                "flops",
                gflops,
                source=_README,
                input_hw=(224, 224),
                convention=_FLOPS_CONVENTION,
                note=_FLOPS_NOTE.format(macs=macs, gib=macs / 2**30),
            ),
            Reported(
                "top1",
                round(100 - top1_err, 1),
                source=_README,
                input_hw=(224, 224),
                dataset="ImageNet-1k",
                split="val",
                protocol="single crop",
                note=f"100 - top-1 error {top1_err}%",
            ),
        ),
        notes=_NOTES,
    )


@register_model(card=_card("hrnet_w18_small", "HRNet-W18-C-Small-v1", 13.2, 1.49, 1_601_508_352, 27.7))
def hrnet_w18_small(num_classes: int = 1000, **kwargs) -> nn.Module:
    return _hrnet("hrnet_w18_small", num_classes, **kwargs)


@register_model(card=_card("hrnet_w18", "HRNet-W18-C", 21.3, 3.99, 4_283_537_072, 23.2))
def hrnet_w18(num_classes: int = 1000, **kwargs) -> nn.Module:
    return _hrnet("hrnet_w18", num_classes, **kwargs)


@register_model(card=_card("hrnet_w48", "HRNet-W48-C", 77.5, 16.1, 17_277_996_032, 20.7))
def hrnet_w48(num_classes: int = 1000, **kwargs) -> nn.Module:
    return _hrnet("hrnet_w48", num_classes, **kwargs)
