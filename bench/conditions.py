"""What a number depends on: the one home of SegBench's conditions.

A speed or memory number depends on the *execution* (the sweep's axes: input size, batch, device, precision,
backend, compile mode, memory layout, cuDNN and TF32 flags) and on *where* it ran (the device model, the
backend's version, the CPU threads): `Execution` and `SpeedCondition`. An accuracy number depends on the
dataset, the split, the test-time protocol and where the weights came from: `EvalProtocol` and
`AccuracyCondition`. The sweep spec, the command line, the worker, the records, `compare` and the report all
build, check, key, label and store conditions through this module, and nowhere else.

An axis of `Execution` is declared once, as a dataclass field whose metadata says what values it takes and
which device it applies to; validation, the command-line option, the sweep's crossing, the cell key, the label
and the record fields are derived from that declaration. Adding an axis is one field here plus the code that
applies it (bench/measure/backends.py).

Pure Python: the report imports it without torch.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from bench.errors import UsageError

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "bf16")
BACKENDS = ("eager", "compile", "cuda_graph", "onnxruntime")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Backends that run the torch module itself (so channels_last and autocast apply).
TORCH_BACKENDS = ("eager", "compile", "cuda_graph")

# Speeds from different machines are compared through this model, measured on the same machine under the
# same conditions: "0.5x bisenetv2" means half as fast as bisenetv2 there. Chosen because it is real-time
# (so cheap to time anywhere) and its card carries a GPU FPS claim to normalise papers' speeds by.
REFERENCE_MODEL = "bisenetv2"


def _axis(default, help: str, choices: tuple | None = None, cuda_only: bool = False, label: str = ""):
    """An `Execution` axis: its default, allowed values, whether it is a CUDA setting, its label."""
    return field(
        default=default, metadata={"help": help, "choices": choices, "cuda": cuda_only, "label": label}
    )


@dataclass(frozen=True)
class Execution:
    """How one forward is executed: every sweep axis, i.e. every setting that changes a latency number
    besides the model and where it runs. A record's cell is the model plus its `Execution`.

    On/off settings that torch leaves at its default unless asked are None ("as found"); the worker records
    what it found in the record's `conditions`. CUDA settings are None on the CPU.
    """

    input_hw: tuple[int, int]
    batch: int = _axis(1, "batch size (1: latency; larger: throughput)")
    device: str = _axis("cpu", "cpu or cuda", DEVICES)
    precision: str = _axis("fp32", "fp16/bf16 run under autocast; weights stay fp32", PRECISIONS)
    backend: str = _axis("eager", "how the forward runs", BACKENDS)
    compile_mode: str | None = _axis(None, "torch.compile mode (backend compile only)", COMPILE_MODES)
    channels_last: bool = _axis(False, "NHWC memory layout of weights and input", label="channels_last")
    cudnn_benchmark: bool | None = _axis(None, "cuDNN autotuning", cuda_only=True, label="cudnn.benchmark")
    tf32: bool | None = _axis(None, "TF32 matmul and convolution", cuda_only=True, label="tf32")
    cudnn_deterministic: bool | None = _axis(
        None, "cuDNN deterministic algorithms only", cuda_only=True, label="cudnn.deterministic"
    )

    def __post_init__(self):
        object.__setattr__(self, "input_hw", tuple(self.input_hw))

    # ------------------------------------------------------------------------------------------ checking

    def validate(self) -> Execution:
        """Refuse values and combinations that cannot run (UsageError, one line); return self."""
        h_w = self.input_hw
        if len(h_w) != 2 or not all(_is_int(v) and v >= 1 for v in h_w):
            raise UsageError(f"input size must be two positive integers HxW, got {h_w!r}")
        if not _is_int(self.batch) or self.batch < 1:
            raise UsageError(f"batch must be a positive integer, got {self.batch!r}")
        for axis in AXES:
            value = getattr(self, axis.name)
            choices = axis.metadata["choices"]
            if choices and value is not None and value not in choices:
                raise UsageError(
                    f"unknown {axis.name.replace('_', ' ')} {value!r}: expected one of {', '.join(choices)}"
                )
            if axis.name in ON_OFF_AXES and value is not None and not isinstance(value, bool):
                raise UsageError(f"{option(axis.name)} must be on or off, got {value!r}")
        if self.compile_mode is not None and self.backend != "compile":
            raise UsageError(f"compile mode {self.compile_mode!r} needs backend compile, not {self.backend}")
        if self.device == "cpu":
            if self.backend == "cuda_graph":
                raise UsageError("backend cuda_graph needs --device cuda")
            cuda_set = [a.name for a in AXES if a.metadata["cuda"] and getattr(self, a.name) is not None]
            if cuda_set:
                options = ", ".join(option(name) for name in cuda_set)
                raise UsageError(f"{options}: CUDA settings, they need --device cuda")
        if self.backend == "onnxruntime":
            if self.device != "cpu":
                raise UsageError("backend onnxruntime runs on the CPU only (--device cpu)")
            if self.precision != "fp32":
                raise UsageError(f"backend onnxruntime runs fp32 only, not {self.precision}")
            if self.channels_last:
                raise UsageError("channels_last applies to torch backends only, not onnxruntime")
        return self

    @property
    def is_reference(self) -> bool:
        """Eager fp32 in the default layout without TF32: what every other condition's output is checked
        against (output agreement)."""
        return (
            self.backend == "eager" and self.precision == "fp32" and not self.channels_last and not self.tf32
        )

    # ------------------------------------------------------------------------------ keys, labels, fields

    @functools.cached_property  # computed once: records are keyed, grouped and compared by it
    def key(self) -> tuple:
        return (self.input_hw, *(getattr(self, a.name) for a in AXES))

    def label(self) -> str:
        """'512x1024 b1 cuda/fp16 compile(max-autotune) channels_last cudnn.benchmark': what differs from
        the defaults, in the order of the axes."""
        head = f"{self.input_hw[0]}x{self.input_hw[1]} b{self.batch} {self.device}/{self.precision}"
        extras = []
        if self.backend != "eager":
            extras.append(self.backend + (f"({self.compile_mode})" if self.compile_mode else ""))
        for axis in AXES:
            value, name = getattr(self, axis.name), axis.metadata["label"]
            if name and value is True:
                extras.append(name)
            elif name and value is False and axis.metadata["cuda"]:
                extras.append(f"{name}=off")
        return " ".join([head, *extras])

    def to_fields(self) -> dict[str, Any]:
        """The record's cell fields (flat, JSON-ready)."""
        return {"input_hw": list(self.input_hw), **{a.name: getattr(self, a.name) for a in AXES}}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Execution:
        """From a record's fields; an axis the record predates takes its default (schema migration)."""
        return cls(
            input_hw=tuple(fields["input_hw"]),
            **{a.name: fields.get(a.name, a.default) for a in AXES},
        )


AXES: tuple[dataclasses.Field, ...] = tuple(f for f in dataclasses.fields(Execution) if f.name != "input_hw")
AXIS_NAMES = tuple(a.name for a in AXES)
ON_OFF_AXES = tuple(a.name for a in AXES if a.default in (None, False) and not a.metadata["choices"])


def option(axis_name: str) -> str:
    """The command-line option of an axis: `--cudnn-benchmark` for cudnn_benchmark."""
    return "--" + axis_name.replace("_", "-")


def axis_help(axis_name: str) -> str:
    return next(a.metadata["help"] for a in AXES if a.name == axis_name)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------- parsing axis values

_RESOLUTION = re.compile(r"^(\d+)x(\d+)$")


def parse_resolution(text: str) -> tuple[int, int]:
    """'512x1024' -> (512, 1024): height x width, as in the records' `input_hw`."""
    match = _RESOLUTION.match(text.strip())
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise UsageError(
            f"malformed resolution {text!r}: expected HEIGHTxWIDTH with positive integers, e.g. 512x1024"
        )
    return int(match[1]), int(match[2])


def parse_resolutions(text: str) -> tuple[tuple[int, int], ...]:
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise UsageError(f"malformed resolution list {text!r}: expected e.g. 360x480,512x1024")
    return tuple(dict.fromkeys(parse_resolution(part) for part in parts))


_SWITCH = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}


def parse_axis_values(axis_name: str, text: str) -> tuple:
    """A command-line value list for one axis: 'on,off' for switches, '1,8' for the batch, 'fp32,fp16'
    for a choice. Raises UsageError naming the option."""
    axis = next((a for a in AXES if a.name == axis_name), None)
    if axis is None:
        raise UsageError(f"unknown condition axis {axis_name!r}")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise UsageError(f"{option(axis_name)} needs a value, got {text!r}")
    if axis_name == "batch":
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            values = ()
        if not values or min(values) < 1:
            raise UsageError(f"malformed {option(axis_name)} {text!r}: expected positive integers, e.g. 1,8")
        return tuple(dict.fromkeys(values))
    if axis_name in ON_OFF_AXES:
        bad = [p for p in parts if p.lower() not in _SWITCH]
        if bad:
            raise UsageError(f"malformed {option(axis_name)} {text!r}: expected on, off or on,off")
        return tuple(dict.fromkeys(_SWITCH[p.lower()] for p in parts))
    choices = axis.metadata["choices"]
    bad = [p for p in parts if p not in choices]
    if bad:
        raise UsageError(
            f"unknown {axis_name.replace('_', ' ')} {bad[0]!r}: expected one of {', '.join(choices)}"
        )
    return tuple(dict.fromkeys(parts))


# ------------------------------------------------------------------------------------- where it ran


@dataclass(frozen=True)
class SpeedCondition:
    """Everything a latency, throughput or memory number depends on: the execution, the machine and device
    model it ran on, the backend's version and the CPU threads. Two numbers are comparable only when their
    speed conditions are equal (`differences` names what is not)."""

    execution: Execution
    machine: str | None
    device_model: str | None  # the GPU's name on CUDA, the CPU model on the CPU
    backend_version: str | None  # torch's version for torch backends, ONNX Runtime's for onnxruntime
    threads: int | None

    def differences(self, other: SpeedCondition) -> list[str]:
        """Short phrases naming each condition that differs ('device model: A vs B')."""
        out = []
        if self.machine != other.machine:
            out.append(f"machine: {self.machine} vs {other.machine}")
        if self.device_model != other.device_model:
            out.append(f"device model: {self.device_model} vs {other.device_model}")
        if self.backend_version != other.backend_version:
            out.append(f"backend version: {self.backend_version} vs {other.backend_version}")
        if self.threads != other.threads:
            out.append(f"threads: {self.threads} vs {other.threads}")
        if self.execution.key != other.execution.key:
            out.append(f"execution: {self.execution.label()} vs {other.execution.label()}")
        return out


# ---------------------------------------------------------------------------------------- accuracy

PROTOCOLS = ("whole", "slide", "msflip")
DEFAULT_MS_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)

# Where a model's weights came from: the authors' published checkpoint (loaded through the model's converter
# where its layout differs from ours), a checkpoint trained here, or none. Only the authors' weights may
# stand beside a paper's accuracy: a model trained here is reported on its own, never against a claim.
WEIGHT_SOURCES = ("authors", "trained here", "random init")
AUTHORS_WEIGHTS = ("authors",)


# The scales msflip accepts: published protocols use 0.5 to 2 (mmsegmentation's 0.5-1.75, DeepLab's and
# HRNet's 0.5-2.0); far outside, an image shrinks to nothing or needs 16x a whole forward's memory and more.
MSFLIP_SCALES = (0.25, 4.0)


@dataclass(frozen=True)
class EvalProtocol:
    """How one image becomes class scores (bench.eval.protocols runs it):

    - whole: one forward on the whole image;
    - slide: sliding `crop` windows at `stride` (mmsegmentation's), logits averaged where windows overlap;
    - msflip: the image at each of `scales` (and mirrored when `flip`), softmax averaged.
    """

    name: str = "whole"
    crop: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False

    def validate(self) -> EvalProtocol:
        if self.name not in PROTOCOLS:
            raise UsageError(f"unknown protocol {self.name!r}: expected one of {', '.join(PROTOCOLS)}")
        if self.name == "slide":
            if self.crop is None or self.stride is None:
                raise UsageError("protocol slide needs a crop (--crop HxW)")
            if min(*self.crop, *self.stride) < 1:
                raise UsageError(f"slide crop {self.crop} and stride {self.stride} must be positive")
            if self.stride[0] > self.crop[0] or self.stride[1] > self.crop[1]:  # pixels no window covers
                raise UsageError(f"slide stride {self.stride} must not exceed the crop {self.crop}")
        if self.name == "msflip" and (
            not self.scales or not all(math.isfinite(s) and s > 0 for s in self.scales)
        ):
            raise UsageError(f"msflip scales {self.scales} must be positive numbers")
        low, high = MSFLIP_SCALES
        if self.name == "msflip" and not all(low <= s <= high for s in self.scales):
            raise UsageError(f"msflip scales {self.scales} must be within {low:g} to {high:g}")
        return self

    @property
    def multi_scale(self) -> bool:
        return self.name == "msflip" and tuple(self.scales) != (1.0,)

    def windows(self, hw) -> list[tuple[int, int, int, int]]:
        """(y1, y2, x1, x2) of each slide window for an input of size hw; a window never leaves the image
        (the last one of a row or column is shifted back inside), an image smaller than the crop is one."""
        h, w = hw
        ch, cw = min(self.crop[0], h), min(self.crop[1], w)
        sh, sw = self.stride
        rows = max(h - ch + sh - 1, 0) // sh + 1
        cols = max(w - cw + sw - 1, 0) // sw + 1
        out = []
        for r in range(rows):
            for c in range(cols):
                y2, x2 = min(r * sh + ch, h), min(c * sw + cw, w)
                out.append((max(y2 - ch, 0), y2, max(x2 - cw, 0), x2))
        return out

    def forward_sizes(self, hw) -> list[tuple[int, int]]:
        """The input size of every forward the protocol runs on an input of size hw (its cost)."""
        if self.name == "slide":
            return [(y2 - y1, x2 - x1) for y1, y2, x1, x2 in self.windows(hw)]
        if self.name == "msflip":
            sizes = [(round(hw[0] * s), round(hw[1] * s)) for s in self.scales]
            return [s for s in sizes for _ in range(2 if self.flip else 1)]
        return [tuple(hw)]

    def label(self) -> str:
        """One string naming the protocol and its parameters: an eval record's `protocol`, part of its key."""
        if self.name == "slide":
            return f"slide(crop={self.crop[0]}x{self.crop[1]}, stride={self.stride[0]}x{self.stride[1]})"
        if self.name == "msflip":
            return f"msflip(scales={','.join(f'{s:g}' for s in self.scales)}{', flip' if self.flip else ''})"
        return "whole"

    def to_dict(self) -> dict:
        if self.name == "slide":
            return {"name": "slide", "params": {"crop": list(self.crop), "stride": list(self.stride)}}
        if self.name == "msflip":
            return {"name": "msflip", "params": {"scales": list(self.scales), "flip": self.flip}}
        return {"name": "whole", "params": {}}

    @classmethod
    def from_dict(cls, spec: dict) -> EvalProtocol:
        params = spec.get("params") or {}
        name = spec.get("name", "whole")
        if name == "slide":
            return cls("slide", crop=tuple(params["crop"]), stride=tuple(params["stride"]))
        if name == "msflip":
            return cls("msflip", scales=tuple(float(s) for s in params["scales"]), flip=bool(params["flip"]))
        return cls(name)

    @classmethod
    def make(cls, name: str, crop=None, stride=None, scales=None, flip: bool = True) -> EvalProtocol:
        """A checked protocol from command-line values; slide's stride defaults to 2/3 of the crop."""
        if name == "slide":
            if crop is None:
                raise UsageError("--protocol slide needs --crop HxW")
            crop = tuple(int(v) for v in crop)
            stride = (
                tuple(int(v) for v in stride)
                if stride is not None
                else tuple(max(1, c * 2 // 3) for c in crop)
            )
            return cls("slide", crop=crop, stride=stride).validate()
        if name == "msflip":
            return cls(
                "msflip", scales=tuple(float(s) for s in (scales or DEFAULT_MS_SCALES)), flip=flip
            ).validate()
        return cls(name).validate()


def dataset_key(name) -> str:
    """One spelling per dataset: the eval harness says "cityscapes", cards "Cityscapes", "PASCAL VOC 2012"
    and "voc2012" are one dataset."""
    key = "".join(ch for ch in str(name or "").lower() if ch.isalnum())
    return key.removeprefix("pascal")


@dataclass(frozen=True)
class AccuracyCondition:
    """What an accuracy number depends on."""

    dataset: str | None  # dataset_key spelling
    split: str | None  # "val", "test", ...; None: not stated
    protocol: EvalProtocol | None  # None: not stated
    weights: str | None  # one of WEIGHT_SOURCES; None: not stated

    def differences(self, other: AccuracyCondition) -> list[str]:
        out = []
        for name in ("dataset", "split"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None or theirs is None or mine != theirs:
                out.append(f"{name}: {mine or 'not stated'} vs {theirs or 'not stated'}")
        if self.protocol is None or other.protocol is None or self.protocol != other.protocol:
            labels = [p.label() if p else "not stated" for p in (self.protocol, other.protocol)]
            out.append(f"protocol: {labels[0]} vs {labels[1]}")
        if self.weights not in AUTHORS_WEIGHTS or other.weights not in AUTHORS_WEIGHTS:
            out.append(f"weights: {self.weights or 'not stated'} vs {other.weights or 'not stated'}")
        return out
