"""The sweep: the only loop over cells. Each cell is measured in several fresh worker processes
(bench.isolation), so a crash, an out-of-memory kill or a hang costs one record, never the sweep, and the
spread between processes is measured rather than hidden. Every outcome, failures included, is a record.

Rounds, asv's way: every cell gets `min_rounds` worker processes, one per round, and each round goes over
all the sweep's cells before the next starts, so a drift of the machine during the sweep falls on every
model as between-process spread instead of shifting one. Then each cell's repeat interval is computed
(bench.measure.stats.across_processes, with the between-process spread pooled over the sweep). A cell
within its target is done ("ci_target"); the others get another process per round up to `max_rounds`
("rounds"), while the sweep's wall time stays within its budget ("sweep_budget" for a cell whose next process
did not fit). The time converged cells do not take goes to those that need it.

Nothing measured is lost. Each process's result is appended to the sweep's rounds journal
(bench.store.sidecar(out, "rounds")) as it arrives, and a cell's record to `out` once the cell is done, with
SIGINT/SIGTERM/SIGHUP held off during each write; `--resume` continues from both (journal entries made
under another commit, machine or policy are not reused). The journal is removed once every cell has its
record. Each invocation's summary (wall time, time in timed forwards, sweep efficiency, stop rules) is
added to sidecar(out, "run.json").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from bench.combine import combine, make_record
from bench.conditions import Execution
from bench.errors import UsageError
from bench.isolation import Outcome, run_job
from bench.measure.latency import TimingPolicy
from bench.measure.stats import pool_between
from bench.records import BenchRecord, StructureRecord, from_dict, latest_per_cell
from bench.spec import Cell, RoundsPolicy
from bench.store import append_json, append_record, read_json_lines, read_records, sidecar, write_json

_INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C: completed cells are saved and the run can be resumed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM and SIGHUP (a scheduler's or `kill`'s) raise `Interrupted` as Ctrl-C raises
    KeyboardInterrupt, so the sweep stops the same clean way: its workers killed, its records kept."""
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _uninterrupted():
    """Hold off SIGINT, SIGTERM and SIGHUP while a line is written; they are delivered right after it."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def calibrate(device: str, precisions: tuple[str, ...], threads: int | None, timeout_s: float) -> dict:
    """This run's calibration, in a worker like a cell: the fixed reference workload's latency (which
    `segbench compare` normalises by) and the device's measured compute and bandwidth peaks (the roofline's
    ceiling). A failure is recorded in place of the numbers; it never stops the sweep."""
    outcome = run_job("calibrate", (device, precisions, threads), timeout_s)
    return outcome.fields if outcome.status == "ok" else {"error": f"{outcome.status}: {outcome.error}"}


# ------------------------------------------------------------------------------------------------- sweep


@dataclass
class CellRun:
    """A cell's processes so far (the ok ones' fields, in order) and whether its record is written."""

    cell: Cell
    processes: list[dict] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    done: bool = False
    out_of_budget: bool = False


@dataclass
class SweepSummary:
    """What one invocation of a sweep did; `efficiency` = time in timed forwards / wall time."""

    counts: Counter = field(default_factory=Counter)  # records by status, plus "skipped" (already done)
    stops: Counter = field(default_factory=Counter)  # ok cells by the rule that stopped them
    processes: int = 0
    reused_processes: int = 0  # from the journal of an interrupted invocation
    timed_s: float = 0.0
    wall_s: float = 0.0
    # Where the rest of the wall time went, summed over this invocation's worker processes: each process's
    # set-up (start, build, first forward, the calibration before sampling), of which its first forward,
    # and its warm-up after the first forward.
    setup_s: float = 0.0
    first_call_s: float = 0.0
    warmup_s: float = 0.0
    structures_counted: int = 0
    structure_s: float = 0.0
    interrupted: bool = False

    @property
    def efficiency(self) -> float | None:
        return self.timed_s / self.wall_s if self.wall_s > 0 else None

    def line(self) -> str:
        """One line for the end of the sweep."""
        if not self.processes:
            return "no worker processes ran"
        text = (
            f"sweep efficiency {self.efficiency:.0%} ({self.timed_s:.0f} s of {self.wall_s:.0f} s wall in "
            f"timed forwards, {self.processes} worker processes)"
        )
        other = self.wall_s - self.timed_s - self.setup_s - self.warmup_s - self.structure_s
        text += (
            f"; untimed: set-up {self.setup_s:.0f} s ({self.first_call_s:.0f} s of it first forwards), "
            f"warm-up {self.warmup_s:.0f} s, other {max(other, 0.0):.0f} s"
        )
        if self.structures_counted:
            rest = self.timed_s / max(self.wall_s - self.structure_s, 1e-9)
            text += (
                f"; {self.structures_counted} structures counted in {self.structure_s:.0f} s, once for later "
                f"runs ({rest:.0%} without them)"
            )
        stops = ", ".join(f"{n} {reason}" for reason, n in sorted(self.stops.items()))
        return text + (f"; cells stopped by: {stops}" if stops else "")

    def as_dict(self) -> dict:
        return {
            "counts": dict(self.counts),
            "stop_reasons": dict(self.stops),
            "processes": self.processes,
            "reused_processes": self.reused_processes,
            "timed_s": round(self.timed_s, 3),
            "wall_s": round(self.wall_s, 3),
            "efficiency": self.efficiency,
            "setup_s": round(self.setup_s, 3),
            "first_call_s": round(self.first_call_s, 3),
            "warmup_s": round(self.warmup_s, 3),
            "structures_counted": self.structures_counted,
            "structure_s": round(self.structure_s, 3),
            "interrupted": self.interrupted,
        }


def finished_cells(records: list, retry_failed: bool = False) -> set[tuple]:
    """Keys of the cells that need no more measuring: every recorded one, or with `retry_failed` those
    whose newest record is ok."""
    if not retry_failed:
        return {r.key for r in records}
    return {r.key for r in latest_per_cell(records) if isinstance(r, BenchRecord) and r.ok}


def _journal_context(env: dict, policy: TimingPolicy, threads: int | None) -> dict:
    """What a journal entry must share with this invocation to be reused by it."""
    keys = ("machine", "git_commit", "git_dirty", "torch")
    return {**{k: env.get(k) for k in keys}, "timing_policy": policy.as_dict(), "threads": threads}


def _restore(journal: Path, runs: dict[tuple, CellRun], context: dict) -> int:
    """Reuse the journal's processes of unfinished cells (in order, same context); return how many."""
    reused = 0
    for entry in read_json_lines(journal):
        try:
            cell = Cell(entry["model"], Execution.from_fields(entry["cell"]))
            run = runs.get(cell.key)
            usable = run and entry["context"] == context and entry["process"] == len(run.processes) + 1
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{journal}: not a rounds journal entry") from None
        if usable:
            run.processes.append(entry["fields"])
            run.walls.append(entry["wall_s"])
            reused += 1
    return reused


def run_sweep(
    cells: list[Cell],
    out: Path,
    env: dict,
    policy: TimingPolicy,
    timeout_s: float,
    threads: int | None = None,
    resume: bool = False,
    plugins: tuple[str, ...] = (),
    progress: bool = True,
    shard: str | None = None,
    rounds: RoundsPolicy | None = None,
    structures=None,
    retry_failed: bool = False,
    started: float | None = None,
    about: dict | None = None,
    job: Callable[..., Outcome] = run_job,
    clock: Callable[[], float] = time.monotonic,
) -> SweepSummary:
    """Measure every cell (with `resume`, those not yet in `out`; with `retry_failed` also those whose newest
    record failed), appending one record per cell, in rounds (see the module docstring).

    `structures`: a bench.structure.StructureStore for params and MACs (None: records without them).
    `started`: clock() when the run began (its calibration included in the wall time); `about`: what to say
    of the run in its summary file (profile, device). `job` and `clock` are the worker launcher and the clock
    (replaced in tests)."""
    rounds = rounds or RoundsPolicy()
    started = clock() if started is None else started
    previous = read_records(out) if (resume or retry_failed) and out.exists() else []
    done = finished_cells(previous, retry_failed)
    runs = {c.key: CellRun(c) for c in cells if c.key not in done}
    summary = SweepSummary(counts=Counter(skipped=len(cells) - len(runs)))
    journal, context = sidecar(out, "rounds"), _journal_context(env, policy, threads)
    if journal.exists():
        if resume or retry_failed:
            summary.reused_processes = _restore(journal, runs, context)
        else:
            journal.unlink()
    todo = list(runs.values())
    bar = tqdm(
        total=sum(max(0, rounds.min_rounds - len(r.processes)) for r in todo),
        unit="process",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )

    def pooled() -> tuple[float, int]:
        return pool_between([[p["latency_ms"] for p in r.processes] for r in todo])

    def finish(run: CellRun, outcome: Outcome, structure=None) -> None:
        record = make_record(run.cell, outcome, env, sum(run.walls), shard, structure)
        with _uninterrupted():
            append_record(out, record)
        run.done = True
        summary.counts[record.status] += 1
        if record.latency is not None:
            summary.stops[record.latency.stop_reason] += 1

    def judge(run: CellRun, last: bool) -> None:
        """Write the cell's record if its interval is within target, or if it had its last process."""
        fields = combine(run.cell, run.processes, pooled(), policy, rounds)
        met = fields["latency_ms"]["target_met"]
        if met or last:
            fields["latency_ms"]["stop_reason"] = "ci_target" if met else "rounds"
            finish(run, Outcome("ok", None, fields), structure_of(run))

    def structure_of(run: CellRun) -> StructureRecord | None:
        digest = run.processes[0].get("structure_digest")
        if structures is None or digest is None:
            return None
        execution = run.cell.execution
        return structures.find(run.cell.model, digest, execution.input_hw, execution.batch)

    def measure(run: CellRun) -> bool:
        """One more worker process for the cell; False if it failed (then the cell's record is written)."""
        execution = run.cell.execution
        first = not run.processes
        known = (
            structures.known_digests(run.cell.model, execution.input_hw, execution.batch)
            if first and structures is not None
            else None
        )
        bar.set_postfix_str(f"{run.cell} #{len(run.processes) + 1}")
        begin = clock()
        args = (run.cell, policy, threads, time.monotonic(), first, known)
        outcome = job("measure_cell", args, timeout_s, plugins)
        wall = clock() - begin
        summary.processes += 1
        bar.update(1)
        if outcome.status != "ok":
            run.walls.append(wall)
            error = outcome.error if first else f"{outcome.error} (in process {len(run.processes) + 1})"
            finish(run, Outcome(outcome.status, error, {}))
            bar.write(f"{run.cell}: {outcome.status}: {error}", file=sys.stderr)
            return False
        fields = dict(outcome.fields)
        counted = fields.pop("structure", None)
        if counted is not None and structures is not None:
            structures.add(from_dict(counted))
            summary.structures_counted += 1
            summary.structure_s += fields["process"].get("structure_s") or 0.0
        summary.timed_s += sum(fields["latency_samples_ms"]) / 1000.0
        process = fields["process"]
        summary.setup_s += process.get("setup_s") or 0.0
        summary.first_call_s += (process.get("first_call_ms") or 0.0) / 1000.0
        summary.warmup_s += process.get("warmup_s") or 0.0
        run.processes.append(fields)
        run.walls.append(wall)
        entry = {"model": run.cell.model, "cell": execution.to_fields(), "process": len(run.processes)}
        with _uninterrupted():
            append_json(journal, {**entry, "context": context, "fields": fields, "wall_s": wall})
        return True

    try:
        with bar:
            for r in range(rounds.min_rounds):
                for run in todo:
                    if not run.done and len(run.processes) <= r:
                        measure(run)
            for run in todo:
                if not run.done:
                    judge(run, last=len(run.processes) >= rounds.max_rounds)
            for r in range(rounds.min_rounds, rounds.max_rounds):
                for run in todo:
                    if run.done or run.out_of_budget or len(run.processes) > r:
                        continue
                    estimate = statistics.fmean(run.walls)
                    if rounds.budget_s is not None and clock() - started + estimate > rounds.budget_s:
                        run.out_of_budget = True
                        continue
                    bar.total += 1
                    if measure(run):
                        judge(run, last=len(run.processes) >= rounds.max_rounds)
            for run in todo:
                if not run.done:  # over budget before its interval met the target
                    fields = combine(run.cell, run.processes, pooled(), policy, rounds)
                    fields["latency_ms"]["stop_reason"] = "sweep_budget"
                    finish(run, Outcome("ok", None, fields), structure_of(run))
        journal.unlink(missing_ok=True)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        summary.wall_s = clock() - started
        _add_run_summary(out, summary, env, policy, rounds, about)
    return summary


def _add_run_summary(
    out: Path,
    summary: SweepSummary,
    env: dict,
    policy: TimingPolicy,
    rounds: RoundsPolicy,
    about: dict | None,
) -> None:
    """Add this invocation's summary to the sweep's run file (one entry per invocation)."""
    path = sidecar(out, "run.json")
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))["runs"] if path.exists() else []
    except (OSError, ValueError, KeyError, TypeError):
        runs = []  # a damaged summary file is replaced, never a reason to lose the sweep's end
    entry = {
        **(about or {}),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "env": {k: env.get(k) for k in ("machine", "git_commit", "git_dirty", "timestamp")},
        **summary.as_dict(),
        "timing_policy": policy.as_dict(),
        "rounds_policy": rounds.as_dict(),
    }
    with _uninterrupted(), contextlib.suppress(OSError):
        write_json(path, {"results": out.name, "runs": [*runs, entry]})
