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
layer for layer the same, with 22,855,952 parameters at 1000 classes, exactly Keras's trainable count, with
two changes that make it compute the Keras network (neither changes parameters, MACs or output shapes):
- the strided max pools pad like TensorFlow's 'SAME' (timm's MaxPool2dSame): on an even side the extra
  pixel goes bottom/right, where timm pads one on each side (the pooled grid then shifts by a pixel against
  the strided shortcut conv's);
- BatchNorm eps 1e-3 (Keras's), not PyTorch's 1e-5. BatchNorm momentum stays PyTorch's (training only).

Parity: tests/fixtures/parity/xception.json was recorded from keras.applications.Xception (Keras 3.15.1 =
keras-team/keras@250b421, whose xception.py has the same layers, names and paddings as @00135a7; torch
backend, random weights by variable name); `convert_keras` maps its
variables ('<layer>/<variable>', Keras layouts; the .h5 file Keras ships reads through `load_weights`, the
unnamed shortcut convs and BatchNorms found by width) onto ours strictly, and our logits equal Keras's
(relative difference about 1e-6). timm's padding and eps alone differ by 8% of the logits' scale.
"""

from __future__ import annotations

import re

import timm
import torch
from timm.layers.pool2d_same import MaxPool2dSame
from torch import nn

from zoo import tf_weights
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
    implementation=f"timm {timm.__version__} legacy_xception (TF 'SAME' max pools, BatchNorm eps 1e-3)",
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
    "(299, 299, 3)' with include_top)."
    " Parity is checked against keras.applications.Xception (keras-team/keras@250b421); Keras's ImageNet "
    "weights file (.h5) loads with load_weights(model, path, 'xception') when h5py is installed.",
)


_KERAS_FIXED = {
    "block1_conv1": "conv1",
    "block1_conv1_bn": "bn1",
    "block1_conv2": "conv2",
    "block1_conv2_bn": "bn2",
    "block14_sepconv1": "conv3",
    "block14_sepconv1_bn": "bn3",
    "block14_sepconv2": "conv4",
    "block14_sepconv2_bn": "bn4",
    "predictions": "fc",
}
# Keras leaves the strided blocks' shortcut convs and their BatchNorms unnamed (conv2d, conv2d_1, ... or
# batch_normalization, ... depending on the session); their widths tell them apart.
_SHORTCUT = {128: "block1", 256: "block2", 728: "block3", 1024: "block12"}


def _our_module(layer: str, variables: dict[str, torch.Tensor]) -> str | None:
    if layer in _KERAS_FIXED:
        return _KERAS_FIXED[layer]
    if m := re.fullmatch(r"block(\d+)_sepconv(\d)(_bn)?", layer):
        block, conv = int(m[1]), int(m[2])
        # timm's block k is Keras's block k + 1; its `rep` holds (ReLU, SeparableConv, BN) per conv, the
        # first ReLU dropped in block 1.
        index = 3 * (conv - 1) + (1 if m[3] else 0) + (0 if block == 2 else 1)
        return f"block{block - 1}.rep.{index}"
    width = next(iter(variables.values())).shape[-1]  # kernel (1, 1, in, out) or a BatchNorm vector
    if set(variables) == {"kernel"} and width in _SHORTCUT:
        return f"{_SHORTCUT[width]}.skip"
    if set(variables) == set(tf_weights.BN_VARIABLES) and width in _SHORTCUT:
        return f"{_SHORTCUT[width]}.skipbn"
    return None


def convert_keras(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Keras Xception application's weights ('<layer>/<variable>', e.g. the .h5 file Keras ships, read
    by zoo.weights) -> ours. A layer no rule covers keeps its Keras name, so `check_fits` reports it."""
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for (layer, variable), value in tf_weights.keras_variables(state).items():
        layers.setdefault(layer, {})[variable] = value
    out = {}
    for layer, variables in layers.items():
        prefix = _our_module(layer, variables)
        if prefix is None:
            out.update({f"{layer}/{name}": value for name, value in variables.items()})
        elif set(variables) == set(tf_weights.BN_VARIABLES):
            out.update(tf_weights.batch_norm(prefix, variables))
        elif "pointwise_kernel" in variables:  # SeparableConv2D: depthwise then pointwise, no bias
            out[f"{prefix}.conv1.weight"] = tf_weights.depthwise_kernel(variables["depthwise_kernel"])
            out[f"{prefix}.pointwise.weight"] = tf_weights.conv_kernel(variables["pointwise_kernel"])
        elif prefix == "fc":
            out["fc.weight"] = tf_weights.dense_kernel(variables["kernel"])
            out["fc.bias"] = variables["bias"]
        else:
            out[f"{prefix}.weight"] = tf_weights.conv_kernel(variables["kernel"])
    return out


def _as_keras(model: nn.Module) -> nn.Module:
    """timm's legacy_xception made to compute Keras's Xception: the strided max pools pad like
    TensorFlow's 'SAME' (an even side's extra pixel bottom/right), and BatchNorm eps is Keras's 1e-3."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = 1e-3
        rep = getattr(module, "rep", None)
        if rep is not None and isinstance(rep[-1], nn.MaxPool2d):
            rep[-1] = MaxPool2dSame(3, 2)
    return model


@register_model(card=CARD, converter=convert_keras)
def xception(num_classes: int = 1000, **kwargs) -> nn.Module:
    return _as_keras(
        timm.create_model("legacy_xception", pretrained=False, num_classes=num_classes, **kwargs)
    )
