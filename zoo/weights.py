"""Loading trained weights into zoo models: checkpoints from local paths only, never downloaded.

Torch files load with `weights_only=True` (no pickled code runs); `.safetensors` files through safetensors
and Keras `.h5` weight files through h5py (`zoo.tf_weights.read_keras_h5`), when they are installed. A
model whose official checkpoint uses other key names has a converter, registered with its builder
(`register_model(card, converter=...)`), that maps the official state_dict onto ours; a checkpoint that
still does not fit fails with the list of mismatches, never silently.

One interface for every checkpoint: `convert_state_dict(model_name, state)` applies the model's converter
(identity when it has none), and `load_weights` = read (torch, safetensors or Keras .h5) -> convert ->
check -> load. (Writing checkpoints is the results store's job: bench.store.save_checkpoint.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from zoo.registry import get_converter

StateDict = Mapping[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or whose keys or shapes do not match the model."""


def convert_state_dict(model_name: str | None, state: StateDict) -> dict[str, torch.Tensor]:
    """`state` mapped onto our key names by the converter registered with `model_name`'s builder;
    unchanged when it has none."""
    converter = get_converter(model_name) if model_name else None
    return dict(converter(state)) if converter is not None else dict(state)


def add_bn_counters(state: StateDict) -> dict[str, torch.Tensor]:
    """`state` with a zero `num_batches_tracked` beside every BatchNorm `running_mean` that lacks one.

    For checkpoints whose norms were not torch's BatchNorm (e.g. inplace_abn's ABN, which keeps no counter):
    the counter only steers the running averages in training (momentum=None) and never changes inference.
    """
    out = dict(state)
    for key in state:
        if key.endswith(".running_mean"):
            out.setdefault(
                key.removesuffix("running_mean") + "num_batches_tracked", torch.zeros((), dtype=torch.long)
            )
    return out


def inplace_abn_to_bn(state: StateDict, eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """A checkpoint whose norm layers are In-Place ABN (mapillary/inplace_abn, and the copies official
    segmentation code vendors) as BatchNorm2d weights: that kernel scales by |weight| + eps where BN scales by
    weight (it keeps the scale non-zero to invert the layer), so the effective scale becomes the BN weight;
    ABN keeps no `num_batches_tracked`, which is filled with zeros (BN reads it only when training without
    momentum). Every entry with a `running_var` beside it is treated as such a layer."""
    out = dict(state)
    for key in [k for k in out if k.endswith(".running_var")]:
        prefix = key.removesuffix("running_var")
        if prefix + "weight" in out:
            out[prefix + "weight"] = out[prefix + "weight"].abs() + eps
    return add_bn_counters(out)


def _safetensors():
    try:
        import safetensors.torch
    except ImportError:
        raise CheckpointError(
            "reading .safetensors needs the safetensors package (pip install safetensors)"
        ) from None
    return safetensors.torch


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (torch, .safetensors or Keras .h5); a {'state_dict': ...} or
    {'model': ...} wrapper is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            state = _safetensors().load_file(str(path), device="cpu")
        elif path.suffix in (".h5", ".hdf5"):  # Keras weights: arrays only, keyed '<layer>/<variable>'
            from zoo.tf_weights import read_keras_h5

            state = read_keras_h5(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt file, pickled code refused by weights_only, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} holds no state_dict of tensors")
    odd = sorted(str(k) for k, v in state.items() if v.layout != torch.strided or v.is_meta)
    if odd:  # sparse tensors, or meta tensors with no values at all: neither is a model's weights
        raise CheckpointError(f"checkpoint {path} has sparse or value-less (meta) tensors: {odd[:3]}")
    if not all(isinstance(k, str) for k in state):
        raise CheckpointError(
            f"checkpoint {path} has keys that are not names: {sorted(map(repr, state))[:3]}"
        )
    return {k.removeprefix("module."): v for k, v in state.items()}  # DataParallel/DDP prefixes


def _kind(dtype: torch.dtype) -> str:
    """float, complex, bool or int: a checkpoint may store fp16 weights for an fp32 model, never integers."""
    if dtype.is_floating_point:
        return "float"
    if dtype.is_complex:
        return "complex"
    return "bool" if dtype == torch.bool else "int"


def _finite(tensor: torch.Tensor) -> bool:
    if tensor.dtype.itemsize == 1:  # float8: isfinite has no kernel for it; float32 holds every value
        tensor = tensor.float()
    return bool(torch.isfinite(tensor).all())


def check_fits(model: nn.Module, state: StateDict) -> None:
    """Raise CheckpointError listing every missing, unexpected, wrongly shaped or wrongly typed key, and
    every floating-point tensor with NaN or infinite values."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(ours[k].shape)}"
        for k in set(ours) & set(state)
        if state[k].shape != ours[k].shape
    )
    common = sorted(set(ours) & set(state))
    dtypes = [
        f"{k}: checkpoint {state[k].dtype} vs model {ours[k].dtype}"
        for k in common
        if _kind(state[k].dtype) != _kind(ours[k].dtype)
    ]
    nonfinite = [k for k in common if state[k].is_floating_point() and not _finite(state[k])]
    problems = [
        f"{label} ({len(items)}): {', '.join(items[:10])}{' ...' if len(items) > 10 else ''}"
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", shapes),
            ("dtype mismatch", dtypes),
            ("non-finite values", nonfinite),
        )
        if items
    ]
    if problems:
        raise CheckpointError("checkpoint does not fit the model: " + "; ".join(problems))


def load_weights(model: nn.Module, path: str | Path, model_name: str | None = None) -> nn.Module:
    """Load a local checkpoint into `model` (through `model_name`'s converter, if one is registered)."""
    state = convert_state_dict(model_name, read_state_dict(path))
    check_fits(model, state)
    model.load_state_dict(state)
    return model
