"""Keras checkpoints: the layout conversions against hand-written convolutions, and Keras .h5 weight files
read through zoo.weights (with h5py, when installed)."""

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo import tf_weights
from zoo.parity import ATOL_REL, compare_with_manifest, official_state_dict, read_manifest
from zoo.weights import load_weights, read_state_dict

PARITY = Path(__file__).resolve().parents[1] / "fixtures" / "parity"


def _keras_conv(x_nhwc, kernel):
    """A 'valid' Keras Conv2D by its definition: y[n, i, j, o] = sum x[n, i + a, j + b, c] k[a, b, c, o]."""
    kh, kw = kernel.shape[:2]
    h, w = x_nhwc.shape[1] - kh + 1, x_nhwc.shape[2] - kw + 1
    patches = torch.stack([x_nhwc[:, a : a + h, b : b + w] for a in range(kh) for b in range(kw)], dim=3)
    return torch.einsum("nhwpc,pco->nhwo", patches, kernel.reshape(kh * kw, *kernel.shape[2:]))


def test_conv_depthwise_and_dense_kernels_compute_what_keras_computes():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 7, 4)  # NHWC
    kernel = torch.randn(3, 2, 4, 5)
    ours = F.conv2d(x.permute(0, 3, 1, 2), tf_weights.conv_kernel(kernel)).permute(0, 2, 3, 1)
    assert torch.allclose(ours, _keras_conv(x, kernel), atol=1e-5)

    depthwise = torch.randn(3, 3, 4, 2)  # multiplier 2: output channel c * 2 + m
    ours = F.conv2d(x.permute(0, 3, 1, 2), tf_weights.depthwise_kernel(depthwise), groups=4)
    for c in range(4):
        for m in range(2):
            want = _keras_conv(x[..., c : c + 1], depthwise[:, :, c : c + 1, m : m + 1])[..., 0]
            assert torch.allclose(ours[:, c * 2 + m], want, atol=1e-5)

    dense = torch.randn(4, 3)
    v = torch.randn(2, 4)
    assert torch.allclose(F.linear(v, tf_weights.dense_kernel(dense)), v @ dense, atol=1e-6)
    assert torch.equal(tf_weights.dense_kernel(dense.reshape(1, 1, 4, 3)), dense.t())


def test_keras2_depthwise_names_read_as_keras3():
    state = {
        "dw/depthwise_kernel": torch.zeros(1),
        "sep/depthwise_kernel": torch.zeros(1),
        "sep/pointwise_kernel": torch.zeros(1),
        "conv/kernel:0": torch.zeros(1),
    }
    assert set(tf_weights.keras_variables(state)) == {
        ("dw", "kernel"),
        ("sep", "depthwise_kernel"),
        ("sep", "pointwise_kernel"),
        ("conv", "kernel"),
    }


def _write_keras2_h5(path, state):
    """A weights file as Keras 2's save_weights writes it: layer groups, 'weight_names' with ':0'."""
    h5py = pytest.importorskip("h5py")
    layers: dict[str, list[str]] = {}
    for key in state:
        layers.setdefault(key.rpartition("/")[0], []).append(key)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in layers]
        for layer, keys in layers.items():
            group = f.create_group(layer)
            group.attrs["weight_names"] = [f"{key}:0".encode() for key in keys]
            for key in keys:
                group[f"{key}:0"] = state[key].numpy()


_V3_KERAS2 = {
    "bn": "BatchNorm",
    "squeeze_excite_conv": "squeeze_excite/Conv",
    "conv": "Conv",
    "logits": "Logits",
}


def _mobilenetv3_keras2_name(key: str) -> str:
    """A Keras 3 MobileNetV3 variable name as Keras 2 wrote it (the released .h5 files; Keras renamed the
    layers in keras-team/keras 8ac7b7f): 'expanded_conv_1_expand_bn/gamma' ->
    'expanded_conv_1/expand/BatchNorm/gamma', 'conv_1_bn/beta' -> 'Conv_1/BatchNorm/beta', 'logits/kernel'
    -> 'Logits/kernel'."""
    layer, variable = key.rsplit("/", 1)
    m = re.fullmatch(
        r"(expanded_conv(?:_\d+)?)_(expand|depthwise|project|squeeze_excite_conv)(_1)?(_bn)?", layer
    )
    if m:
        part = _V3_KERAS2.get(m[2], m[2]) + (m[3] or "") + ("/BatchNorm" if m[4] else "")
        layer = f"{m[1]}/{part}"
    else:
        m = re.fullmatch(r"(conv|logits)(_\d)?(_bn)?", layer)
        layer = _V3_KERAS2[m[1]] + (m[2] or "") + ("/BatchNorm" if m[3] else "")
    return f"{layer}/{variable}"


def _xception_keras2_name(key: str) -> str:
    """Keras 2 numbered unnamed layers from 1 (conv2d_1, batch_normalization_1, ...), Keras 3 from 0."""
    return re.sub(
        r"^(conv2d|batch_normalization)(?:_(\d+))?/", lambda m: f"{m[1]}_{int(m[2] or 0) + 1}/", key
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, rename",
    [
        ("mobilenetv2", str),
        ("mobilenetv3_large", _mobilenetv3_keras2_name),
        ("mobilenetv3_small", _mobilenetv3_keras2_name),
        ("xception", _xception_keras2_name),
    ],
)
def test_keras_h5_file_loads_through_load_weights(name, rename, tmp_path):
    manifest = read_manifest(PARITY / f"{name}.json")
    state = {rename(k): v for k, v in official_state_dict(manifest).items()}
    path = tmp_path / "weights.h5"
    _write_keras2_h5(path, state)
    assert read_state_dict(path).keys() == state.keys()
    model = load_weights(zoo.create_model(name, **manifest["build_kwargs"]), path, name)
    result = compare_with_manifest(model, manifest)
    assert result["rel_diff"] <= ATOL_REL, result


def test_a_non_keras_h5_file_is_a_clear_error(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = [1.0]
    with pytest.raises(ValueError, match="not a Keras weights file"):
        read_state_dict(path)
