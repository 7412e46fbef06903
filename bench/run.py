"""The sweep: the only loop over cells. Each cell runs in its own fresh worker process, so a crash, an
out-of-memory kill or a hang costs one record, never the sweep. Every outcome, failures included, is a record
appended to the results file as soon as it exists.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

import zoo
from bench.measure.latency import TimingPolicy
from bench.records import BenchRecord, Env, Latency
from bench.spec import Cell
from bench.store import append_record, read_records

STARTUP_TIMEOUT_S = 300.0  # interpreter start and imports in a worker, before the cell's own time limit


@dataclass(frozen=True)
class Outcome:
    status: str  # one of bench.records.STATUSES
    error: str | None
    fields: dict


def _worker_context():
    """Fresh processes forked from a server that has imported torch and the zoo once.

    Importing them costs about 7 s on a 2-core CPU (timm pulls in torchvision and torch._dynamo), more than
    most quick cells take to measure. The fork server has imported modules and nothing else: no model
    built, no CUDA initialised, no thread pool started, so each cell still starts from the same clean
    state, in a process of its own."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["bench.worker"])
    return ctx


def _worker_main(conn, job: str, args: tuple, plugins: tuple[str, ...]) -> None:
    from bench import worker  # imported here: the fork server pays for torch once, not the parent

    try:
        worker.import_plugins(plugins)
        conn.send("ready")
        conn.send(Outcome("ok", None, getattr(worker, job)(*args)))
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a record
        status = "oom" if worker.is_oom(exc) else "error"
        conn.send(Outcome(status, worker.one_line(exc), {}))
    finally:
        conn.close()


def run_job(job: str, args: tuple, timeout_s: float, plugins: tuple[str, ...] = ()) -> Outcome:
    """Run `bench.worker.<job>(*args)` in a fresh process; `timeout_s` bounds the job, not the start-up."""
    ctx = _worker_context()
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_worker_main, args=(sender, job, args, plugins), daemon=True)
    process.start()
    sender.close()
    try:
        for stage, limit in (("start", STARTUP_TIMEOUT_S), ("measure", timeout_s)):
            if not receiver.poll(limit):
                return Outcome("timeout", f"no result within {limit:g} s ({stage})", {})
            message = receiver.recv()
            if isinstance(message, Outcome):  # after "ready", or instead of it on an early failure
                return message
        raise RuntimeError(f"worker protocol: expected a result, got {message!r}")
    except EOFError:
        process.join(5)
        code = process.exitcode
        hint = " (killed: likely out of memory)" if code == -9 else ""
        return Outcome("crashed", f"worker exited with code {code}{hint}", {})
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receiver.close()


def run_isolated(
    cell: Cell,
    policy: TimingPolicy,
    timeout_s: float,
    threads: int | None = None,
    plugins: tuple[str, ...] = (),
) -> Outcome:
    """Measure `cell` in a fresh process."""
    return run_job("measure_cell", (cell, policy, threads), timeout_s, plugins)


def calibrate(device: str, precisions: tuple[str, ...], threads: int | None, timeout_s: float) -> dict:
    """This run's calibration, in a worker like a cell: the fixed reference workload's latency (which
    `segbench compare` normalises by) and the device's measured compute and bandwidth peaks (the roofline's
    ceiling). A failure is recorded in place of the numbers; it never stops the sweep."""
    outcome = run_job("calibrate", (device, precisions, threads), timeout_s)
    return outcome.fields if outcome.status == "ok" else {"error": f"{outcome.status}: {outcome.error}"}


def make_record(
    cell: Cell, outcome: Outcome, env: dict, wall_s: float, shard: str | None = None
) -> BenchRecord:
    fields = {"params": None, "macs": None, "latency_samples_ms": None, "fps": None, "peak_mem_mb": None}
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
) -> Counter:
    """Measure every cell (with `resume`, those not yet in `out`), appending one record per cell.

    Returns the count of each status, plus `skipped` (already recorded)."""
    done = {r.key for r in read_records(out)} if resume and out.exists() else set()
    todo = [c for c in cells if c.key not in done]
    counts: Counter = Counter(skipped=len(cells) - len(todo))
    with tqdm(todo, unit="cell", disable=not progress, dynamic_ncols=True) as bar:
        for cell in bar:
            bar.set_postfix_str(str(cell))
            start = time.perf_counter()
            outcome = run_isolated(cell, policy, timeout_s, threads, plugins)
            append_record(out, make_record(cell, outcome, env, time.perf_counter() - start, shard))
            counts[outcome.status] += 1
            if outcome.status != "ok":
                bar.write(f"{cell}: {outcome.status}: {outcome.error}")
    return counts
