"""MobileNetV2 (Sandler et al., CVPR 2018), the ImageNet classifier, width 1.0, 224x224.

Built by torchvision's `mobilenet_v2`, which follows the paper's Table 2 (inverted residuals with linear
bottlenecks: no activation after the projection conv; ReLU6 elsewhere) and has exactly the standard
3,504,872 parameters at 1000 classes. Random initialisation only: no weights are downloaded.
"""

from __future__ import annotations

import torchvision
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.registry import register_model

_TF_README = (
    "tensorflow/models@0ba83cf:research/slim/nets/mobilenet/README.md "
    "(V2 checkpoint table, mobilenet_v2_1.0_224)"
)

CARD = ModelCard(
    group="backbone",
    paper=Paper(
        title="MobileNetV2: Inverted Residuals and Linear Bottlenecks",
        venue="CVPR",
        year=2018,
        arxiv="1801.04381",
    ),
    official_code="https://github.com/tensorflow/models/tree/master/research/slim/nets/mobilenet",
    implementation=f"torchvision {torchvision.__version__.split('+')[0]} mobilenet_v2",
    num_classes=1000,
    input_hw=(224, 224),
    reported=(
        # The official checkpoint table gives params to two decimals; the paper rounds to 3.4M.
        Reported("params", 3.47, source=_TF_README),
        Reported(
            "macs",
            0.300,
            source=_TF_README,
            input_hw=(224, 224),
            convention="multiply-adds",
            note="the README's 'MACs (M)' column: 300",
        ),
        Reported(
            "top1",
            71.8,
            source=_TF_README,
            dataset="ImageNet-1k",
            split="val",
            input_hw=(224, 224),
            protocol="single crop",
        ),
        Reported(
            "latency_ms",
            73.8,
            source=_TF_README,
            input_hw=(224, 224),
            device="Pixel 1 (mobile CPU)",
            note="the table's 'Mobile CPU (ms) Pixel 1' column; backend and threads not stated there",
        ),
    ),
    notes="Numbers are the official code's checkpoint table (two-decimal params). The same README's text "
    "rounds them to ~300M multiply-adds and 72% top-1; the paper's own Table 4 was not retrieved, so it is "
    "not cited. Our 3,504,872 params include torchvision's 1000-class classifier "
    "(TF's checkpoints have 1001 outputs).",
)


@register_model(card=CARD)
def mobilenetv2(num_classes: int = 1000, width_mult: float = 1.0, **kwargs) -> nn.Module:
    return torchvision.models.mobilenet_v2(
        weights=None, num_classes=num_classes, width_mult=width_mult, **kwargs
    )
