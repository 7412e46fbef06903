"""The end of a GPU window: each cell's record from its worker processes, and the manifest's summaries.

A cell's record is built as a sweep builds it (bench.combine, bench.run): its processes' fields combined,
the interval across processes using the between-process spread pooled over every cell of the window, the
stop rule "ci_target" or "rounds" for a cell with all its processes, "sweep_budget" for one the window's
end left with fewer. A cell whose process failed has that failure as its record. Params and MACs come from
the committed structure record the window checked (bench.window_structure), named in `structure_source`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench import window
from bench.combine import combine, make_record
from bench.isolation import Outcome
from bench.measure.stats import pool_between
from bench.records import BenchRecord
from bench.window_structure import for_cell


@dataclass
class CellResult:
    """What a window learned about one cell: its ok processes (in round order) and walls, or a failure."""

    cell: window.Cell
    processes: list[dict] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    failure: Outcome | None = None
    failure_wall: float = 0.0


def cell_records(
    results: dict[tuple, CellResult], env: dict, structures: Path, checked: dict[str, dict]
) -> list[BenchRecord]:
    """One record per cell that ran (see the module docstring), in the order given."""
    done = [r for r in results.values() if r.processes and r.failure is None]
    pooled = pool_between([[p["latency_ms"] for p in r.processes] for r in done])
    records = []
    for result in results.values():
        cell = result.cell
        if result.failure is not None:
            wall = sum(result.walls) + result.failure_wall
            records.append(
                make_record(cell, Outcome(result.failure.status, result.failure.error, {}), env, wall)
            )
            continue
        if not result.processes:
            continue
        fields = combine(cell, result.processes, pooled, window.WINDOW_TIMING, window.WINDOW_ROUNDS)
        latency = fields["latency_ms"]
        if len(result.processes) < window.WINDOW_ROUNDS.min_rounds:
            latency["stop_reason"] = "sweep_budget"
        else:
            latency["stop_reason"] = "ci_target" if latency["target_met"] else "rounds"
        e = cell.execution
        structure, source = for_cell(structures, checked, cell.model, e.input_hw, e.batch)
        fields["structure_source"] = source
        if structure is not None:
            fields["structure_digest"] = structure.digest
        records.append(
            make_record(cell, Outcome("ok", None, fields), env, sum(result.walls), None, structure)
        )
    return records


def interference(alone: dict[tuple, dict], results: dict[tuple, CellResult]) -> list[dict]:
    """The interference check: each re-timed cell's median alone against its processes' medians in the
    window (with other processes building and compiling beside them)."""
    out = []
    for key, fields in alone.items():
        result = results.get(key)
        loaded = [p["latency_ms"]["median"] for p in result.processes] if result else []
        quiet = fields["latency_ms"]["median"]
        out.append(
            {
                "cell": window.short_label(result.cell) if result else str(key),
                "alone_ms": quiet,
                "alone_ci95": fields["latency_ms"]["ci95"],
                "in_window_ms": loaded,
                "ratio": statistics.fmean(loaded) / quiet if loaded and quiet > 0 else None,
            }
        )
    return out


def phase_summary(steps: list[dict]) -> dict:
    """Per phase: processes, outcomes counted, estimated and actual seconds of exclusive GPU turns."""
    out: dict[str, dict] = {}
    for step in steps:
        phase = out.setdefault(
            step["phase"], {"processes": 0, "outcomes": {}, "exclusive_estimate_s": 0.0, "exclusive_s": 0.0}
        )
        phase["processes"] += 1
        phase["outcomes"][step["outcome"]] = phase["outcomes"].get(step["outcome"], 0) + 1
        phase["exclusive_estimate_s"] = round(
            phase["exclusive_estimate_s"] + step["estimate"]["exclusive_s"], 2
        )
        timed = step.get("timed")
        if timed and timed[1] is not None:
            phase["exclusive_s"] = round(phase["exclusive_s"] + timed[1] - timed[0], 2)
    return out
