"""The GPU window's plan: every process of the window as a job of estimated segments (bench.window_sched),
the schedule simulated on them, and the plan `segbench gpu --plan` prints.

Each estimate comes from a stated assumption (`ASSUMED`: value, and where it comes from: measured here on
the CPU, derived from the timing policy, from a datasheet or a public report, or assumed). A real window's
manifest keeps each job's estimate beside what it took, so that the first window replaces the assumptions.

A cell's process, as segments (CPU work runs on the cores the timed process does not use):

    cpu        start (fork from the preloaded fork server) and the model's build on the CPU
    shared     CUDA context, moving the model, backend set-up (CUDA graph capture), the first forward
    cpu        compile only: Inductor's code generation, cold (first process) or from the cache (second)
    shared     compile only: the first compiled runs (Triton autotuning)
    exclusive  calibration workload, warm-up, sampling, calibration workload (WINDOW_TIMING)
    cpu        first process only: the reference model's build (output agreement)
    shared     first process only: the reference forward, eager fp32
    exit       the process ends and its CUDA context goes

Latency is estimated from MACs (results/structure/, bench.window_structure) at an assumed share of the
GPU's datasheet peak, at least an assumed launch-bound floor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench import window
from bench.measure.calibration import PROCESS_POLICY
from bench.measure.latency import TimingPolicy
from bench.window_sched import EXCLUSIVE, SHARED, Config, Job, Segment, Simulation, simulate
from bench.window_structure import StructureFacts

_HERE = "measured on this project's 2-core CPU VM (AMD EPYC, shared)"
_ASSUMED = "assumed, not measured on a GPU machine yet"

# name: (value, source). Seconds unless named otherwise.
ASSUMED: dict[str, tuple[float, str]] = {
    "startup_s": (15.0, f"{_ASSUMED}: install from gpu/wheels, imports, NVML, the fork server's imports"),
    "worker_start_s": (0.15, f"{_HERE}: a job from the preloaded fork server, median 0.12 s"),
    "build_s": (0.05, f"{_HERE}: seeded builds of the 58 zoo models on 1 thread"),
    "build_s_per_param": (2.1e-8, f"{_HERE}: median of build time / params over the 58 models"),
    "cuda_init_s": (0.5, f"{_ASSUMED}: a process's CUDA context (lazy module loading)"),
    "upload_gbps": (10.0, f"{_ASSUMED}: pageable host-to-device copy of the weights"),
    "first_call_s": (0.5, f"{_ASSUMED}: cuDNN/cuBLAS handles, kernel loading and heuristics, 1st forward"),
    "graph_capture_s": (0.2, f"{_ASSUMED}: CUDA graph capture, beside its 3 warm-up forwards"),
    "compile_cold_s": (
        60.0,
        f"{_ASSUMED}: Inductor, 1 compile thread; a public report has a ResNet-152 compiled in 21 s cold "
        "and 9 s warm with all threads (thomasjpfan.com, 2025-04)",
    ),
    "compile_warm_s": (9.0, "the same report's warm compile (FX graph cache)"),
    "compile_run_s": (1.0, f"{_ASSUMED}: the first compiled runs, Triton autotuning included"),
    "exit_s": (0.3, f"{_ASSUMED}: a process's end with its CUDA context"),
    "turn_s": (0.005, f"{_ASSUMED}: handing a turn over through a pipe"),
    "calibration_ms": (0.1, f"{_ASSUMED}: one call of the calibration workload on the GPU"),
    "monitor_s": (0.01, f"{_ASSUMED}: NVML readings before and after the sampling"),
    "calibration_s": (10.0, f"{_ASSUMED}: the run's calibration (CUDA start, matmul and copy peaks)"),
    "selfcheck_start_s": (10.0, f"{_ASSUMED}: the self-check's own Python, imports, CUDA and builds"),
    "efficiency_fp32": (0.4, f"{_ASSUMED}: share of the datasheet peak a forward reaches"),
    "efficiency_tf32": (0.25, _ASSUMED),
    "efficiency_fp16": (0.15, _ASSUMED),
    "efficiency_bf16": (0.15, _ASSUMED),
    "floor_ms_eager": (3.0, f"{_ASSUMED}: launch-bound latency of an eager forward at batch 1"),
    "floor_ms_cuda_graph": (0.3, f"{_ASSUMED}: a graph replay"),
    "floor_ms_compile": (1.0, f"{_ASSUMED}: a compiled forward"),
}

# CPU priorities (bench.window_turns): work that holds a GPU turn (and a process's exit, which holds the
# GPU too) runs at nice 0, since the GPU waits for it; other CPU work (starting, building) at nice 5;
# Inductor's code generation at nice 15, on the cores the others leave (the compiles are timed last
# anyway). CFS weighs a thread at nice 0, 5 and 15 as 1024, 335 and 36.
NICE = {"turn": 0, "cpu": 5, "compile": 15}
WEIGHT = {"turn": 1.0, "cpu": 335 / 1024, "compile": 36 / 1024}

# How many processes live at once (bench.window_sched.Config): the cores are the machine's 16 less the
# timed process's 2; compile processes hold a slot through minutes of code generation.
CONFIG = Config(slots={"cells": 24, "compile": 16}, batch=12, max_shared_s=2.0, heavy=8, cores=14.0)


def a(name: str) -> float:
    return ASSUMED[name][0]


def estimate_latency_ms(macs: float, precision: str, backend: str, gpu: window.GpuSpec, tf32=False) -> float:
    """Forward latency from MACs: 2 x MACs at an assumed share of the datasheet peak, at least the assumed
    launch-bound floor of the backend."""
    key = "tf32" if precision == "fp32" and tf32 else precision
    rate = gpu.tflops[key] * 1e12 * a(f"efficiency_{key}")
    return max(a(f"floor_ms_{backend}"), 2 * macs / rate * 1e3)


def warmup_s(latency_ms: float, policy: TimingPolicy) -> float:
    """The warm-up's seconds, supposing it settles as soon as its windows are full (the first forward
    counts as its first call)."""
    lat = latency_ms / 1e3
    calls = max(policy.warmup_iters, 2 * policy.stable_window) - 1
    return min(max(policy.warmup_s - lat, calls * lat), policy.warmup_max_s + lat)


def sampling_s(latency_ms: float, policy: TimingPolicy) -> float:
    """Sampling's seconds, supposing the interval target is met at the first check."""
    lat = latency_ms / 1e3
    return min(
        max(policy.min_time_s, max(policy.min_samples, 3) * lat), max(policy.max_time_s + lat, 3 * lat)
    )


def calibration_pair_s(policy: TimingPolicy = PROCESS_POLICY) -> float:
    """The calibration workload before and after a process's sampling (bench.worker)."""
    return 2 * (warmup_s(a("calibration_ms"), policy) + sampling_s(a("calibration_ms"), policy))


def exclusive_s(latency_ms: float, policy: TimingPolicy = window.WINDOW_TIMING) -> float:
    return (
        calibration_pair_s()
        + warmup_s(latency_ms, policy)
        + sampling_s(latency_ms, policy)
        + a("monitor_s")
        + a("turn_s")
    )


@dataclass(frozen=True)
class CellEstimate:
    latency_ms: float
    macs: float | None
    source: str
    segments: tuple[Segment, ...]


def cell_segments(cell: window.Cell, facts: StructureFacts, gpu: window.GpuSpec, first: bool) -> CellEstimate:
    """A cell's process as segments (see the module docstring); `first`: its first process (cold compile,
    output agreement)."""
    e = cell.execution
    f = facts.of(cell.model, e.input_hw, e.batch)
    latency = estimate_latency_ms(f.macs, e.precision, e.backend, gpu, bool(e.tf32))
    reference = estimate_latency_ms(f.macs, "fp32", "eager", gpu) / 1e3
    build = a("build_s") + a("build_s_per_param") * f.params
    upload = f.params * 4 / (a("upload_gbps") * 1e9)
    first_call = a("first_call_s") + latency / 1e3
    cpu = WEIGHT["cpu"]
    segments = [Segment("cpu", a("worker_start_s") + build, cpu)]
    if e.backend == "compile":
        compile_s = a("compile_cold_s") if first else a("compile_warm_s")
        segments += [
            Segment(SHARED, a("cuda_init_s") + upload),
            Segment("cpu", compile_s, WEIGHT["compile"]),
            Segment(SHARED, a("compile_run_s") + first_call + 2 * latency / 1e3),
        ]
    else:
        capture = a("graph_capture_s") + 4 * latency / 1e3 if e.backend == "cuda_graph" else 0.0
        segments.append(Segment(SHARED, a("cuda_init_s") + upload + capture + first_call))
    segments.append(Segment(EXCLUSIVE, exclusive_s(latency)))
    if first and not e.is_reference:
        segments += [Segment("cpu", build, cpu), Segment(SHARED, upload + a("first_call_s") + reference)]
    segments.append(Segment("exit", a("exit_s")))
    return CellEstimate(latency, f.macs, f.source, tuple(segments))


def selfcheck_s() -> float:
    """The self-check's process: its start, then 3 models x rounds x 3 timers x the budget."""
    args = dict(zip(window.SELFCHECK_ARGS[::2], window.SELFCHECK_ARGS[1::2], strict=True))
    models = len(window.SELFCHECK_MODELS.split(","))
    return a("selfcheck_start_s") + models * int(args["--rounds"]) * 3 * float(args["--budget"])


@dataclass(frozen=True)
class Planned:
    """A job and the cell it measures (None for the calibration, self-check and structure check), with its
    estimate; `payload`: what a structure check checks ({model: committed digests})."""

    job: Job
    cell: window.Cell | None
    estimate: CellEstimate | None
    payload: dict | None = None


def structure_jobs(
    wanted: dict[str, list], facts: StructureFacts, first_id: int, chunks: int = 8
) -> list[Planned]:
    """The check of this machine's build of each model against its committed structure records
    (bench.window_structure), in `chunks` CPU-only processes of about equal build time."""
    cost = {m: a("build_s") + a("build_s_per_param") * facts.params(m) for m in wanted}
    groups: list[list[str]] = [[] for _ in range(min(chunks, len(wanted)))]
    for model in sorted(wanted, key=cost.get, reverse=True):  # longest first, each to the lightest group
        min(groups, key=lambda g: sum(cost[m] for m in g)).append(model)
    out = []
    for i, group in enumerate(g for g in groups if g):
        seconds = a("worker_start_s") + sum(cost[m] for m in group)
        job = Job(
            first_id + i,
            f"structure check {i + 1}",
            "structure",
            (0, 2, i),
            (Segment("cpu", seconds, WEIGHT["cpu"]),),
        )
        out.append(Planned(job, None, None, {m: wanted[m] for m in group}))
    return out


def plan_jobs(
    cells: list[window.WindowCell],
    facts: StructureFacts,
    gpu: window.GpuSpec,
    selfcheck: bool = True,
    interference: list[window.WindowCell] = (),
    structures: dict[str, list] | None = None,
    rounds: int = window.WINDOW_ROUNDS.min_rounds,
    calibration: bool = True,
) -> list[Planned]:
    """The window's jobs in plan order: calibration, self-check, the structure check of `structures`
    ({model: committed digests}, bench.window_structure.candidates), every cell's first process, every
    cell's second process (each needing the first), then the interference check's processes (alone)."""
    out = []
    if calibration:
        segs = (Segment(EXCLUSIVE, a("calibration_s")),)
        out.append(Planned(Job(0, "calibration", "calibration", (0, 0), segs, None), None, None))
    if selfcheck:
        segs = (Segment(EXCLUSIVE, selfcheck_s()),)
        job = Job(len(out), "selfcheck", "selfcheck", (0, 1), segs, None, after_shared=True)
        out.append(Planned(job, None, None))
    if structures:
        out += structure_jobs(structures, facts, len(out))
    first_of: dict[tuple, int] = {}
    for r in range(1, rounds + 1):
        for index, wc in spread_heavy(cells):
            est = cell_segments(wc.cell, facts, gpu, first=r == 1)
            job = Job(
                id=len(out),
                label=f"{window.short_label(wc.cell)} #{r}",
                phase=wc.phase,
                order=(r, index),
                segments=est.segments,
                pool="compile" if wc.cell.execution.backend == "compile" else "cells",
                needs=first_of.get(wc.cell.key),
                heavy=window.is_heavy(wc.cell),
                cell_key=wc.cell.key,
                round=r,
            )
            first_of.setdefault(wc.cell.key, job.id)
            out.append(Planned(job, wc.cell, est))
    for index, wc in enumerate(interference):
        est = cell_segments(wc.cell, facts, gpu, first=False)
        label = f"{window.short_label(wc.cell)} alone"
        job = Job(len(out), label, "interference", (rounds + 1, index), est.segments, alone=True, round=0)
        out.append(Planned(job, wc.cell, est))
    return out


def spread_heavy(cells: list[window.WindowCell]) -> list[tuple[int, window.WindowCell]]:
    """(plan index, cell) in start order: the plan order with the heavy cells (few of whose processes may
    live at once) spread evenly through it instead of last, so that they do not end the window alone."""
    indexed = list(enumerate(cells))
    heavy = [(i, c) for i, c in indexed if window.is_heavy(c.cell)]
    light = [(i, c) for i, c in indexed if not window.is_heavy(c.cell)]
    if not heavy or not light:
        return indexed
    step = len(indexed) / len(heavy)
    slots = {int(k * step + step / 2) for k in range(len(heavy))}
    heavy_left, light_left = iter(heavy), iter(light)
    return [next(heavy_left) if position in slots else next(light_left) for position in range(len(indexed))]


def hard_end(deadline_s: float) -> float:
    """When the last turn must have ended: the deadline less the time kept for writing the files."""
    return deadline_s - window.PACK_RESERVE_S - window.FINISH_RESERVE_S


def simulate_window(planned: list[Planned], deadline_s: float, config: Config = CONFIG) -> Simulation:
    return simulate([p.job for p in planned], config, a("startup_s"), hard_end(deadline_s))


def scaled(planned: list[Planned], factor: float) -> list[Planned]:
    """The same jobs with every segment but the exclusive turns `factor` times as long (what if the
    assumed fixed costs are off)."""

    def scale(job: Job) -> Job:
        segs = tuple(
            s if s.kind == EXCLUSIVE else replace(s, seconds=s.seconds * factor) for s in job.segments
        )
        return replace(job, segments=segs)

    return [replace(p, job=scale(p.job)) for p in planned]


# ----------------------------------------------------------------------------------------------- text


def _cell_rows(planned: list[Planned], sim: Simulation) -> list[str]:
    rows = {}
    for p in planned:
        if p.cell is None or p.job.phase not in window.CELL_PHASES:
            continue
        row = rows.setdefault(p.cell.key, {"p": p, "timed": [], "fit": True, "cpu": 0.0})
        trace = sim.traces[p.job.id]
        row["timed"].append(trace.timed[0] if trace.timed else None)
        row["fit"] &= trace.outcome == "ok"
        row["cpu"] += sum(s.seconds for s in p.job.segments if s.kind != EXCLUSIVE)
    lines = [
        f"{'phase':<11} {'cell':<44} {'GMACs':>8} {'est ms':>7} {'timed s':>7} {'cpu s':>6} "
        f"{'timed at s':>13}  in window"
    ]
    for row in sorted(rows.values(), key=lambda r: r["p"].job.order):
        p, est = row["p"], row["p"].estimate
        at = "/".join(f"{t:.0f}" if t is not None else "-" for t in row["timed"])
        fits = "yes" if row["fit"] else "no: skipped for time"
        gmacs = est.macs / 1e9 if est.macs is not None else float("nan")
        lines.append(
            f"{p.job.phase:<11} {window.short_label(p.cell):<44} {gmacs:8.1f} {est.latency_ms:7.2f} "
            f"{p.job.exclusive_s:7.2f} {row['cpu']:6.1f} {at:>13}  {fits}"
        )
    return lines


def _usage(sim: Simulation) -> dict[str, float]:
    out = {"exclusive": 0.0, "shared": 0.0, "idle": 0.0}
    for begin, end, _, state in sim.usage:
        out[state] += end - begin
    return out


def format_plan(
    planned: list[Planned],
    deadline_s: float,
    gpu: window.GpuSpec,
    measured_before: int = 0,
    missing: list[str] = (),
    config: Config = CONFIG,
) -> str:
    """The plan: how the window runs, every cell with its estimate and when the simulation times it, the
    phases, the totals, what happens if the assumptions are off, and every assumption with its source."""
    sim = simulate_window(planned, deadline_s, config)
    end = hard_end(deadline_s)
    slots = ", ".join(f"{n} {pool}" for pool, n in config.slots.items())
    policy = window.WINDOW_TIMING
    lines = [
        f"GPU window plan for {gpu.name}: deadline {deadline_s:g} s from the start of gpu/run.sh; the last "
        f"GPU turn ends by {end:g} s ({window.FINISH_RESERVE_S:g} s for the records, "
        f"{window.PACK_RESERVE_S:g} s for the manifest and packing)",
        "datasheet peaks (dense): "
        + ", ".join(f"{k} {v:g}" for k, v in gpu.tflops.items())
        + f" TFLOP/s, {gpu.gbps:g} GB/s; source: {gpu.source}",
        f"how it runs: every cell in {window.WINDOW_ROUNDS.min_rounds} fresh worker processes (all first "
        f"processes before any second); processes alive at once: {slots}, at most {config.heavy} heavy "
        f"({', '.join(window.HEAVY_GROUPS)}); one process timed at a time with nothing else on the GPU, on "
        f"CPUs of its own; the others' CPU work on {config.cores:g} cores; shared GPU work batched in "
        f"periods that close once {config.batch} processes are ready to be timed "
        f"(or after {config.max_shared_s:g} s)",
        f"timing per process: warm-up >= {policy.warmup_iters} calls and {policy.warmup_s:g} s until stable "
        f"(<= {policy.warmup_max_s:g} s), then >= {policy.min_samples} samples and {policy.min_time_s:g} s "
        f"until the median's 95% interval is within {policy.ci_target_rel:.0%} (<= {policy.max_time_s:g} s), "
        "the calibration workload before and after",
        "",
        *_cell_rows(planned, sim),
        "",
        f"{'phase':<13} {'processes':>9} {'timed s':>8} {'cpu s':>8} {'first start':>11} {'last end':>9}",
    ]
    for phase in ("calibration", "selfcheck", "structure", *window.CELL_PHASES, "interference"):
        mine = [p for p in planned if p.job.phase == phase]
        if not mine:
            continue
        traces = [sim.traces[p.job.id] for p in mine]
        starts = [t.start for t in traces if t.start is not None]
        ends = [t.end for t in traces if t.end is not None]
        cpu = sum(s.seconds for p in mine for s in p.job.segments if s.kind != EXCLUSIVE)
        lines.append(
            f"{phase:<13} {len(mine):>9} {sum(p.job.exclusive_s for p in mine):8.1f} {cpu:8.0f} "
            f"{min(starts, default=float('nan')):11.0f} {max(ends, default=float('nan')):9.0f}"
        )
    cells = {p.cell.key for p in planned if p.cell is not None and p.job.phase in window.CELL_PHASES}
    cut = {
        p.cell.key
        for p in planned
        if p.cell is not None and p.job.phase in window.CELL_PHASES and sim.traces[p.job.id].outcome != "ok"
    }
    use = _usage(sim)
    lines += [
        "",
        f"whole list: {len(cells)} cells in {sum(1 for p in planned if p.job.phase in window.CELL_PHASES)} "
        f"processes; by the simulated schedule the window ends at {sim.end:.0f} s of {deadline_s:g} "
        f"({end - sim.end:.0f} s to spare before the last turn's limit)"
        + (f"; {len(cut)} cells not fully measured in time" if cut else "; every cell fits"),
        f"GPU: {use['exclusive']:.0f} s timing (exclusive), {use['shared']:.0f} s shared set-up periods, "
        f"{use['idle']:.0f} s idle; CPU: {sim.cpu_s:.0f} core-seconds on {config.cores:g} cores; "
        f"{sim.shared_periods} shared periods",
    ]
    if measured_before:
        lines.append(f"{measured_before} cells left out as measured before on this GPU (--skip-measured)")
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        lines.append(
            f"no committed structure record for {len(missing)} cells (their records will lack params and "
            f"MACs; count them with `segbench structure`): {shown}"
        )
    for factor in (1.5, 2.0):
        other = simulate([p.job for p in scaled(planned, factor)], config, a("startup_s") * factor, end)
        short = {
            p.cell.key
            for p in planned
            if p.cell is not None
            and p.job.phase in window.CELL_PHASES
            and other.traces[p.job.id].outcome != "ok"
        }
        lines.append(
            f"if every step but the timed ones took {factor:g}x its estimate: the window ends at "
            f"{other.end:.0f} s, "
            + (f"{len(short)} cells not fully measured" if short else "every cell fits")
        )
    lines += [
        "",
        "assumptions (bench.window_plan.ASSUMED; a window's manifest has each estimate beside what it "
        "took, so the first window replaces them):",
    ]
    lines += [f"  {name:<20} {value:<10g} {source}" for name, (value, source) in ASSUMED.items()]
    return "\n".join(lines)
