"""What a sweep runs: cells (a model under one `Execution`), profiles, timing policies, and shards.

The only configuration is this run spec; profiles are named, embedded defaults that the command line can
narrow or override axis by axis. The axes themselves (their values, checks, labels) are bench.conditions'.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from itertools import product

import zoo
from bench.conditions import AXES, DEVICES, REFERENCE_MODEL, Execution
from bench.errors import UsageError
from bench.measure.latency import TimingPolicy

# An axis value resolved per model: the precision its paper's speed claim was measured in.
CARD_PRECISION = "card"
# Card claims whose input size is a size the papers time at.
SPEED_METRICS = ("fps", "latency_ms")

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
class RoundsPolicy:
    """How many worker processes (rounds) measure each cell, and where the sweep's time goes (bench.run).

    Every cell is measured in `min_rounds` processes, one per round, each round over all the sweep's cells.
    A cell whose repeat interval (bench.measure.stats.across_processes) is then within `target_rel` of its
    median is done ("ci_target"); the others get another process per round, up to `max_rounds` ("rounds"),
    while the sweep's wall time stays within `budget_s` ("sweep_budget" for a cell that did not fit; None:
    no limit). So the time that converged cells do not take goes to the cells that need it.
    """

    min_rounds: int = 2
    max_rounds: int = 4
    target_rel: float = 0.05
    budget_s: float | None = None

    def __post_init__(self):
        if not 1 <= self.min_rounds <= self.max_rounds:
            raise ValueError(f"rounds need 1 <= min_rounds <= max_rounds: {self}")
        if not self.target_rel > 0 or (self.budget_s is not None and not self.budget_s >= 0):
            raise ValueError(f"target_rel must be positive and budget_s non-negative: {self}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    """A named sweep: input sizes per model group (None: each model's paper size), condition axes per device,
    a timing policy per worker process, a rounds policy per cell and a per-process time limit.

    `paper_sizes_on`: devices on which each group's sizes also include every input size its models' cards
    state (the model's own and its speed claims'), so that a GPU sweep reaches the sizes papers report."""

    name: str
    description: str
    resolutions: dict[str, tuple[tuple[int, int], ...]] | None
    timing: TimingPolicy
    timeout_s: float
    axes: dict[str, Axes] = field(default_factory=lambda: {"cpu": {}, "cuda": {}})
    rounds: RoundsPolicy = field(default_factory=RoundsPolicy)
    paper_sizes_on: tuple[str, ...] = ()


# CUDA sweeps state cuDNN autotuning and TF32 rather than inherit torch's defaults.
_CUDA_DEFAULT: Axes = {"cudnn_benchmark": (False,), "tf32": (False,)}

# The quick profile's budget: the whole zoo (60 cells) within 10 minutes on 2 CPU cores, most of it inside
# timed forwards. Two processes per cell are the fixed cost (set-up: start, build, first forward); each
# process samples at least 4x its set-up (`setup_ratio`), until its median is known to 3% or for 3.5 s; a
# cell stops once its repeat interval is within 5%, else it gets a third process while the sweep is within
# 560 s. The spread between processes, not the samples within one, sets the interval, so 3.5 s (was 4.5)
# costs little (benchmarks/replay_policy.py). On a 2-core EPYC VM, no structure left to count: 560 s, 70% in
# timed forwards (593-640 s, 71-73% at 4.5 s); most of the untimed rest is first forwards and model builds.
PROFILES = {
    "quick": Profile(
        name="quick",
        description="CPU smoke sweep: every model once at a small input, short timing; the embedded default",
        # One size per group keeps the whole zoo within 10 minutes on 2 cores; `scaling` sweeps resolutions.
        resolutions={
            "backbone": ((224, 224),),
            "portrait": ((224, 224),),
            "realtime": ((360, 480),),  # CamVid's size, not a multiple of 32
            "semantic": ((256, 512),),  # Cityscapes' aspect ratio at a quarter of 512x1024
        },
        timing=TimingPolicy(
            warmup_iters=1,
            warmup_s=0.1,
            stable_window=3,
            warmup_max_s=0.6,
            min_samples=5,
            min_time_s=0.5,
            max_time_s=3.5,
            ci_target_rel=0.03,
            setup_ratio=4.0,
        ),
        timeout_s=300.0,
        axes={"cpu": {}, "cuda": _CUDA_DEFAULT},
        rounds=RoundsPolicy(min_rounds=2, max_rounds=3, target_rel=0.05, budget_s=560.0),
    ),
    "scaling": Profile(
        name="scaling",
        description="a resolution grid per group (cost against input size, crossovers); on CUDA also every "
        "input size the group's papers state",
        # Sized for about an hour of the whole zoo on 2 CPU cores (its dilated ResNets take 2-9 s per forward
        # at 512x1024). The spread between processes and between runs (bench.intervals) sets the interval, so
        # each cell gets two processes, each sampling 3 s at most once it has 3 samples: 55 min on a 2-core
        # EPYC VM (82 min at 8 s, about two hours with up to three processes and 5 samples).
        resolutions={
            "backbone": ((224, 224), (320, 320), (416, 416), (512, 512)),
            "portrait": ((192, 192), (256, 256), (384, 384), (512, 512)),
            "realtime": ((360, 480), (512, 1024), (768, 1536), (1024, 2048)),
            "semantic": ((256, 512), (384, 768), (512, 1024)),
        },
        timing=TimingPolicy(
            warmup_iters=1,
            warmup_s=0.2,
            stable_window=3,
            warmup_max_s=0.6,
            min_samples=3,
            min_time_s=0.5,
            max_time_s=3.0,
            ci_target_rel=0.02,
            setup_ratio=3.0,
        ),
        timeout_s=900.0,
        axes={"cpu": {}, "cuda": {**_CUDA_DEFAULT, "cudnn_benchmark": (True,)}},
        rounds=RoundsPolicy(min_rounds=2, max_rounds=2, target_rel=0.05, budget_s=3600.0),
        paper_sizes_on=("cuda",),
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


def paper_sizes(group: str) -> tuple[tuple[int, int], ...]:
    """Every input size the cards of `group`'s models state (each model's own and its speed claims'),
    smallest first."""
    sizes = set()
    for name in zoo.list_models(group):
        card = zoo.get_card(name)
        sizes.add(tuple(card.input_hw))
        sizes.update(tuple(r.input_hw) for r in card.reported if r.input_hw and r.metric in SPEED_METRICS)
    return tuple(sorted(sizes, key=lambda hw: (hw[0] * hw[1], hw)))


def profile_sizes(profile: Profile, group: str, device: str) -> tuple[tuple[int, int], ...]:
    """The profile's input sizes for a group on a device (empty: each model's own size)."""
    sizes = tuple((profile.resolutions or {}).get(group, ()))
    if device in profile.paper_sizes_on and group in zoo.GROUPS:
        sizes = tuple(dict.fromkeys(sizes + paper_sizes(group)))
    return sizes


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
        group_sizes = profile_sizes(profile, zoo.model_group(name), device)
        sizes = resolutions or group_sizes or (zoo.default_input_hw(name),)
        cells += [Cell(name, execution) for execution in executions(name, sizes, device, axes)]
    return cells if models else with_reference(cells)


def shard_cells(cells: list[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """Cells of shard i of n: every n-th cell from the i-th, so each shard gets a mix of models and sizes
    and the shards' union is the whole sweep, with no cell twice."""
    if shard is None:
        return cells
    i, n = shard
    return cells[i - 1 :: n]
