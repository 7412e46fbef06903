"""What a sweep runs: cells (model x resolution x batch x device x precision x execution conditions),
profiles, timing policies, and shards.

The only configuration is this run spec; profiles are named, embedded defaults that the command line can
narrow or override axis by axis.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from itertools import product

import zoo
from bench.errors import UsageError
from bench.measure.latency import TimingPolicy
from bench.records import cell_key

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "bf16")
BACKENDS = ("eager", "compile", "cuda_graph", "onnxruntime")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
CARD_PRECISION = "card"  # an Axes precision resolved per model: the one its paper's speed claim used


@dataclass(frozen=True)
class Cell:
    """One measurement: a model at one input size, batch, device, precision and execution condition.

    `cudnn_benchmark` and `tf32` are CUDA settings (None on the CPU); `compile_mode` goes with the compile
    backend only.
    """

    model: str
    input_hw: tuple[int, int]
    device: str = "cpu"
    precision: str = "fp32"
    batch: int = 1
    backend: str = "eager"
    channels_last: bool = False
    cudnn_benchmark: bool | None = None
    tf32: bool | None = None
    compile_mode: str | None = None

    @property
    def key(self) -> tuple:
        """The same key as its record's (`bench.records.cell_key`), which --resume matches on."""
        return cell_key(self.as_record_fields())

    @property
    def is_reference(self) -> bool:
        """Eager fp32 in the default layout: what every other condition's output is checked against."""
        return (
            self.backend == "eager" and self.precision == "fp32" and not self.channels_last and not self.tf32
        )

    def as_record_fields(self) -> dict:
        fields = asdict(self)
        fields["input_hw"] = list(self.input_hw)
        return fields

    def __str__(self) -> str:
        h, w = self.input_hw
        extras = [self.backend if self.backend != "eager" else ""]
        extras += ["cl" if self.channels_last else "", self.compile_mode or ""]
        extras += [f"cudnn.benchmark={self.cudnn_benchmark}" if self.cudnn_benchmark is not None else ""]
        extras += [f"tf32={self.tf32}" if self.tf32 is not None else ""]
        tail = " ".join(e for e in extras if e)
        return f"{self.model} {h}x{w} b{self.batch} {self.device}/{self.precision}" + (
            f" {tail}" if tail else ""
        )


@dataclass(frozen=True)
class Axes:
    """The condition axes a sweep crosses with every (model, resolution)."""

    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1,)
    backends: tuple[str, ...] = ("eager",)
    channels_last: tuple[bool, ...] = (False,)
    cudnn_benchmark: tuple[bool | None, ...] = (None,)
    tf32: tuple[bool | None, ...] = (None,)
    compile_mode: str | None = None


@dataclass(frozen=True)
class Profile:
    """A named sweep: input sizes per model group (None: each model's paper size), condition axes per device,
    a timing policy and a per-cell time limit."""

    name: str
    description: str
    resolutions: dict[str, tuple[tuple[int, int], ...]] | None
    timing: TimingPolicy
    timeout_s: float
    axes: dict[str, Axes] = field(default_factory=lambda: {"cpu": Axes(), "cuda": Axes()})


_CUDA_DEFAULT = Axes(cudnn_benchmark=(False,), tf32=(False,))

PROFILES = {
    "quick": Profile(
        name="quick",
        description="CPU smoke sweep: every model once at a small input, short timing; the embedded default",
        # One size per group keeps the whole zoo within 10 minutes on 2 cores; `full` sweeps resolutions.
        resolutions={
            "backbone": ((224, 224),),
            "portrait": ((224, 224),),
            "realtime": ((360, 480),),  # CamVid's size, not a multiple of 32
            "semantic": ((256, 512),),  # Cityscapes' aspect ratio at a quarter of 512x1024
        },
        timing=TimingPolicy(
            warmup_iters=1, warmup_s=0.3, warmup_max_s=1.5, min_samples=5, min_time_s=0.5, max_time_s=3.0
        ),
        timeout_s=300.0,
        axes={"cpu": Axes(), "cuda": _CUDA_DEFAULT},
    ),
    "paper": Profile(
        name="paper",
        description="each model at its paper's input size, in its speed claim's precision on CUDA",
        resolutions=None,
        timing=TimingPolicy(),
        timeout_s=900.0,
        axes={"cpu": Axes(), "cuda": replace(_CUDA_DEFAULT, precisions=(CARD_PRECISION,))},
    ),
    "full": Profile(
        name="full",
        description="a resolution grid per group (scaling curves), both precisions and batch 8 on GPU",
        resolutions={
            "backbone": ((224, 224), (320, 320), (512, 512)),
            "portrait": ((224, 224), (256, 256), (384, 384), (512, 512)),
            "realtime": ((512, 1024), (768, 1536), (1024, 2048)),
            "semantic": ((512, 1024), (768, 1536), (1024, 2048)),
        },
        timing=TimingPolicy(),
        timeout_s=900.0,
        axes={
            "cpu": Axes(),
            "cuda": Axes(precisions=("fp32", "fp16"), batches=(1, 8), cudnn_benchmark=(True,), tf32=(False,)),
        },
    ),
}


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
    return tuple(parse_resolution(part) for part in parts)


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4): the second of four disjoint shards of a sweep (1-based)."""
    match = re.match(r"^(\d+)/(\d+)$", text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(f"malformed shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/2")
    return int(match[1]), int(match[2])


def parse_switch(text: str, option: str) -> tuple[bool, ...]:
    """'on,off' -> (True, False) for on/off axes such as --channels-last."""
    values = {"on": True, "off": False, "true": True, "false": False, "1": True, "0": False}
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in values]
    if bad or not parts:
        raise UsageError(f"malformed {option} {text!r}: expected on, off or on,off")
    return tuple(dict.fromkeys(values[p] for p in parts))


def parse_batches(text: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        batches = ()
    if not batches or min(batches) < 1:
        raise UsageError(f"malformed batch {text!r}: expected positive integers, e.g. 1 or 1,8")
    return batches


def check_models(names: list[str]) -> list[str]:
    # zoo ids and library specs (smp:Unet:resnet34): an unknown one is bad input, as is a missing library
    for name in names:
        try:
            zoo.check_model(name)
        except (zoo.UnknownModelError, zoo.MissingLibraryError) as exc:
            raise UsageError(str(exc)) from None
    return names


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}: expected one of {', '.join(choices)}")
    return value


def check_device(device: str) -> str:
    return check_choice(device, DEVICES, "device")


def check_precision(precision: str) -> str:
    return check_choice(precision, PRECISIONS, "precision")


def check_axes(device: str, axes: Axes) -> Axes:
    """Refuse combinations that cannot run, before anything is measured."""
    for p in axes.precisions:
        if p != CARD_PRECISION:
            check_precision(p)
    for b in axes.backends:
        check_choice(b, BACKENDS, "backend")
    if axes.compile_mode is not None:
        check_choice(axes.compile_mode, COMPILE_MODES, "compile mode")
    if device == "cpu":
        if "cuda_graph" in axes.backends:
            raise UsageError("backend cuda_graph needs --device cuda")
        if any(v is not None for v in axes.cudnn_benchmark + axes.tf32):
            raise UsageError("--cudnn-benchmark and --tf32 are CUDA settings; they need --device cuda")
    if device == "cuda" and "onnxruntime" in axes.backends:
        raise UsageError("backend onnxruntime runs on the CPU only (--device cpu)")
    return axes


def paper_precision(name: str) -> str:
    """The precision the card's speed claim was measured in: fp16 where the card says so, else fp32."""
    card = zoo.find_card(name)  # a library's model has none: fp32
    for reported in card.reported_values("fps") if card else ():
        if reported.precision and reported.precision.lower().startswith("fp16"):
            return "fp16"
    return "fp32"


# Speeds from different machines are compared through this model, measured on the same machine under the
# same conditions: "0.5x bisenetv2" means half as fast as bisenetv2 there. Chosen because it is real-time
# (so cheap to time anywhere) and its card carries a GPU FPS claim to normalise papers' speeds by.
REFERENCE_MODEL = "bisenetv2"


def with_reference(cells: list[Cell]) -> list[Cell]:
    """`cells` plus REFERENCE_MODEL at every input and condition they time that it is not timed at (appended
    in first-use order), so each model's speed can be read relative to it on the same machine."""
    keys = {c.key for c in cells}
    extra = []
    for cell in cells:
        ref = replace(cell, model=REFERENCE_MODEL)
        if ref.key not in keys:
            keys.add(ref.key)
            extra.append(ref)
    return cells + extra


def build_cells(
    profile: Profile,
    models: list[str] | None = None,
    resolutions: tuple[tuple[int, int], ...] | None = None,
    device: str = "cpu",
    axes: Axes | None = None,
) -> list[Cell]:
    """The sweep's cells in run order: model by model, each at the profile's (or the given) resolutions,
    crossed with the condition axes (the profile's for this device unless `axes` is given). A sweep of the
    whole zoo (no `models`) also times REFERENCE_MODEL wherever it times anything (`with_reference`)."""
    names = check_models(models) if models else zoo.list_models()
    axes = check_axes(device, axes or profile.axes[device])
    cells = []
    for name in names:
        # The profile's sizes for the model's group, else the card's (a library model: the library's) size.
        by_group = profile.resolutions or {}
        sizes = resolutions or by_group.get(zoo.model_group(name)) or (zoo.default_input_hw(name),)
        precisions = tuple(
            dict.fromkeys(paper_precision(name) if p == CARD_PRECISION else p for p in axes.precisions)
        )
        for hw, batch, precision, backend, cl, cudnn, tf32 in product(
            sizes,
            axes.batches,
            precisions,
            axes.backends,
            axes.channels_last,
            axes.cudnn_benchmark,
            axes.tf32,
        ):
            if backend == "onnxruntime" and (precision != "fp32" or cl):
                continue  # the ONNX Runtime CPU path runs the exported fp32 graph in its own layout
            mode = (axes.compile_mode or "default") if backend == "compile" else None
            cells.append(Cell(name, tuple(hw), device, precision, batch, backend, cl, cudnn, tf32, mode))
    return cells if models else with_reference(cells)


def shard_cells(cells: list[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """Cells of shard i of n: every n-th cell from the i-th, so each shard gets a mix of models and sizes
    and the shards' union is the whole sweep, with no cell twice."""
    if shard is None:
        return cells
    i, n = shard
    return cells[i - 1 :: n]


def with_axes(base: Axes, **overrides) -> Axes:
    """`base` with the axes the command line gave (None = keep the profile's)."""
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
