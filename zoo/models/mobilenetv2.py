"""MobileNetV2 (Sandler et al., CVPR 2018), the ImageNet classifier, width 1.0, 224x224.

Official code: tensorflow/models research/slim/nets/mobilenet (TF1 slim). The TF/Keras network we check
against is Keras's MobileNetV2 application (keras-team/keras keras/src/applications/mobilenet_v2.py, the
TensorFlow ecosystem's Keras definition, which ships ImageNet weights as .h5): the slim code needs TF1's
graph-mode slim, which we did not build.

Built by torchvision's `mobilenet_v2`, which follows the paper's Table 2 (inverted residuals with linear
bottlenecks: no activation after the projection conv; ReLU6 elsewhere) and has exactly the standard
3,504,872 parameters at 1000 classes, with two changes that make it compute the TF/Keras network:
- strided convs pad like TensorFlow's 'SAME' (Keras's `correct_pad`): on an even side the extra pixel goes
  bottom/right, where torchvision pads one pixel on each side (a half-pixel shift of every later feature);
- BatchNorm eps 1e-3 (Keras's), not PyTorch's 1e-5.
Neither changes parameters, MACs or output shapes. BatchNorm momentum stays PyTorch's (training only).
Random initialisation only: no weights are downloaded.

Parity: tests/fixtures/parity/mobilenetv2.json was recorded from the Keras application (Keras 3.15.1 =
keras-team/keras@250b421, torch backend, random weights by variable name); `convert_keras` maps its
variables ('<layer>/<variable>', Keras layouts; the .h5 files Keras ships read through `load_weights`) onto
ours strictly, and our logits equal Keras's (relative difference about 1e-6). torchvision's padding and eps
alone differ by 7% of the logits' scale.
"""

from __future__ import annotations

import re
from functools import partial

import torch
import torchvision
from timm.layers import Conv2dSame
from torch import nn

from zoo import tf_weights
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
    implementation=f"torchvision {torchvision.__version__.split('+')[0]} mobilenet_v2 "
    "(TF 'SAME' strided convs, BatchNorm eps 1e-3)",
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
    "(TF's checkpoints have 1001 outputs). Parity is checked against Keras's MobileNetV2 application "
    "(keras-team/keras@250b421), not the TF1 slim code; its ImageNet .h5 weights (1000 classes) load "
    "with load_weights(model, path, 'mobilenetv2') when h5py is installed.",
)


# Keras layer -> (our module, kind), for the parts outside the numbered inverted-residual blocks.
_KERAS_FIXED = {
    "Conv1": ("features.0.0", "conv"),
    "bn_Conv1": ("features.0.1", "bn"),
    "Conv_1": ("features.18.0", "conv"),
    "Conv_1_bn": ("features.18.1", "bn"),
    "predictions": ("classifier.1", "dense"),
}
# Inverted-residual block part -> (module inside torchvision's block, kind); block 0 has no expansion.
_KERAS_BLOCK = {
    "expand": ("conv.0.0", "conv"),
    "expand_BN": ("conv.0.1", "bn"),
    "depthwise": ("conv.1.0", "depthwise"),
    "depthwise_BN": ("conv.1.1", "bn"),
    "project": ("conv.2", "conv"),
    "project_BN": ("conv.3", "bn"),
}
_KERAS_BLOCK0 = {
    "depthwise": ("conv.0.0", "depthwise"),
    "depthwise_BN": ("conv.0.1", "bn"),
    "project": ("conv.1", "conv"),
    "project_BN": ("conv.2", "bn"),
}
_TENSOR = {
    "conv": tf_weights.conv_kernel,
    "depthwise": tf_weights.depthwise_kernel,
    "dense": tf_weights.dense_kernel,
}


def _our_module(layer: str) -> tuple[str, str] | None:
    if layer in _KERAS_FIXED:
        return _KERAS_FIXED[layer]
    if m := re.fullmatch(r"expanded_conv_(\w+)", layer):
        found = _KERAS_BLOCK0.get(m[1])
        return (f"features.1.{found[0]}", found[1]) if found else None
    if m := re.fullmatch(r"block_(\d+)_(\w+)", layer):
        found = _KERAS_BLOCK.get(m[2])
        return (f"features.{int(m[1]) + 1}.{found[0]}", found[1]) if found else None
    return None


def convert_keras(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The Keras MobileNetV2 application's weights ('<layer>/<variable>', e.g. the .h5 file Keras ships,
    read by zoo.weights) -> ours. A layer no rule covers keeps its Keras name, so `check_fits` reports it."""
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for (layer, variable), value in tf_weights.keras_variables(state).items():
        layers.setdefault(layer, {})[variable] = value
    out = {}
    for layer, variables in layers.items():
        found = _our_module(layer)
        if found is None:
            out.update({f"{layer}/{name}": value for name, value in variables.items()})
            continue
        prefix, kind = found
        if kind == "bn":
            out.update(tf_weights.batch_norm(prefix, variables))
            continue
        for name, value in variables.items():
            out[f"{prefix}.{'bias' if name == 'bias' else 'weight'}"] = (
                value if name == "bias" else _TENSOR[kind](value)
            )
    return out


def _tf_same_strided(model: nn.Module) -> nn.Module:
    """Strided convs pad like TensorFlow's 'SAME' (and Keras's correct_pad): the extra pixel of an even
    side goes bottom/right. Same weights and keys (timm's Conv2dSame is an nn.Conv2d)."""
    for m in model.modules():
        if type(m) is nn.Conv2d and m.stride != (1, 1):
            m.__class__ = Conv2dSame
            m.padding = (0, 0)
    return model


@register_model(card=CARD, converter=convert_keras)
def mobilenetv2(num_classes: int = 1000, width_mult: float = 1.0, **kwargs) -> nn.Module:
    kwargs.setdefault("norm_layer", partial(nn.BatchNorm2d, eps=1e-3))
    return _tf_same_strided(
        torchvision.models.mobilenet_v2(
            weights=None, num_classes=num_classes, width_mult=width_mult, **kwargs
        )
    )
