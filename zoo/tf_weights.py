"""TensorFlow/Keras checkpoints: reading Keras .h5 weight files, and Keras variables as PyTorch tensors.

Keras applications ship their ImageNet weights as HDF5 files (`model.save_weights` in the Keras 2 layout: the
root's `layer_names` attribute lists the layers; each layer's group lists its variables in `weight_names`,
e.g. 'Conv1/kernel:0'). HDF5 holds arrays, never code, so h5py reads it safely. `read_keras_h5` gives
{'<layer>/<variable>': tensor} with the ':0' suffix dropped, the names Keras 3 gives the same variables
(`variable.path`), so one converter serves files of either Keras version.

Layouts: Keras convolution kernels are (kh, kw, in, out) and depthwise kernels (kh, kw, channels,
multiplier), dense kernels (in, out); PyTorch's are (out, in, kh, kw), (channels * multiplier, 1, kh, kw)
and (out, in). Keras 2 names a DepthwiseConv2D's kernel 'depthwise_kernel', Keras 3 'kernel';
`keras_variables` reads both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

# Keras BatchNormalization variable -> PyTorch BatchNorm2d state_dict entry.
BN_VARIABLES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def read_keras_h5(path: str | Path) -> dict[str, torch.Tensor]:
    """The variables of a Keras weights file (.h5), keyed '<layer>/<variable>'. Needs h5py."""
    try:
        import h5py
    except ImportError:
        raise ValueError("reading Keras .h5 weights needs the h5py package (pip install h5py)") from None
    import numpy as np

    def names(node, attribute: str) -> list[str]:
        return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in node.attrs.get(attribute, [])]

    state = {}
    with h5py.File(path, "r") as f:
        root = f.get("model_weights", f)  # a whole saved model keeps them there
        if "layer_names" not in root.attrs:
            raise ValueError(f"{path} is not a Keras weights file (no 'layer_names' attribute)")
        for layer in names(root, "layer_names"):
            group = root[layer]
            for name in names(group, "weight_names"):
                state[name.removesuffix(":0")] = torch.from_numpy(np.array(group[name]))
    return state


def keras_variables(state: Mapping[str, torch.Tensor]) -> dict[tuple[str, str], torch.Tensor]:
    """{(layer, variable): tensor} of a Keras state; a Keras 2 DepthwiseConv2D's 'depthwise_kernel' (a
    layer without a 'pointwise_kernel', i.e. not a SeparableConv2D) is named 'kernel', as in Keras 3."""
    out = {}
    for key, value in state.items():
        layer, _, variable = key.removesuffix(":0").rpartition("/")
        if variable == "depthwise_kernel" and f"{layer}/pointwise_kernel" not in state:
            variable = "kernel"
        out[layer, variable] = value
    return out


def conv_kernel(value: torch.Tensor) -> torch.Tensor:
    """(kh, kw, in, out) -> (out, in, kh, kw)."""
    return value.permute(3, 2, 0, 1).contiguous()


def depthwise_kernel(value: torch.Tensor) -> torch.Tensor:
    """(kh, kw, channels, multiplier) -> (channels * multiplier, 1, kh, kw)."""
    kh, kw, channels, multiplier = value.shape
    return value.permute(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw).contiguous()


def dense_kernel(value: torch.Tensor) -> torch.Tensor:
    """(in, out) -> (out, in); a 1x1 conv kernel (1, 1, in, out) -> (out, in) too (Linear vs 1x1)."""
    return value.reshape(value.shape[-2:]).t().contiguous()


def batch_norm(prefix: str, variables: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Keras BatchNormalization's variables as PyTorch BatchNorm2d entries under `prefix` (with a zero
    num_batches_tracked, which Keras does not keep)."""
    out = {f"{prefix}.{BN_VARIABLES[name]}": value for name, value in variables.items()}
    out[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    return out
