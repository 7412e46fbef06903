"""Xception (Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017, arXiv
1610.02357), the ImageNet classifier at 299x299.

Official code: the author's Keras implementation, keras-team/keras keras/applications/xception.py
(@00135a7); the paper released no other code. Entry flow: two 3x3 convs (32 stride 2, 64; no padding), then
three residual blocks of two separable convs and a strided 3x3 max pool (128, 256, 728 channels) with
strided 1x1 conv + BN shortcuts. Middle flow: eight residual blocks of three ReLU-separable conv-BN units
at 728. Exit flow: a strided residual block (728 -> 1024), separable convs to 1536 and 2048 with ReLU, global
average pooling and the classifier. Separable convs have no BN or activation between the depthwise and
pointwise parts, as in the Keras code.

Built by timm's `legacy_xception`, a port of the Keras model (its weights are converted Keras weights):
layer for layer the same, with 22,855,952 parameters at 1000 classes, exactly Keras's trainable count.
Differences, none of which changes parameters or MACs:
- PyTorch's symmetric padding for the strided max pools; Keras's 'same' pads bottom/right on even sizes
  (the output sizes agree, the sampling grid shifts by a pixel).
- BatchNorm eps 1e-5 and momentum 0.1 (PyTorch defaults) against Keras's 1e-3 and 0.99.
"""

from __future__ import annotations

import timm
from torch import nn

from zoo.card import ModelCard, Paper, Reported
from zoo.registry import register_model

_KERAS = "keras-team/keras@00135a70697dc9b4611971e5833e2d84501c3da7:keras/applications/xception.py"
_KERAS_IO = "keras-team/keras-io@01b6d6c4c4ef2c7975be4c42ac148db57352d978:templates/api/applications/index.md"

CARD = ModelCard(
    group="backbone",
    paper=Paper(
        title="Xception: Deep Learning with Depthwise Separable Convolutions",
        venue="CVPR",
        year=2017,
        arxiv="1610.02357",
    ),
    official_code="https://github.com/keras-team/keras/blob/00135a70697dc9b4611971e5833e2d84501c3da7/"
    "keras/applications/xception.py",
    implementation=f"timm {timm.__version__} legacy_xception",
    num_classes=1000,
    input_hw=(299, 299),
    reported=(
        Reported(
            "params",
            22.910480,
            source=f"{_KERAS_IO} ('Available models' table, Xception row: 22,910,480)",
            note="Keras counts the BatchNorm moving means and variances (54,528 non-trainable values) as "
            "parameters; its trainable count, 22,855,952, is ours exactly (-0.24% against this figure).",
        ),
        Reported(
            "top1",
            79.0,
            source=f"{_KERAS} (module docstring: 'top-1 validation accuracy of 0.790')",
            dataset="ImageNet-1k",
            split="val",
            input_hw=(299, 299),
            note="Keras's pretrained weights; top-5 0.945. The keras-io table above gives the same 0.790.",
        ),
    ),
    notes="The paper's tables could not be retrieved here, so its numbers are not cited: its parameter "
    "count is widely quoted as 22,855,952 (e.g. Papers with Code's 'results from the paper'), which is "
    "our count exactly, and its ImageNet top-1 as 0.790. The official code and docs give no FLOPs figure "
    "(nor, as far as we know, does the paper). Params include the 1000-class classifier. input_hw is "
    "299x299: Keras's default_size, and the only input shape its classifier model accepts ('has to be "
    "(299, 299, 3)' with include_top).",
)


@register_model(card=CARD)
def xception(num_classes: int = 1000, **kwargs) -> nn.Module:
    return timm.create_model("legacy_xception", pretrained=False, num_classes=num_classes, **kwargs)
