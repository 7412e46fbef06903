"""Parity with the authors' code: deterministic weights from key names, one real input, and manifests.

A parity manifest records what the official implementation computes, so that a test can check our model
against it with neither the network nor the official code. It is recorded once, in a scratch folder outside
this repository, by building the official model from its public code and running `record_manifest`:

1. the official state_dict's key names, shapes and dtypes are kept;
2. every tensor is filled by `fill_tensor(key, shape, dtype)`, a function of the key name alone (BatchNorm
   running statistics random too, so BatchNorm is exercised), and loaded into the official model;
3. the official model (eval mode) runs on `parity_input(hw)`, a real photograph (matplotlib's bundled
   `grace_hopper.jpg`, a public-domain U.S. Navy portrait) resized to `hw` and normalised with ImageNet
   statistics; a few hundred logits at fixed positions and the argmax map are kept.

The test (`tests/zoo/test_parity.py`) rebuilds that official-layout state_dict from the manifest with the same
`fill_tensor`, saves it as a checkpoint, loads it through `zoo.weights.load_weights` (so through the model's
converter, strictly) into our model, and requires the same logits: max |ours - official| at the recorded
positions within `ATOL_REL` x the largest |official logit| there, and argmax agreement of at least
`MIN_ARGMAX_AGREEMENT` over the whole map.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import zlib
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MANIFEST_VERSION = 1
ATOL_REL = 1e-4  # max abs difference, relative to the official logits' scale (their max |value|)
MIN_ARGMAX_AGREEMENT = 0.999
N_POSITIONS = 384  # logits kept at fixed (seeded) positions
DEFAULT_HW = (128, 192)  # a multiple of 32, not square (a transposed H/W shows)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_VARIANCES = ("running_var", "_variance", "moving_variance")  # PyTorch, Paddle, Keras BatchNorm
_KERAS_KERNELS = ("kernel", "pointwise_kernel")  # Keras: output channels last

_DTYPES = {
    str(d): d for d in (torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.bool)
}


def _generator(key: str) -> torch.Generator:
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def fill_tensor(
    key: str, shape: tuple[int, ...] | list[int], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The value of state_dict entry `key`: a function of its name, shape and dtype only.

    - integer and bool tensors (num_batches_tracked, index buffers): zeros;
    - BatchNorm variances (leaf `running_var`; Paddle's `_variance`, Keras's `moving_variance`): uniform in
      [0.5, 1.5); `running_mean`: uniform in [-0.2, 0.2);
    - other 1-D tensors named `*weight` (norm scales, PReLU slopes), or Keras's `gamma`: uniform in
      [0.5, 1.5); other 1-D tensors (biases): uniform in [-0.2, 0.2);
    - tensors of 2 or more dimensions (convolutions, linear layers): uniform in [-b, b), b = sqrt(3 / fan_in),
      fan_in = the product of all dimensions but the first (PyTorch's output-first layout); for Keras
      kernels, output last, all but the last (leaf `kernel`, `pointwise_kernel`) or the first two (leaf
      `depthwise_kernel`: kh x kw); so activations keep their scale with depth;
    - 0-D float tensors: uniform in [0.5, 1.5).
    The leaf is the last component of the key split at '.' and '/'. The Keras rules (`gamma`, kernels) apply
    only to Keras variable paths ('layer/variable', keys with a '/'), so a PyTorch key named like them (e.g.
    DANet's attention `gamma`) keeps the PyTorch rule. The numbers are drawn in float32 from a generator
    seeded by sha256(key), then cast to `dtype`.
    """
    shape = tuple(int(s) for s in shape)
    if not (dtype.is_floating_point or dtype.is_complex):
        return torch.zeros(shape, dtype=dtype)
    u = torch.rand(shape, generator=_generator(key), dtype=torch.float32)
    leaf = re.split(r"[./]", key)[-1]
    keras = "/" in key
    scale = leaf.endswith("weight") or (keras and leaf == "gamma")
    if leaf in _VARIANCES or len(shape) == 0 or (len(shape) == 1 and scale):
        value = 0.5 + u
    elif len(shape) == 1:
        value = (u - 0.5) * 0.4
    else:
        if keras and leaf == "depthwise_kernel":
            fan_in = math.prod(shape[:2])
        elif keras and leaf in _KERAS_KERNELS:
            fan_in = math.prod(shape[:-1])
        else:
            fan_in = math.prod(shape[1:])
        value = (u * 2 - 1) * math.sqrt(3.0 / max(fan_in, 1))
    return value.to(dtype)


def fill_state_dict(layout: Mapping[str, tuple[tuple[int, ...], torch.dtype]]) -> dict[str, torch.Tensor]:
    """{key: (shape, dtype)} -> {key: fill_tensor(key, shape, dtype)}, in the layout's order."""
    return {key: fill_tensor(key, shape, dtype) for key, (shape, dtype) in layout.items()}


def layout_of(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {k: (tuple(v.shape), v.dtype) for k, v in state_dict.items()}


def parity_input(hw: tuple[int, int] = DEFAULT_HW) -> torch.Tensor:
    """The fixed real input, 1x3xHxW: matplotlib's bundled photograph, RGB, bilinearly resized to `hw`
    (align_corners=False, no antialiasing), scaled to [0, 1], normalised with ImageNet mean/std."""
    import matplotlib.cbook
    import matplotlib.image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        pixels = matplotlib.image.imread(f, format="jpg")  # uint8 HxWx3
    x = torch.as_tensor(pixels[..., :3].copy()).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=tuple(hw), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


def positions(shape: tuple[int, ...], n: int = N_POSITIONS) -> list[int]:
    """Flat indices into a logits tensor of `shape` at which values are kept: seeded, sorted, distinct."""
    total = math.prod(shape)
    generator = torch.Generator().manual_seed(0)
    return sorted(torch.randperm(total, generator=generator)[: min(n, total)].tolist())


def _pack(argmax: torch.Tensor) -> str:
    data = argmax.to(torch.int16).numpy().tobytes()
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii")


def unpack_argmax(text: str, shape: tuple[int, ...]) -> torch.Tensor:
    import numpy as np

    data = zlib.decompress(base64.b64decode(text))
    return torch.from_numpy(np.frombuffer(data, dtype=np.int16).copy()).reshape(shape).long()


def _logits(output) -> torch.Tensor:
    """The logits of a forward's output: the tensor itself, or the first element of a tuple/list."""
    if isinstance(output, (tuple, list)):
        output = output[0]
    if isinstance(output, Mapping):
        output = output["out"]
    return output.float()


@torch.inference_mode()
def record_manifest(
    model_name: str,
    official: nn.Module,
    reference: dict,
    out: str | Path,
    hw: tuple[int, int] = DEFAULT_HW,
    build_kwargs: dict | None = None,
    notes: str = "",
    state_dict: Mapping[str, torch.Tensor] | None = None,
    forward=None,
) -> dict:
    """Fill `official` deterministically, run it on `parity_input(hw)` and write the manifest to `out`.

    `reference`: {"repo": "owner/name", "commit": "<40 hex>", "how": "how the model was built (class,
    arguments, file)"}. `build_kwargs`: the arguments of our builder that give the same network (e.g.
    {"num_classes": 20}). `state_dict`: the official checkpoint's layout when it differs from
    `official.state_dict()` (e.g. the authors' file holds extra or wrapped keys); `forward(official, x)`:
    how the official code runs inference when it is not `official(x)` (its logits must be at input size).
    """
    missing = {"repo", "commit", "how"} - set(reference)
    if missing:
        raise ValueError(f"reference lacks {sorted(missing)}")
    layout = layout_of(state_dict if state_dict is not None else official.state_dict())
    filled = fill_state_dict(layout)
    own = official.state_dict()
    official.load_state_dict({k: v for k, v in filled.items() if k in own}, strict=True)
    official.eval()
    x = parity_input(hw)
    logits = _logits(forward(official, x) if forward else official(x))
    flat = logits.flatten()
    kept = positions(tuple(logits.shape))
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "model": model_name,
        "build_kwargs": build_kwargs or {},
        "reference": dict(reference),
        "notes": notes,
        "torch": torch.__version__,
        "input": {
            "hw": list(hw),
            "image": "matplotlib sample_data/grace_hopper.jpg",
            "normalise": "ImageNet",
        },
        "state_dict": [[k, list(shape), str(dtype)] for k, (shape, dtype) in layout.items()],
        "output": {
            "shape": list(logits.shape),
            "scale": float(flat[kept].abs().max()),
            "positions": kept,
            "values": [float(f"{v:.7g}") for v in flat[kept].tolist()],
            "argmax": _pack(logits.argmax(1)),
        },
    }
    Path(out).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def read_manifest(path: str | Path) -> dict:
    manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise ValueError(
            f"{path}: manifest_version {manifest.get('manifest_version')!r} is not {MANIFEST_VERSION}"
        )
    return manifest


def official_state_dict(manifest: dict) -> dict[str, torch.Tensor]:
    """The official-layout state_dict a manifest describes, filled by `fill_tensor`."""
    return fill_state_dict({k: (tuple(shape), _DTYPES[dtype]) for k, shape, dtype in manifest["state_dict"]})


def compare_with_manifest(model: nn.Module, manifest: dict) -> dict:
    """Run `model` (weights already loaded) on the manifest's input; {max_abs_diff, scale, rel_diff,
    argmax_agreement, shape_ok} against the official output it records."""
    expected = manifest["output"]
    model.eval()
    with torch.inference_mode():
        logits = _logits(model(parity_input(tuple(manifest["input"]["hw"]))))
    shape_ok = list(logits.shape) == expected["shape"]
    if not shape_ok:
        return {"shape_ok": False, "shape": list(logits.shape), "expected_shape": expected["shape"]}
    got = logits.flatten()[expected["positions"]]
    want = torch.tensor(expected["values"], dtype=torch.float32)
    max_abs = float((got - want).abs().max())
    argmax = unpack_argmax(expected["argmax"], (expected["shape"][0], *expected["shape"][2:]))
    agreement = float((logits.argmax(1) == argmax).float().mean())
    scale = expected["scale"]
    return {
        "shape_ok": True,
        "max_abs_diff": max_abs,
        "scale": scale,
        "rel_diff": max_abs / scale if scale else math.inf,
        "argmax_agreement": agreement,
    }
