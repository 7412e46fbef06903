"""History you can act on: each cell's records across commits, judged by `segbench compare`'s rules.

A cell's history is its bench records on one machine, oldest first (by `env.timestamp`, ties in file order).
Each record after the first is compared with the one before it exactly as `segbench compare PREVIOUS NEW`
would compare the two (`bench.compare.compare_entries`, with the command's default threshold and tolerance):
a latency verdict ("regression" when the median grew past the threshold and the two 95% intervals are
disjoint, "improved", "within noise", "ok", "machine slower", ...), and the structural changes (params,
params_total, MACs, output shape; a cell that stopped working), each of which compare flags.

`latest_comparisons`: per machine, its newest run (results file) against the newest earlier run sharing a
cell with it, i.e. what `segbench compare EARLIER NEWEST` says about that machine's records.

Pure functions of typed records (bench.records), no torch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import pandas as pd

from bench.compare import Comparison, compare_entries, entry_from_record, shown_rows
from bench.records import BenchRecord, EvalRecord, Record

STRUCTURAL = ("params", "params_total", "macs", "output_shape", "status")
# Verdicts of compare's latency rule a person acts on, and how the history plot marks them.
MARKED = {"regression": "slower", "improved": "faster"}


@dataclass(frozen=True)
class Step:
    """One record in its cell's history, judged against the record before it."""

    record: BenchRecord
    verdict: str = ""  # compare's latency verdict against the previous record ("" when not compared)
    change: float | None = None  # relative change of the median against the previous record
    structural: tuple[str, ...] = ()  # what changed in structure, e.g. "macs 1,000 → 1,300 (+30.00%)"
    flagged: bool = False  # `segbench compare` would exit 1 on this step

    interval: tuple[float, float] | None = None  # the median's 95% interval as compare uses it

    @property
    def median(self) -> float | None:
        return self.record.latency.median if self.record.latency else None


def cell_label(record: BenchRecord) -> str:
    """'cpu-amd-epyc-2c · 360x480 b1 cpu/fp32': the machine and the cell's conditions."""
    return f"{record.machine} · {record.execution.label()}"


def histories(records: list[Record]) -> dict[tuple, list[Step]]:
    """(machine, cell key) -> the cell's steps, oldest first; cells in order of (machine, key label)."""
    cells: dict[tuple, list[BenchRecord]] = defaultdict(list)
    for record in records:
        if isinstance(record, BenchRecord):
            cells[(record.machine, record.key)].append(record)
    out = {}
    for key in sorted(cells, key=lambda k: (str(k[0]), repr(k[1]))):
        ordered = sorted(cells[key], key=lambda r: r.timestamp)  # stable: ties stay in file order
        entries = [entry_from_record(r) for r in ordered]
        steps = [Step(ordered[0], interval=_interval(entries[0]))]
        for i in range(1, len(ordered)):
            step = _judge(ordered[i], compare_entries([entries[i - 1]], [entries[i]]))
            steps.append(replace(step, interval=_interval(entries[i])))
        out[key] = steps
    return out


def _interval(entry) -> tuple[float, float] | None:
    """The interval compare uses: the record's `ci95`, or the order-statistic one of its samples."""
    return tuple(entry.latency["ci95"]) if entry.latency else None


def _judge(record: BenchRecord, comparison: Comparison) -> Step:
    verdict, change, structural = "", None, []
    for row in comparison.rows:
        if row.latency:
            verdict = row.verdict
            change = _relative(row.change)
        elif row.metric in STRUCTURAL:
            structural.append(
                f"{row.metric} {row.base} → {row.new}" + (f" ({row.change})" if row.change else "")
            )
    return Step(record, verdict, change, tuple(structural), bool(comparison.regressions()))


def _relative(text: str) -> float | None:
    """compare's change text ('+12.3% (normalised +1.0%)') as a fraction."""
    head = text.split(" ")[0].rstrip("%")
    try:
        return float(head) / 100
    except ValueError:
        return None


def frame(steps: list[Step]) -> pd.DataFrame:
    """One row per step: the cell, when and what was measured, and what compare says of the change."""
    rows, labels = [], {}
    for step in steps:
        r, latency = step.record, step.record.latency
        if r.execution not in labels:  # the steps of a cell share one label
            labels[r.execution] = r.execution.label()
        rows.append(
            {
                "machine": r.machine,
                "cell": labels[r.execution],
                "timestamp": r.timestamp,
                "commit": r.env.commit_label,
                "status": r.status,
                "error": r.error or "",
                "latency_p50_ms": latency.median if latency else None,
                "ci95_low_ms": step.interval[0] if step.interval else None,
                "ci95_high_ms": step.interval[1] if step.interval else None,
                "interval": "{:.4g} – {:.4g}".format(*step.interval) if step.interval else "",
                "latency_n": latency.n if latency else None,
                "change_pct": step.change * 100 if step.change is not None else None,
                "compare_verdict": step.verdict,
                "structural_changes": "; ".join(step.structural),
                "flagged": step.flagged,
                "params_m": r.params / 1e6 if r.params is not None else None,
                "gmacs": r.macs / 1e9 if r.macs is not None else None,
                "peak_mem_mb": r.peak_mem_mb,
                "source_file": r.source,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------- latest comparison


@dataclass(frozen=True)
class RunComparison:
    """What `segbench compare BASE NEW` says of one machine's newest run against its previous one."""

    machine: str
    kind: str  # "bench" (sweeps) or "eval"
    base: str  # results file
    new: str
    base_commit: str
    new_commit: str
    base_time: str
    new_time: str
    comparison: Comparison


def latest_comparisons(records: list[Record]) -> list[RunComparison]:
    """Per machine and kind of record, the newest run against the newest earlier run that shares a cell."""
    runs: dict[tuple, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if isinstance(record, (BenchRecord, EvalRecord)):
            runs[(str(record.machine), record.kind)][record.source].append(record)
    out = []
    for (machine, kind), files in sorted(runs.items()):
        ordered = sorted(files, key=lambda f: (max(r.timestamp for r in files[f]), f))
        newest = files[ordered[-1]]
        keys = {r.key for r in newest}
        base = next((f for f in reversed(ordered[:-1]) if keys & {r.key for r in files[f]}), None)
        if base is None:
            continue
        comparison = compare_entries(
            [entry_from_record(r) for r in files[base]], [entry_from_record(r) for r in newest]
        )
        first, last = files[base][0], newest[0]
        out.append(
            RunComparison(
                machine, kind, base, ordered[-1], first.env.commit_label, last.env.commit_label,
                max(r.timestamp for r in files[base]), max(r.timestamp for r in newest), comparison,
            )
        )  # fmt: skip
    return out


ORDER = ("regression", "improved", "machine slower", "machine faster", "normalised slower",
         "normalised faster", "calibration disagrees", "new", "removed", "not comparable")  # fmt: skip


def verdict_frame(run: RunComparison) -> pd.DataFrame:
    """compare's rows for one run comparison, the ones to act on first (regressions, then improvements)."""
    rows = [
        {
            "machine": run.machine,
            "item": row.item,
            "metric": row.metric,
            "base": row.base,
            "new": row.new,
            "change": row.change,
            "verdict": row.verdict,
            "regression": row.regression,
        }
        for row in shown_rows(run.comparison)
    ]
    table = pd.DataFrame(rows, columns=["machine", "item", "metric", "base", "new", "change", "verdict",
                                        "regression"])  # fmt: skip
    rank = {v: i for i, v in enumerate(ORDER)}
    table["_rank"] = [rank.get(v, len(ORDER)) for v in table["verdict"]]
    return (
        table.sort_values(["_rank", "item", "metric"], kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )
