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


# ------------------------------------------------------------------------------ the claims' conditions
#
# A card's `Reported` states its conditions as free text ("TensorRT 5.1.5 (CUDA 9.0, cuDNN 7.0)", "fp16
# (torch.cuda.amp autocast)", "ms (0.75, 1, 1.25) + flip, output stride 8"). The functions below read each
# one into the terms of this module, or say that the text leaves it open: `NotStated` (the card does not
# say, or says it ambiguously) or `NoEquivalent` (it says something SegBench has no condition for, e.g. an
# image resized before the network). Neither is ever guessed into a value; either makes the claim not
# comparable. Text that no rule recognises raises `UnreadableCondition`: a test reads every committed card,
# so a new wording is met by a new rule, never by a silent fall-through.


class UnreadableCondition(ValueError):
    """A card's condition text that no rule of this module recognises."""


@dataclass(frozen=True)
class NotStated:
    """The card leaves this condition open (or states it ambiguously); `reason` says how."""

    reason: str


@dataclass(frozen=True)
class NoEquivalent:
    """The card states a condition that SegBench has no way to set; `reason` says which."""

    reason: str


Open = NotStated | NoEquivalent


def is_open(value) -> bool:
    return isinstance(value, (NotStated, NoEquivalent))


def _says_not_stated(text: str) -> bool:
    return bool(re.search(r"\bnot (stated|named|given)\b", text.lower()))


def _unstated(text: str | None) -> NotStated:
    """The card gives no value, or says in words that it has none."""
    return NotStated(f"the card says {text!r}" if text else "the card gives none")


_PRECISION_WORDS = {
    "fp32": "fp32", "float32": "fp32", "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16", "int8": "int8", "tf32": "tf32",
}  # fmt: skip


def claim_precision(text: str | None) -> str | Open:
    """'fp16 (torch.cuda.amp autocast)' -> 'fp16'. One precision word, or not stated."""
    if not text or _says_not_stated(text):
        return _unstated(text)
    found = {_PRECISION_WORDS[w] for w in re.findall(r"[a-z0-9]+", text.lower()) if w in _PRECISION_WORDS}
    if len(found) > 1:
        return NotStated(f"ambiguous: {text!r}")
    if not found:
        raise UnreadableCondition(f"precision {text!r}")
    return found.pop()


@dataclass(frozen=True)
class ClaimBackend:
    """What ran the network: `name` lower-case ('tensorrt', 'pytorch', ...), its version where stated."""

    name: str
    version: str | None = None

    @property
    def segbench(self) -> str | None:
        """The SegBench backend that runs the same thing, or None (SegBench has no TensorRT, TFLite...)."""
        return SEGBENCH_BACKENDS.get(self.name)

    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name


# Backend names in cards, as (name, pattern). Checked in order: "Paddle.js" before "Paddle".
_CLAIM_BACKENDS = (
    ("tensorrt", r"tensor ?rt"),
    ("tflite", r"tf-?lite|tensorflow lite"),
    ("tensorflow", r"tensorflow"),
    ("pytorch", r"pytorch|torch"),
    ("onnxruntime", r"onnx ?runtime"),
    ("paddle.js", r"paddle\.js"),
    ("paddlelite", r"paddle ?lite"),
    ("paddle", r"paddle(paddle)?"),
    ("caffe", r"caffe"),
)
# A claim's backend as SegBench runs it: PyTorch's is the eager forward (the papers' benchmark scripts).
SEGBENCH_BACKENDS = {"pytorch": "eager", "onnxruntime": "onnxruntime"}


def claim_backend(text: str | None) -> ClaimBackend | Open:
    """'TensorRT 5.1.5 (CUDA 9.0, cuDNN 7.0)' -> tensorrt 5.1.5; 'PyTorch' -> pytorch (version None)."""
    if not text or _says_not_stated(text):
        return _unstated(text)
    lower = text.lower()
    for name, pattern in _CLAIM_BACKENDS:
        match = re.search(rf"\b(?:{pattern})\b\s*v?(\d+(?:\.\d+)*)?", lower)
        if match:
            return ClaimBackend(name, match[1])
    raise UnreadableCondition(f"backend {text!r}")


# Words that name the vendor, the product line, the memory or the form factor, not the device model:
# "NVIDIA GeForce GTX 1080 Ti" and "GTX 1080 Ti" are one device, as are "Tesla V100-SXM2-16GB" and "V100".
_DEVICE_NOISE = {
    "nvidia", "geforce", "tesla", "amd", "intel", "r", "tm", "corporation", "graphics", "gpu", "processor",
    "sxm", "sxm2", "sxm4", "sxm5", "pcie", "hbm", "hbm2", "hbm2e", "hbm3", "hbm3e", "nvl",
}  # fmt: skip
_GPU_WORDS = {"gtx", "rtx", "titan", "quadro", "jetson", "radeon", "v100", "a100", "h100", "h200", "t4",
              "k80", "p100", "l4", "a10", "a10g"}  # fmt: skip
_CPU_WORDS = {"cpu", "xeon", "epyc", "ryzen", "core", "arm", "snapdragon"}
_PHONE_WORDS = {"iphone", "pixel", "xiaomi", "mobile", "web", "snapdragon"}


def device_tokens(name: str | None) -> frozenset[str]:
    """The words that identify a device model, lower-case, vendor words and memory size aside."""
    words = re.findall(r"[a-z0-9]+", str(name or "").lower())
    return frozenset(w for w in words if w not in _DEVICE_NOISE and not re.fullmatch(r"\d+gb", w))


@dataclass(frozen=True)
class ClaimDevice:
    """A device a claim names: `tokens` to match our device model by; `kind` 'cuda' (an NVIDIA GPU SegBench
    can run on), 'cpu', 'other' (a phone, a browser, another vendor's GPU) or None; `threads` where stated."""

    name: str
    tokens: frozenset[str]
    kind: str | None
    threads: int | None = None

    def matches(self, device_model: str | None) -> bool:
        return bool(device_model) and self.tokens == device_tokens(device_model)


def claim_device(text: str | None) -> ClaimDevice | Open:
    """'GTX 1080 Ti' -> tokens {gtx, 1080, ti}, kind cuda; 'Snapdragon 855 ... 1 thread' -> other, 1 thread.
    The thread count is read where the text states it ('1 thread'), and removed from the name. Words in
    parentheses count: 'Titan X (Maxwell)' is not 'TITAN X (Pascal)'."""
    if not text or _says_not_stated(text):
        return _unstated(text)
    threads = re.search(r"\b(\d+) threads?\b", text.lower())
    name = re.sub(r",?\s*\b\d+ threads?\b", "", text, flags=re.IGNORECASE).strip()
    tokens = device_tokens(name)
    words = set(re.findall(r"[a-z0-9]+", name.lower()))
    if not tokens:
        raise UnreadableCondition(f"device {text!r}")
    if words & _PHONE_WORDS or "radeon" in words:
        kind = "other"
    elif words & _GPU_WORDS:
        kind = "cuda"
    elif words & _CPU_WORDS:
        kind = "cpu"
    else:
        kind = None
    return ClaimDevice(name, tokens, kind, int(threads[1]) if threads else None)


def claim_dataset(text: str | None) -> str | Open:
    """A card's dataset in `dataset_key` spelling ('PASCAL VOC 2012' -> 'voc2012')."""
    if not text or _says_not_stated(text):
        return _unstated(text)
    return dataset_key(text)


SPLITS = ("train", "val", "test", "trainval")


def claim_split(text: str | None) -> str | Open:
    """'test (289 images per the official README)' -> 'test'; 'not stated in the README' -> not stated."""
    if not text or _says_not_stated(text):
        return _unstated(text)
    first = re.match(r"[a-z+]+", text.strip().lower())
    if first is None or first[0] not in SPLITS:
        raise UnreadableCondition(f"split {text!r}")
    return first[0]


def _scales(text: str) -> tuple[float, ...] | None:
    """'(0.5 to 1.75, step 0.25)', '(0.75 to 2, 6 scales)', 'scales 0.5-1.75 (6)', '(0.75, 1, 1.25)'."""
    number = r"(\d+(?:\.\d+)?)(?![\d.])"
    count = rf"(?:,\s*step\s*{number}|,\s*(\d+) scales|\s*\((\d+)\))"
    ranged = re.search(rf"{number}\s*(?:to|-)\s*{number}{count}", text)
    if ranged:
        low, high = float(ranged[1]), float(ranged[2])
        count = round((high - low) / float(ranged[3])) + 1 if ranged[3] else int(ranged[4] or ranged[5])
        if count < 2:
            return None
        step = (high - low) / (count - 1)
        return tuple(round(low + i * step, 4) for i in range(count))
    listed = re.search(rf"\(\s*{number}(?:\s*,\s*{number})+\s*\)", text)
    if listed:
        return tuple(float(v) for v in re.findall(number, listed[0]))
    return None


def claim_protocol(text: str | None) -> EvalProtocol | Open:
    """A card's test-time protocol as an `EvalProtocol`, where the text states one that SegBench runs.

    - whole: single-scale on the whole image ('whole image', 'full resolution'); flip only where said;
    - slide: a crop and a stride both stated ('stride 2/3 crop' is mmsegmentation's, EvalProtocol.make's);
    - msflip: every scale stated (a list, or a range with its step or count), and whether it flips.

    'Single-scale' with no word of flipping means no flip (the field's "mIoU" against "mIoU (ms+flip)");
    'single-scale' with no word of whole image or window is not stated, nor are multi-scale without its
    scales, a window without its stride. An image resized before the network, a sliding window that
    flips, or multi-scale sliding windows are stated but not protocols SegBench's eval runs: NoEquivalent.
    """
    if not text:
        return _unstated(text)
    lower = text.lower()
    if _says_not_stated(lower):
        return _unstated(text)
    if re.search(r"resiz|subsampl|downsampl", lower):
        return NoEquivalent("the image is resized before the network (segbench eval has no resize option)")
    single = bool(re.search(r"single[- ]scale|no multi-scale|no test-time augmentation", lower))
    multi = not single and bool(re.search(r"\bms\b|multi-scale|\bscales\b", lower))
    window = bool(re.search(r"slid|\bcrops?\b", lower))
    no_flip = bool(re.search(r"no (horizontal )?flip|no test-time augmentation", lower))
    flip = not no_flip and bool(re.search(r"\bflip", lower))
    if window:
        if multi:
            return NoEquivalent("multi-scale sliding windows (segbench eval runs slide or msflip, not both)")
        if flip:
            return NoEquivalent("a sliding window with flipping (segbench eval's slide does not flip)")
        crop = re.search(r"(\d+)\s*x\s*(\d+)(?:\s+sliding)?\s+(?:crops?|sliding|window)", lower)
        if crop is None:
            return NotStated(f"sliding window's crop not stated: {text!r}")
        crop_hw = (int(crop[1]), int(crop[2]))
        if "stride 2/3 crop" in lower:
            return EvalProtocol.make("slide", crop=crop_hw)
        stride = re.search(r"stride (\d+)(?:\s*x\s*(\d+))?", lower)
        if stride is None:
            return NotStated(f"sliding window's stride not stated: {text!r}")
        return EvalProtocol.make("slide", crop=crop_hw, stride=(int(stride[1]), int(stride[2] or stride[1])))
    if multi:
        scales = _scales(lower)
        if scales is None:
            return NotStated(f"multi-scale without all its scales: {text!r}")
        if not (flip or no_flip):
            return NotStated(f"multi-scale without saying whether it flips: {text!r}")
        return EvalProtocol.make("msflip", scales=scales, flip=flip)
    if single:
        if flip:
            return EvalProtocol.make("msflip", scales=(1.0,), flip=True)
        if re.search(r"\bwhole\b|full[- ]resolution", lower):
            return EvalProtocol.make("whole")
        return NotStated(f"whole image or sliding window not stated: {text!r}")
    raise UnreadableCondition(f"protocol {text!r}")


@dataclass(frozen=True)
class FlopConvention:
    """How a claim counts: `per_mac` FLOPs per multiply-add (1: the number is MACs; 2: FLOPs = 2 x MACs),
    `giga` its G (1e9, or 2^30), and `scope` what it counts ('all' ops a MAC counter has a rule for, or
    'conv+linear' only: torch.utils.flop_counter's scope, the record's `macs_flop_counter`)."""

    per_mac: int = 1
    giga: float = 1e9
    scope: str = "all"

    def to_gmacs(self, value: float) -> float:
        """The claim's value in 1e9 multiply-adds."""
        return value / self.per_mac * self.giga / 1e9

    def label(self) -> str:
        parts = ["2 x MACs" if self.per_mac == 2 else "MACs", "G = 2^30" if self.giga != 1e9 else ""]
        return ", ".join(p for p in (*parts, "conv and linear only" if self.scope != "all" else "") if p)


def claim_flop_convention(metric: str, text: str | None) -> FlopConvention | Open:
    """A MACs/FLOPs claim's counting convention. A `macs` claim counts multiply-adds in 1e9 (the card
    schema's unit) unless its text says otherwise; a `flops` claim must say what its FLOPs are."""
    if not text:
        return FlopConvention() if metric == "macs" else _unstated(text)
    lower = text.lower()
    if _says_not_stated(lower):
        return _unstated(text)
    if not re.search(r"multiply-adds?|multiply-accumulates?|\bmacs?\b", lower):
        raise UnreadableCondition(f"FLOPs convention {text!r}")
    return FlopConvention(
        per_mac=2 if re.search(r"\b2\s*x\s*(multiply|mac)", lower) else 1,
        giga=2.0**30 if "2^30" in lower else 1e9,
        scope="conv+linear" if re.search(r"conv(olution)?s? and linear", lower) else "all",
    )
