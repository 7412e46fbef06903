"""A cell's record from its worker processes' results (bench.worker.measure_cell's fields), or from the
outcome of the process that failed: what bench.run writes once a cell is done.

Latency is combined across processes (bench.measure.stats.across_processes); samples, peak memory and the
calibration beside each process are pooled; structure (params, both MAC counters, output shape) comes from
the model's structure record (bench.structure), counted once per model, input size and batch.
"""

from __future__ import annotations

import statistics

import zoo
from bench.isolation import Outcome
from bench.measure.latency import TimingPolicy
from bench.measure.stats import across_processes, summarize
from bench.records import BenchRecord, Env, Latency, StructureRecord
from bench.spec import Cell, RoundsPolicy

# Structure fields a bench record carries, taken from the model's structure record (bench.structure).
STRUCTURE_FIELDS = (
    "params",
    "params_total",
    "macs",
    "macs_counter",
    "macs_unsupported_ops",
    "macs_flop_counter",
    "flop_counter_uncounted_ops",
    "macs_coverage",
    "macs_disagree",
    "macs_error",
)
_POOLED = ("p10", "p90", "p99", "mean", "std", "min", "max", "n")


def roofline_of(fields: dict, latency: dict | None, cell: Cell, calibration: dict) -> dict | None:
    """Achieved TFLOP/s of the cell against this run's measured peak for its precision (None without one)."""
    from bench.measure.roofline import roofline

    peaks = calibration.get("peaks")
    if not peaks or fields.get("macs") is None or not latency:
        return None
    execution = cell.execution
    return roofline(
        fields["macs"],
        latency["median"],
        execution.batch,
        peaks,
        execution.precision,
        tf32=bool(execution.tf32),
        threads=(fields.get("conditions") or {}).get("threads"),
    )


def structure_fields(record: StructureRecord | None) -> dict:
    """A bench record's structure fields from the model's structure record (None each, without one)."""
    if record is None:
        return dict.fromkeys(STRUCTURE_FIELDS)
    fields = {name: record.get(name) for name in STRUCTURE_FIELDS}
    if not record.ok:
        fields["macs_error"] = f"structure: {record.error}"
    return fields


def _calibration(cell: Cell, processes: list[dict]) -> dict | None:
    """The calibration workload timed beside each of the cell's processes, pooled (bench.compare's)."""
    from bench.measure.calibration import calibration_summary

    samples = [s for p in processes for s in p.get("calibration_samples_ms") or ()]
    if not samples:
        return None
    return calibration_summary(samples, processes[0]["conditions"].get("threads"), cell.execution.device)


def _hardware(processes: list[dict]) -> dict | None:
    """The first process's hardware state, throttling over every process."""
    states = [p["hardware"] for p in processes if p.get("hardware")]
    if not states:
        return None
    reasons = sorted({r for state in states for r in state.get("throttle_reasons") or ()})
    return {**states[0], "throttled": any(s.get("throttled") for s in states), "throttle_reasons": reasons}


def combine(
    cell: Cell, processes: list[dict], pooled: tuple[float, int], policy: TimingPolicy, rounds: RoundsPolicy
) -> dict:
    """One cell's record fields from its worker processes' fields (see bench.worker.measure_cell)."""
    latency = across_processes(
        [p["latency_ms"] for p in processes], pooled, policy.confidence, rounds.target_rel
    )
    samples = [s for p in processes for s in p["latency_samples_ms"]]
    overall = summarize(samples, policy.confidence)
    latency.update({name: overall[name] for name in _POOLED})
    latency["process_stop_reasons"] = [p["latency_ms"]["stop_reason"] for p in processes]
    first = processes[0]
    peaks = [p["peak_mem_mb"] for p in processes]
    return {
        "output_shape": first["output_shape"],
        "latency_ms": latency,
        "latency_samples_ms": samples,
        "fps": cell.execution.batch * 1000.0 / latency["median"],
        "peak_mem_mb": statistics.median(peaks),  # the processes' median; each one's in memory
        "peak_mem_method": first["peak_mem_method"],
        "memory": {**(first["memory"] or {}), "peak_mb_per_process": peaks},
        "hardware": _hardware(processes),
        "compile_s": first["compile_s"],
        "calibration": _calibration(cell, processes),
        "agreement": next((p["agreement"] for p in processes if p.get("agreement")), None),
        "conditions": {
            **first["conditions"],
            "processes": [p["process"] for p in processes],
            "rounds_policy": rounds.as_dict(),
        },
        "structure_digest": first.get("structure_digest"),
    }


def make_record(
    cell: Cell,
    outcome: Outcome,
    env: dict,
    wall_s: float,
    shard: str | None = None,
    structure: StructureRecord | None = None,
) -> BenchRecord:
    """The record of a cell: `outcome.fields` are the combined fields (`combine`) of an ok cell, or none."""
    fields = {"params": None, "macs": None, "latency_samples_ms": None, "fps": None, "peak_mem_mb": None}
    fields.update(structure_fields(structure) if outcome.status == "ok" else {})
    fields.update(outcome.fields)
    latency = fields.pop("latency_ms", None)
    if outcome.status == "ok":
        fields["roofline"] = roofline_of(fields, latency, cell, env.get("calibration") or {})
    return BenchRecord(
        model=cell.model,
        status=outcome.status,
        error=outcome.error,
        env=Env.from_dict(env),
        group=zoo.model_group(cell.model),
        execution=cell.execution,
        latency=Latency.from_dict(latency) if latency else None,
        fields={**fields, "wall_s": round(wall_s, 3), "shard": shard},
    )
