"""The GPU window: what `segbench gpu` measures on one GPU within a fixed time (issue 18).

GPU time comes in short windows on a bare machine, so the whole job is prepared here and sized before any
GPU time is spent (`segbench gpu --plan`, bench.window_plan). A window measures:

1. calibration: the run's reference workload and the GPU's measured peaks (as every sweep does);
2. selfcheck: `benchmarks/timer_agreement.py --device cuda` on three models (the harness against
   `torch.utils.benchmark` and a bare CUDA-event loop; ratio within 2% of the event loop);
3. eager: every zoo model at its card's input size, fp32 then fp16, batch 1, eager (all models in fp32
   first, realtime, portrait, backbone then semantic);
4. cuda_graph and 6. compile: the real-time and portrait models at their card size in the precision of
   their paper's speed claim, replayed as a CUDA graph / run through `torch.compile` (compile time kept in
   `compile_s`, apart from latency); each record carries its output agreement with eager fp32;
5. throughput: the real-time models at 512x1024, batch 8 and 32, fp16, eager;
7. interference: three launch-bound cells timed once more with nothing else running (see below).

A whole-zoo window also times the reference model (bench.conditions.REFERENCE_MODEL) under every execution
of each phase. cuDNN autotuning and TF32 are off, as in the `paper` profile.

Each cell is measured in two fresh worker processes (rounds, as any sweep: every cell's first process before
any cell's second), combined into one record with its interval across processes (bench.combine). The
processes run many at once on the machine's CPU cores and take turns on the GPU (bench.window_sched): only
the timed part of one process (warm-up, sampling and the calibration workload beside it) runs at a time,
with nothing else on the GPU and on CPU cores of its own (`timer_cpus`); building models, the `torch.compile`
code generation and the output agreement overlap it. Structure (params, MACs) is not counted in a window:
it is read from the structure records committed under results/structure/ (bench.window_structure).

The interference check answers whether the background work (other processes building and compiling on
the other cores) slows the timed process: its cells' medians with background against without.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zoo
from bench.errors import UsageError
from bench.measure.latency import TimingPolicy
from bench.spec import CARD_PRECISION, PROFILES, Cell, RoundsPolicy, executions, with_reference

DEADLINE_S = 480.0  # the "at most 8 minutes on one H100", from the start of gpu/run.sh
PACK_RESERVE_S = 10.0  # kept after the window for the manifest and the packing of the folder
FINISH_RESERVE_S = 5.0  # kept before that for writing the records (bench.window_run)

# GPU timing. A forward takes milliseconds and CUDA events time it with little spread, so a GPU process
# needs far fewer calls than a CPU one (the quick profile samples 0.5 to 4.5 s): warm up for at least 3
# calls and 50 ms, until the median of the last 3 calls is within 5% of the 3 before (at most 0.5 s); then
# sample at least 10 calls and 0.1 s, until the median's 95% interval is within 1% (at most 1 s or 300
# calls). No set-up ratio: a process's set-up overlaps other processes' timing, so it costs no GPU time.
WINDOW_TIMING = TimingPolicy(
    warmup_iters=3,
    warmup_s=0.05,
    stable_window=3,
    warmup_max_s=0.5,
    min_samples=10,
    min_time_s=0.1,
    max_samples=300,
    max_time_s=1.0,
    ci_target_rel=0.01,
    setup_ratio=0.0,
)
WINDOW_ROUNDS = RoundsPolicy(min_rounds=2, max_rounds=2, target_rel=0.05)
SELFCHECK_MODELS = "mobilenetv2@224x224,bisenetv2@512x1024,fastscnn@1024x2048"
SELFCHECK_ARGS = ("--budget", "0.5", "--rounds", "3")  # 3 models x 3 rounds x 3 timers x 0.5 s
THROUGHPUT_HW = (512, 1024)
THROUGHPUT_BATCHES = (8, 32)
GROUP_ORDER = ("realtime", "portrait", "backbone", "semantic")  # eager order: most-asked-for first
HEAVY_GROUPS = ("semantic",)  # gigabytes of activations each: few of their processes live at once
# Cells timed once more, alone, at the end: launch-bound ones, where CPU load would show first.
INTERFERENCE_CELLS = ("bisenetv2 fp32 eager", "mobilenetv3_small fp32 eager", "sinet fp32 eager")

PHASES = {
    "calibration": "reference workload and measured peaks (fp32, tf32, fp16, copy)",
    "selfcheck": f"timer agreement on cuda: {SELFCHECK_MODELS}",
    "eager": "every zoo model at its card size, fp32 then fp16, batch 1, eager",
    "cuda_graph": "real-time and portrait models at card size, card precision, CUDA graph",
    "throughput": "real-time models at 512x1024, batch 8 and 32, fp16, eager",
    "compile": "real-time and portrait models at card size, card precision, torch.compile",
    "interference": "three launch-bound cells again with nothing else running",
}
PHASE_NAMES = tuple(PHASES)
CELL_PHASES = ("eager", "cuda_graph", "throughput", "compile")
OPTIONAL_PHASES = ("selfcheck", *CELL_PHASES, "interference")  # what --phases chooses from


@dataclass(frozen=True)
class GpuSpec:
    """A GPU's datasheet peaks (dense: without 2:4 sparsity), TFLOP/s and GB/s, with where they come from."""

    key: str
    name: str
    nvml_names: tuple[str, ...]  # the names NVML (nvidia-smi) reports for it, matched whole, any case
    tflops: dict[str, float]  # fp32 on the CUDA cores; tf32, fp16, bf16 on the tensor cores
    gbps: float
    source: str


_H100_SHEET = "NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100/)"
_SPARSE = "; its tensor-core figures are with sparsity, halved here for dense math"
GPUS = {
    spec.key: spec
    for spec in (
        GpuSpec(
            "h100-sxm",
            "NVIDIA H100 SXM5 80GB",
            ("NVIDIA H100 80GB HBM3",),
            {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5},
            3350.0,
            f"{_H100_SHEET}, column H100 SXM: FP32 67, TF32 989, FP16/BF16 1,979 TFLOPS, 3.35 TB/s{_SPARSE}",
        ),
        GpuSpec(
            "h100-pcie",
            "NVIDIA H100 PCIe 80GB",
            ("NVIDIA H100 PCIe",),
            {"fp32": 51.0, "tf32": 378.0, "fp16": 756.5, "bf16": 756.5},
            2000.0,
            f"{_H100_SHEET}, column H100 PCIe: FP32 51, TF32 756, FP16/BF16 1,513 TFLOPS, 2 TB/s{_SPARSE}",
        ),
        GpuSpec(
            "h200",
            "NVIDIA H200 SXM 141GB",
            ("NVIDIA H200",),
            {"fp32": 67.0, "tf32": 494.5, "fp16": 989.5, "bf16": 989.5},
            4800.0,
            "NVIDIA H200 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h200/), column H200 SXM: "
            f"FP32 67, TF32 989, FP16/BF16 1,979 TFLOPS, 4.8 TB/s{_SPARSE}",
        ),
    )
}
DEFAULT_GPU = "h100-sxm"


def gpu_spec(key: str) -> GpuSpec:
    if key not in GPUS:
        raise UsageError(f"unknown GPU {key!r}: expected one of {', '.join(GPUS)}")
    return GPUS[key]


def gpu_for_name(nvml_name: str | None) -> GpuSpec | None:
    """The table's entry for a GPU as NVML names it (None when it is not in the table: another variant, such
    as an H100 NVL or H200 NVL, has other peaks)."""
    name = (nvml_name or "").strip().lower()
    return next((spec for spec in GPUS.values() if name in (n.lower() for n in spec.nvml_names)), None)


# --------------------------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class WindowCell:
    phase: str
    cell: Cell


def _cells(models: list[str], sizes_of, axes: dict) -> list[Cell]:
    return [Cell(m, e) for m in models for e in executions(m, sizes_of(m), "cuda", axes)]


def _card_size(model: str) -> tuple[tuple[int, int], ...]:
    return (zoo.default_input_hw(model),)


def window_cells(models: list[str] | None = None, phases: tuple[str, ...] = CELL_PHASES) -> list[WindowCell]:
    """The window's cells in plan order (see the module docstring), for the whole zoo or only `models`
    (then without the reference model's extra cells, as `segbench run --models` does)."""
    names = models or zoo.survey_models()
    ranked = sorted(names, key=lambda m: (GROUP_ORDER.index(zoo.model_group(m)), names.index(m)))
    fast = [m for m in ranked if zoo.model_group(m) in ("realtime", "portrait")]
    realtime = [m for m in ranked if zoo.model_group(m) == "realtime"]
    base = {**PROFILES["paper"].axes["cuda"], "batch": (1,), "backend": ("eager",)}  # cuDNN, TF32 off
    plan = {
        "eager": [
            c for p in ("fp32", "fp16") for c in _cells(ranked, _card_size, {**base, "precision": (p,)})
        ],
        "cuda_graph": _cells(
            fast, _card_size, {**base, "precision": (CARD_PRECISION,), "backend": ("cuda_graph",)}
        ),
        "throughput": _cells(
            realtime,
            lambda m: (THROUGHPUT_HW,),
            {**base, "precision": ("fp16",), "batch": THROUGHPUT_BATCHES},
        ),
        "compile": _cells(
            fast, _card_size, {**base, "precision": (CARD_PRECISION,), "backend": ("compile",)}
        ),
    }
    out = []
    for phase in phases:
        cells = plan[phase] if models else with_reference(plan[phase])
        out += [WindowCell(phase, c) for c in cells]
    return out


def interference_cells(cells: list[WindowCell]) -> list[WindowCell]:
    """The window's cells that the interference check times again (those of INTERFERENCE_CELLS it has)."""
    wanted = {tuple(text.split()) for text in INTERFERENCE_CELLS}
    return [
        WindowCell("interference", c.cell)
        for c in cells
        if c.phase == "eager"
        and c.cell.execution.input_hw == zoo.default_input_hw(c.cell.model)
        and (c.cell.model, c.cell.execution.precision, c.cell.execution.backend) in wanted
    ]


def short_label(cell: Cell) -> str:
    """'bisenetv2 512x1024 b1 fp16 eager': what varies in a window (cuDNN autotuning and TF32 are off)."""
    e = cell.execution
    return f"{cell.model} {e.input_hw[0]}x{e.input_hw[1]} b{e.batch} {e.precision} {e.backend}"


def is_heavy(cell: Cell) -> bool:
    return zoo.model_group(cell.model) in HEAVY_GROUPS


# --------------------------------------------------------------------------------------------- the CPUs


def timer_cpus(available: set[int] | None = None) -> tuple[frozenset[int], frozenset[int]]:
    """(CPUs of the timed process, CPUs of everything else). The timed process gets one physical core (CPU 0
    and its hyper-thread siblings, read from sysfs) and, when it is a lone thread, the next one too; with
    fewer than four CPUs there is nothing to spare, and both sets are every CPU."""
    cpus = set(available if available is not None else os.sched_getaffinity(0))
    if len(cpus) < 4:
        return frozenset(cpus), frozenset(cpus)
    first = min(cpus)
    timer = _siblings(first) & cpus or {first}
    if len(timer) < 2:
        timer.add(min(cpus - timer))
    return frozenset(timer), frozenset(cpus - timer)


def _siblings(cpu: int) -> set[int]:
    path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except OSError:
        return {cpu}
    out: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def measured_keys(inputs, machine: str) -> set:
    """Keys of the cells with an ok record of `machine` under `inputs` (results files or folders)."""
    from bench.records import BenchRecord
    from bench.store import load

    records, _ = load(inputs)
    return {r.key for r in records if isinstance(r, BenchRecord) and r.ok and r.machine == machine}
