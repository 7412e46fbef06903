"""What a sweep runs: cells (a model under one `Execution`), profiles, timing policies, and shards.

The only configuration is this run spec; profiles are named, embedded defaults that the command line can
narrow or override axis by axis. The axes themselves (their values, checks, labels) are bench.conditions'.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import product

import zoo
from bench.conditions import AXES, DEVICES, REFERENCE_MODEL, Execution
from bench.errors import UsageError
from bench.measure.latency import TimingPolicy

# An axis value resolved per model: the precision its paper's speed claim was measured in.
CARD_PRECISION = "card"

# Values for some axes of `Execution` (axis name -> values to cross); an axis not named keeps its default.
Axes = dict[str, tuple]


@dataclass(frozen=True)
class Cell:
    """One measurement: a model under one execution (input size, batch, device, precision, backend...)."""

    model: str
    execution: Execution

    @property
    def key(self) -> tuple:
        """The same key as its record's (`bench.records.BenchRecord.key`), which --resume matches on."""
        return (self.model, *self.execution.key)

    def __str__(self) -> str:
        return f"{self.model} {self.execution.label()}"


@dataclass(frozen=True)
class Profile:
    """A named sweep: input sizes per model group (None: each model's paper size), condition axes per device,
    a timing policy and a per-cell time limit."""

    name: str
    description: str
    resolutions: dict[str, tuple[tuple[int, int], ...]] | None
    timing: TimingPolicy
    timeout_s: float
    axes: dict[str, Axes] = field(default_factory=lambda: {"cpu": {}, "cuda": {}})


# CUDA sweeps state cuDNN autotuning and TF32 rather than inherit torch's defaults.
_CUDA_DEFAULT: Axes = {"cudnn_benchmark": (False,), "tf32": (False,)}

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
        axes={"cpu": {}, "cuda": _CUDA_DEFAULT},
    ),
    "paper": Profile(
        name="paper",
        description="each model at its paper's input size, in its speed claim's precision on CUDA",
        resolutions=None,
        timing=TimingPolicy(),
        timeout_s=900.0,
        axes={"cpu": {}, "cuda": {**_CUDA_DEFAULT, "precision": (CARD_PRECISION,)}},
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
            "cpu": {},
            "cuda": {
                "precision": ("fp32", "fp16"),
                "batch": (1, 8),
                "cudnn_benchmark": (True,),
                "tf32": (False,),
            },
        },
    ),
}


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """'2/4' -> (2, 4): the second of four disjoint shards of a sweep (1-based); 'auto': the index and
    count of the Slurm job array or Kubernetes Indexed Job this process runs in (`shard_from_environment`)."""
    if text.strip() == "auto":
        return shard_from_environment(os.environ if environ is None else environ)
    match = re.match(r"^(\d+)/(\d+)$", text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise UsageError(f"malformed shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/2, or auto")
    return int(match[1]), int(match[2])


# A Kubernetes Indexed Job exports each pod's JOB_COMPLETION_INDEX but not the Job's completions count:
# the pod template sets this variable to the same number as `.spec.completions`.
SHARD_COUNT_ENV = "SEGBENCH_SHARD_COUNT"


def _env_int(environ: Mapping[str, str], name: str) -> int:
    value = environ.get(name)
    if value is None:
        raise UsageError(f"--shard auto: {name} is not set")
    if not value.strip().isdigit():
        raise UsageError(f"--shard auto: {name} is {value!r}, not a non-negative integer")
    return int(value)


def shard_from_environment(environ: Mapping[str, str]) -> tuple[int, int]:
    """(index, count), 1-based like --shard I/N, of this task of a job array:

    - Slurm (`sbatch --array=A-B[:S]`): SLURM_ARRAY_TASK_ID, counted from SLURM_ARRAY_TASK_MIN in steps of
      SLURM_ARRAY_TASK_STEP (an array may start at any index: --array=0-3 and --array=5-8 are both shards
      1..4), of SLURM_ARRAY_TASK_COUNT. An array that is not one range (--array=1,4,9) is refused.
    - Kubernetes Indexed Job: JOB_COMPLETION_INDEX (0-based) of SEGBENCH_SHARD_COUNT (set it in the pod
      template to the Job's `.spec.completions`).

    Anything missing, malformed or inconsistent is a one-line UsageError."""
    slurm, k8s = "SLURM_ARRAY_TASK_ID" in environ, "JOB_COMPLETION_INDEX" in environ
    if slurm and k8s:
        raise UsageError(
            "--shard auto: both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set; pass --shard I/N"
        )
    if slurm:
        task, count = _env_int(environ, "SLURM_ARRAY_TASK_ID"), _env_int(environ, "SLURM_ARRAY_TASK_COUNT")
        first = _env_int(environ, "SLURM_ARRAY_TASK_MIN")
        step = _env_int(environ, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in environ else 1
        last = _env_int(environ, "SLURM_ARRAY_TASK_MAX") if "SLURM_ARRAY_TASK_MAX" in environ else None
        if step < 1 or count < 1 or (last is not None and first + (count - 1) * step != last):
            raise UsageError(
                f"--shard auto: the Slurm array ({count} tasks from {first} to {last}, step {step}) is not "
                "one range; submit it as --array=A-B or --array=A-B:S, or pass --shard I/N"
            )
        offset = task - first
        if offset < 0 or offset % step or offset // step >= count:
            raise UsageError(
                f"--shard auto: SLURM_ARRAY_TASK_ID {task} is not a task of the array of {count} from "
                f"{first} in steps of {step}"
            )
        return offset // step + 1, count
    if k8s:
        index, count = _env_int(environ, "JOB_COMPLETION_INDEX"), _env_int(environ, SHARD_COUNT_ENV)
        if not index < count:
            raise UsageError(
                f"--shard auto: JOB_COMPLETION_INDEX {index} is not below {SHARD_COUNT_ENV} {count} "
                "(set it to the Job's .spec.completions)"
            )
        return index + 1, count
    raise UsageError(
        "--shard auto: no Slurm job array (SLURM_ARRAY_TASK_ID) or Kubernetes Indexed Job "
        f"(JOB_COMPLETION_INDEX with {SHARD_COUNT_ENV}) in the environment; pass --shard I/N"
    )


def check_models(names: list[str]) -> list[str]:
    # zoo ids and library specs (smp:Unet:resnet34): an unknown one is bad input, as is a missing library
    for name in names:
        try:
            zoo.check_model(name)
        except (zoo.UnknownModelError, zoo.MissingLibraryError) as exc:
            raise UsageError(str(exc)) from None
    return names


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    return device


def paper_precision(name: str) -> str:
    """The precision the card's speed claim was measured in: fp16 where the card says so, else fp32."""
    card = zoo.find_card(name)  # a library's model has none: fp32
    for reported in card.reported_values("fps") if card else ():
        if reported.precision and reported.precision.lower().startswith("fp16"):
            return "fp16"
    return "fp32"


def with_reference(cells: list[Cell]) -> list[Cell]:
    """`cells` plus REFERENCE_MODEL under every execution they time that it is not timed under (appended in
    first-use order), so each model's speed can be read relative to it on the same machine."""
    keys = {c.key for c in cells}
    extra = []
    for cell in cells:
        ref = replace(cell, model=REFERENCE_MODEL)
        if ref.key not in keys:
            keys.add(ref.key)
            extra.append(ref)
    return cells + extra


def executions(model: str, sizes, device: str, axes: Axes) -> list[Execution]:
    """Every execution of `model` at `sizes` crossed with `axes` (validated), in axis order, without
    combinations that do not apply: a compile mode goes with the compile backend only (default "default"),
    and ONNX Runtime runs the exported fp32 graph in its own layout."""
    values = []
    for axis in AXES:
        chosen = axes.get(axis.name, (axis.default,))
        if axis.name == "device":
            chosen = (device,)
        elif axis.name == "precision":
            chosen = tuple(
                dict.fromkeys(paper_precision(model) if p == CARD_PRECISION else p for p in chosen)
            )
        values.append(chosen)
    out: dict[tuple, Execution] = {}
    for hw in sizes:
        for combo in product(*values):
            fields = dict(zip((a.name for a in AXES), combo, strict=True))
            if fields["backend"] == "compile":
                fields["compile_mode"] = fields["compile_mode"] or "default"
            elif fields["compile_mode"] is not None:
                if "compile" not in axes.get("backend", ()):
                    raise UsageError("--compile-mode needs --backend compile")
                fields["compile_mode"] = None
            if fields["backend"] == "onnxruntime" and (
                fields["precision"] != "fp32" or fields["channels_last"]
            ):
                continue
            execution = Execution(input_hw=tuple(hw), **fields).validate()
            out.setdefault(execution.key, execution)
    return list(out.values())


def build_cells(
    profile: Profile,
    models: list[str] | None = None,
    resolutions: tuple[tuple[int, int], ...] | None = None,
    device: str = "cpu",
    axes: Axes | None = None,
) -> list[Cell]:
    """The sweep's cells in run order: model by model, each at the profile's (or the given) resolutions,
    crossed with the condition axes (the profile's for this device, overridden axis by axis by `axes`). A
    sweep of the whole zoo (no `models`) also times REFERENCE_MODEL wherever it times anything."""
    names = check_models(models) if models else zoo.list_models()
    axes = {**profile.axes[check_device(device)], **(axes or {})}
    cells = []
    for name in names:
        # The profile's sizes for the model's group, else the card's (a library model: the library's) size.
        by_group = profile.resolutions or {}
        sizes = resolutions or by_group.get(zoo.model_group(name)) or (zoo.default_input_hw(name),)
        cells += [Cell(name, execution) for execution in executions(name, sizes, device, axes)]
    return cells if models else with_reference(cells)


def shard_cells(cells: list[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """Cells of shard i of n: every n-th cell from the i-th, so each shard gets a mix of models and sizes
    and the shards' union is the whole sweep, with no cell twice."""
    if shard is None:
        return cells
    i, n = shard
    return cells[i - 1 :: n]
