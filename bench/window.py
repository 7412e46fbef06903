"""The GPU window: what `segbench gpu` measures on one GPU within a fixed time, and how long it should take.

GPU time comes in short windows on a bare machine (issue 18), so the whole job is prepared here and sized
before any GPU time is spent (`segbench gpu --plan`). A window runs, in this order:

1. calibration: the run's reference workload and the GPU's measured peaks (as every sweep does);
2. selfcheck: `benchmarks/timer_agreement.py --device cuda` on three models (the harness against
   `torch.utils.benchmark` and a bare CUDA-event loop; ratio within 2% of the event loop);
3. eager: every zoo model at its card's input size, fp32 then fp16, batch 1, eager (all models in fp32
   first, realtime, portrait, backbone then semantic, so a short window still covers the most models);
4. cuda_graph and 6. compile: the real-time and portrait models at their card size in the precision of
   their paper's speed claim, replayed as a CUDA graph / run through `torch.compile` (each record carries
   its output agreement with eager fp32); compile last, as each cell compiles for tens of seconds;
5. throughput: the real-time models at 512x1024, batch 8 and 32, fp16, eager.

A whole-zoo window also times the reference model (bench.conditions.REFERENCE_MODEL) under every execution
of each phase, after that phase's own cells. cuDNN autotuning and TF32 are off, as in the `paper` profile.

Budgets (`Budget`): a global deadline (480 s from the start of `gpu/run.sh`, install included), less a
reserve for writing the files, and for each phase a reserve of time (at most its estimated work) that the
phases before it cannot use. A phase ends where the reserves of the later phases begin; a cell starts only
if its estimate fits in what is left of its phase, and runs with a time limit of min(phase cap, time left in
the phase). A cell that does not fit is recorded in the window's manifest as skipped for time, never
dropped silently; later, cheaper cells of the phase still get their chance. `bench.window_run` adds an
interval timer at the deadline that stops whatever step is running.

Estimates (`estimate_cell`) come from MACs and the GPU's datasheet peak: MACs from a structure record at the
cell's input (results/structure/, `segbench structure`) or else the structural baseline's count at 64x96
scaled by pixels and batch (which undercounts attention whose cost grows with the square of the pixels);
latency = 2 x MACs / (peak x an assumed efficiency), at least an assumed launch-bound floor; a cell's
wall time = that latency times the calls the timing policy makes, plus assumed fixed costs (worker start
with CUDA initialisation, model build, FLOP counting, the reference forward, the adjacent calibration, the
compile). The assumed constants (`ASSUMED`) were not measured on a GPU: a window's manifest records each
cell's estimate beside its wall time so that the first window can replace them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zoo
from bench.errors import UsageError
from bench.measure.latency import TimingPolicy
from bench.spec import CARD_PRECISION, PROFILES, Cell, executions, with_reference

DEADLINE_S = 480.0  # the "at most 8 minutes on one H100", from the start of gpu/run.sh
PACK_RESERVE_S = 10.0  # kept after the last phase for the manifest and the packing of the folder

# Short timing: a GPU forward takes milliseconds, and the window has some 3 s of timing per cell. The
# stopping rule is the harness's (1% interval of the median, else the time budget), recorded per record.
WINDOW_TIMING = TimingPolicy(
    warmup_iters=3,
    warmup_s=0.2,
    warmup_max_s=2.0,
    min_samples=20,
    min_time_s=0.25,
    max_samples=1000,
    max_time_s=1.5,
)
SELFCHECK_MODELS = "mobilenetv2@224x224,bisenetv2@512x1024,fastscnn@1024x2048"
SELFCHECK_ARGS = ("--budget", "0.5", "--rounds", "3")  # 3 models x 3 rounds x 3 timers x 0.5 s
THROUGHPUT_HW = (512, 1024)
THROUGHPUT_BATCHES = (8, 32)
GROUP_ORDER = ("realtime", "portrait", "backbone", "semantic")  # eager order: most-asked-for first


@dataclass(frozen=True)
class Phase:
    """One part of the window: the most time kept for it that earlier parts cannot use (`Budget`), and a
    cap on any one of its cells (on the whole step, for the calibration and the self-check)."""

    name: str
    reserve_s: float
    cap_s: float
    description: str


PHASES = (
    Phase("calibration", 15.0, 45.0, "reference workload and measured peaks (fp32, tf32, fp16, copy)"),
    Phase("selfcheck", 45.0, 90.0, f"timer agreement on cuda: {SELFCHECK_MODELS}"),
    Phase("eager", 200.0, 60.0, "every zoo model at its card size, fp32 then fp16, batch 1, eager"),
    Phase("cuda_graph", 40.0, 60.0, "real-time and portrait models at card size, card precision, CUDA graph"),
    Phase("throughput", 40.0, 60.0, "real-time models at 512x1024, batch 8 and 32, fp16, eager"),
    Phase("compile", 50.0, 180.0, "real-time and portrait models at card size, card precision, compile"),
)
PHASE_NAMES = tuple(p.name for p in PHASES)
CELL_PHASES = ("eager", "cuda_graph", "throughput", "compile")


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
    """The window's cells in run order (see the module docstring), for the whole zoo or only `models`
    (then without the reference model's extra cells, as `segbench run --models` does)."""
    names = models or zoo.list_models()
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


# ----------------------------------------------------------------------------------------- estimates

# Constants the estimates assume: none was measured on a GPU (see the module docstring). Seconds unless named.
ASSUMED = {
    "worker_start_s": 2.5,  # fork from the preloaded server, CUDA context, cuDNN/cuBLAS handles
    "build_s": 0.1,  # + build_s_per_param x params: a seeded CPU build moved to the GPU
    "build_s_per_param": 2.5e-8,  # a ResNet-101 model (about 70 M parameters) builds in about 2 s
    "count_s": 0.5,  # + count_s_per_param x params: fvcore's trace and FlopCounterMode, 2 forwards
    "count_s_per_param": 2.5e-8,
    "calibration_s": 0.7,  # the fixed workload timed before and after the cell
    "compile_s": 45.0,  # torch.compile (default mode) of one model, cold caches
    "graph_capture_s": 0.5,
    "efficiency": {"fp32": 0.4, "tf32": 0.25, "fp16": 0.15, "bf16": 0.15},  # of the datasheet peak
    "floor_ms": {"eager": 3.0, "cuda_graph": 0.3, "compile": 1.0},  # launch-bound latency at batch 1
    "startup_s": 15.0,  # before the first step: install, nvidia-smi, importing torch and the zoo, NVML
    "calibration_phase_s": 15.0,  # the first worker also starts the fork server (imports torch, the zoo)
    "selfcheck_phase_s": 40.0,  # a process of its own: imports, then 3 models x 3 rounds x 3 timers
}


@dataclass(frozen=True)
class Facts:
    """What an estimate needs of a model at one input and batch, and where it came from."""

    macs: float
    params: float
    source: str


class StructureFacts:
    """MACs and params per (model, input, batch): a structure record at that input if one is stored, else the
    structural baseline's count at its small input, scaled by pixels and batch."""

    def __init__(self, results: Path):
        self.results = Path(results)
        self._baseline = None
        self._records: dict[str, list] = {}

    def _baseline_doc(self) -> dict:
        if self._baseline is None:
            path = self.results / "baselines" / "structure.json"
            try:
                self._baseline = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read the structural baseline {path}: {exc}") from None
        return self._baseline

    def _stored(self, model: str) -> list:
        if model not in self._records:
            from bench.records import StructureRecord
            from bench.store import Layout, read_records

            path = Layout(self.results).structure(model)
            found = read_records(path) if path.exists() else []
            self._records[model] = [r for r in found if isinstance(r, StructureRecord) and r.ok]
        return self._records[model]

    def of(self, model: str, hw: tuple[int, int], batch: int) -> Facts:
        for record in reversed(self._stored(model)):
            if tuple(record.input_hw) == tuple(hw) and record.batch == batch and record.macs:
                params = record.get("params_total") or record.get("params") or 0
                return Facts(float(record.macs), float(params), f"structure record {hw[0]}x{hw[1]}")
        doc = self._baseline_doc()
        entry = doc["models"].get(model)
        if entry is None:
            raise UsageError(f"{model} is not in the structural baseline: run `segbench baseline --update`")
        bh, bw = doc["input_hw"]
        scale = hw[0] * hw[1] / (bh * bw) * batch
        params = entry.get("params_total") or entry["params"]
        return Facts(entry["macs"] * scale, float(params), f"baseline {bh}x{bw} x pixels")


@dataclass(frozen=True)
class Estimate:
    latency_ms: float | None
    seconds: float
    macs: float | None
    source: str


def estimate_latency_ms(macs: float, precision: str, backend: str, gpu: GpuSpec, tf32: bool = False) -> float:
    """Forward latency from MACs: 2 x MACs at an assumed fraction of the datasheet peak, at least the
    assumed launch-bound floor of the backend."""
    key = "tf32" if precision == "fp32" and tf32 else precision
    rate = gpu.tflops[key] * 1e12 * ASSUMED["efficiency"][key]
    return max(ASSUMED["floor_ms"][backend], 2 * macs / rate * 1e3)


def timed_calls_s(latency_ms: float, policy: TimingPolicy) -> float:
    """Seconds the harness spends warming up and sampling a forward of this latency under `policy`,
    supposing the warm-up settles after two windows and the interval target is met at the minimum."""
    lat = latency_ms / 1e3
    warmup = min(
        max(policy.warmup_s, max(policy.warmup_iters, 2 * policy.stable_window) * lat), policy.warmup_max_s
    )
    sampling = min(max(policy.min_time_s, max(policy.min_samples, 3) * lat), max(policy.max_time_s, 3 * lat))
    return warmup + sampling


def estimate_cell(
    cell: Cell, facts: StructureFacts, gpu: GpuSpec, policy: TimingPolicy = WINDOW_TIMING
) -> Estimate:
    """The cell's latency and wall time as the window would spend it (see the module docstring)."""
    e = cell.execution
    f = facts.of(cell.model, e.input_hw, e.batch)
    latency = estimate_latency_ms(f.macs, e.precision, e.backend, gpu, bool(e.tf32))
    fp32 = estimate_latency_ms(f.macs, "fp32", "eager", gpu) / 1e3
    build = ASSUMED["build_s"] + ASSUMED["build_s_per_param"] * f.params
    setup = {
        "eager": latency / 1e3,
        "cuda_graph": ASSUMED["graph_capture_s"] + 4 * latency / 1e3,
        "compile": ASSUMED["compile_s"] + 3 * latency / 1e3,
    }[e.backend]
    seconds = (
        ASSUMED["worker_start_s"]
        + build
        + setup
        + ASSUMED["calibration_s"]
        + timed_calls_s(latency, policy)
        + (0.0 if e.is_reference else build + fp32)  # the fresh eager fp32 build for output agreement
        + ASSUMED["count_s"]
        + ASSUMED["count_s_per_param"] * f.params
        + 2 * fp32
    )
    return Estimate(latency, seconds, f.macs, f.source)


# -------------------------------------------------------------------------------------------- budget


@dataclass
class Budget:
    """The window's time: a global deadline, a reserve per phase, and the decision whether a step starts.

    Times are seconds since the window started. Each phase with work has a reserve: its Phase.reserve_s, or
    its estimated work where that is less. Reserves are granted in run order while the deadline (less
    `pack_s`, kept for writing the files) allows, so a deadline too short for all of them shortens the last
    ones. A phase ends where the reserves of the phases after it begin: no phase can eat the time kept for a
    later one, and time a phase does not use passes to the next."""

    deadline_s: float = DEADLINE_S
    work: dict[str, float] | None = None  # estimated seconds per phase (None: every phase, full reserves)
    phases: tuple[Phase, ...] = PHASES
    pack_s: float = PACK_RESERVE_S

    def __post_init__(self):
        if self.deadline_s <= self.pack_s:
            raise UsageError(
                f"deadline {self.deadline_s:g} s is not more than the {self.pack_s:g} s kept for writing"
            )
        free = self.deadline_s - self.pack_s
        self.reserve: dict[str, float] = {}
        for p in self.phases:
            wanted = p.reserve_s if self.work is None else min(p.reserve_s, self.work.get(p.name, 0.0))
            self.reserve[p.name] = min(wanted, free)
            free -= self.reserve[p.name]

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.phases if self.work is None or p.name in self.work)

    def phase_end(self, phase: str) -> float:
        """Seconds since the start by which `phase` must end."""
        names = [p.name for p in self.phases]
        later = names[names.index(phase) + 1 :]
        return self.deadline_s - self.pack_s - sum(self.reserve[n] for n in later)

    def cap(self, phase: str) -> float:
        return next(p.cap_s for p in self.phases if p.name == phase)

    def admit(self, phase: str, elapsed_s: float, estimate_s: float) -> float | None:
        """The time limit for a step of `phase` estimated at `estimate_s`, starting `elapsed_s` into the
        window; None when it does not fit in what is left of the phase (skipped for time)."""
        left = self.phase_end(phase) - elapsed_s
        if estimate_s > left:
            return None
        return min(self.cap(phase), left)


# ------------------------------------------------------------------------------------------ schedule


@dataclass(frozen=True)
class Step:
    """One step of a window: a cell, or the calibration or self-check (cell None), with its estimate."""

    phase: str
    cell: Cell | None
    estimate: Estimate

    @property
    def label(self) -> str:
        return short_label(self.cell) if self.cell else self.phase


def short_label(cell: Cell) -> str:
    """'bisenetv2 512x1024 b1 fp16 eager': what varies in a window (cuDNN autotuning and TF32 are off)."""
    e = cell.execution
    return f"{cell.model} {e.input_hw[0]}x{e.input_hw[1]} b{e.batch} {e.precision} {e.backend}"


def window_steps(
    cells: list[WindowCell],
    facts: StructureFacts,
    gpu: GpuSpec,
    fixed: tuple[str, ...] = ("calibration", "selfcheck"),
) -> list[Step]:
    """The calibration and self-check (those named in `fixed`) then the cells, each with its estimate."""
    steps = [Step(name, None, Estimate(None, ASSUMED[f"{name}_phase_s"], None, "assumed")) for name in fixed]
    return steps + [Step(c.phase, c.cell, estimate_cell(c.cell, facts, gpu)) for c in cells]


def phase_work(steps: list[Step]) -> dict[str, float]:
    """Estimated seconds of each phase's steps (the phases with work only), for `Budget`."""
    work: dict[str, float] = {}
    for step in steps:
        work[step.phase] = work.get(step.phase, 0.0) + step.estimate.seconds
    return work


def schedule(
    steps: list[Step], budget: Budget, elapsed: Callable[[], float]
) -> Iterator[tuple[Step, float | None]]:
    """(step, time limit) for each step in order, the limit None for a step skipped for time. `elapsed()`
    is read as each step comes up: the caller runs the step (a plan: advances its clock) in between."""
    for step in steps:
        yield step, budget.admit(step.phase, elapsed(), step.estimate.seconds)


@dataclass
class PlanRow:
    step: Step
    start_s: float | None  # None: skipped for time


def plan(
    steps: list[Step], deadline_s: float = DEADLINE_S, start_s: float | None = None
) -> tuple[list[PlanRow], Budget]:
    """The window as it would run if every step took exactly its estimate, the first starting at `start_s`
    (default: the assumed start-up)."""
    budget = Budget(deadline_s, phase_work(steps))
    clock = [ASSUMED["startup_s"] if start_s is None else start_s]
    rows = []
    for step, limit in schedule(steps, budget, lambda: clock[0]):
        rows.append(PlanRow(step, clock[0] if limit is not None else None))
        if limit is not None:
            clock[0] += step.estimate.seconds
    return rows, budget


def format_plan(rows: list[PlanRow], budget: Budget, gpu: GpuSpec, measured_before: int = 0) -> str:
    lines = [
        f"GPU window plan for {gpu.name}: deadline {budget.deadline_s:g} s, {PACK_RESERVE_S:g} s of it kept "
        "for writing the files",
        "datasheet peaks (dense): "
        + ", ".join(f"{k} {v:g}" for k, v in gpu.tflops.items())
        + f" TFLOP/s, {gpu.gbps:g} GB/s",
        f"source: {gpu.source}",
        "",
        f"{'phase':<11} {'step':<46} {'GMACs':>8} {'est ms':>7} {'est s':>6} {'start s':>7}  in window",
    ]
    for r in rows:
        est = r.step.estimate
        gmacs = f"{est.macs / 1e9:8.1f}" if est.macs is not None else f"{'':>8}"
        ms = f"{est.latency_ms:7.2f}" if est.latency_ms is not None else f"{'':>7}"
        start = f"{r.start_s:7.1f}" if r.start_s is not None else f"{'-':>7}"
        fits = "yes" if r.start_s is not None else "no: skipped for time"
        lines.append(f"{r.step.phase:<11} {r.step.label:<46} {gmacs} {ms} {est.seconds:6.1f} {start}  {fits}")
    lines += ["", f"{'phase':<11} {'steps':>6} {'est s':>7} {'in window':>10} {'est s':>7}  ends by"]
    for phase in PHASE_NAMES:
        mine = [r for r in rows if r.step.phase == phase]
        if mine:
            run = [r for r in mine if r.start_s is not None]
            s_all, s_run = (sum(r.step.estimate.seconds for r in rs) for rs in (mine, run))
            lines.append(
                f"{phase:<11} {len(mine):>6} {s_all:7.0f} {len(run):>10} {s_run:7.0f}  "
                f"{budget.phase_end(phase):.0f} s"
            )
    cells = [r for r in rows if r.step.cell is not None]
    fit = [r for r in cells if r.start_s is not None]
    startup = min((r.start_s for r in rows if r.start_s is not None), default=0.0)
    total = startup + sum(r.step.estimate.seconds for r in rows)
    used = startup + sum(r.step.estimate.seconds for r in rows if r.start_s is not None)
    lines += [
        "",
        f"whole list: {len(cells)} cells, estimated {total:.0f} s ({total / 60:.1f} min) with the "
        f"start-up ({startup:.0f} s), the calibration and the self-check",
        f"within {budget.deadline_s:g} s: {len(fit)} cells ({used:.0f} s in all); {len(cells) - len(fit)} "
        "skipped for time (a later window given --skip-measured measures them)"
        + (f"; {measured_before} cells left out as measured before" if measured_before else ""),
        "MACs: a structure record at the cell's input where stored, else the structural baseline scaled by "
        "pixels and batch;",
        "latency and wall time: assumed constants (bench.window.ASSUMED), not GPU measurements",
    ]
    return "\n".join(lines)


def measured_keys(inputs: list[Path], machine: str) -> set:
    """Keys of the cells with an ok record of `machine` under `inputs` (results files or folders)."""
    from bench.records import BenchRecord
    from bench.store import load

    records, _ = load(inputs)
    return {r.key for r in records if isinstance(r, BenchRecord) and r.ok and r.machine == machine}
