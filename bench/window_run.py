"""Running a GPU window (`segbench gpu --out DIR`): the plan's jobs (bench.window_plan) as worker processes,
their GPU turns granted by bench.window_sched.Scheduler, every outcome written as it happens.

The folder it writes (at most 8 files, each at most 16 MiB, no deeper than two folders; bench.pack checks):

    DIR/window.log                                     the whole output (written by gpu/run.sh)
    DIR/window.json                                    the manifest: every process's estimate beside what it
                                                       took (start, ready, timed turn, end), its outcome or
                                                       "skipped for time"; the interference check; the plan
    DIR/<machine>/<UTC time>-window-cuda.jsonl         the bench records (segbench report DIR reads them)
    DIR/<machine>/<UTC time>-window-cuda.jsonl.rounds  each process's fields as it ends (removed once the
                                                       records are written)
    DIR/selfcheck/<machine>/timer-agreement-cuda.json  the timer self-check

A global deadline stops the window however a process behaves: an interval timer raises `WindowDeadline` in
the main thread, which kills every process, marks the jobs not done as skipped for time, and still writes the
records (from the processes that ended) and the manifest. Files are written whole (fsync'ed lines, atomic
replace) with that timer held off, so the folder is always consistent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from pathlib import Path

from bench import window, window_plan
from bench.env import REPO_ROOT
from bench.isolation import Job as Process
from bench.isolation import Outcome, start_job, worker_context
from bench.store import (
    Layout,
    append_json,
    append_record,
    exclusive,
    safe_name,
    sidecar,
    write_json,
)
from bench.window_finish import CellResult, cell_records, interference, phase_summary
from bench.window_sched import EXCLUSIVE, SHARED, Config, Scheduler

T0_ENV = "SEGBENCH_WINDOW_T0"  # epoch seconds at which the window started (gpu/run.sh sets it)
MANIFEST = "window.json"
SELFCHECK_NAME = "timer-agreement-cuda"
# A process's time limit, not counting its waits for turns (else 120 s); a compile holds no turn while it
# generates code, at a low priority, so only the window's deadline limits it.
LIMIT_S = {"compile": window.DEADLINE_S, "selfcheck": 90.0, "calibration": 60.0}
TURN_LIMIT_S = 30.0  # an exclusive turn's, beyond its estimate
SHARED_LIMIT_S = 60.0  # a shared turn's: a process hung in it would hold every timed one back


class WindowDeadline(Exception):
    """The window's deadline passed."""


class Clock:
    """Seconds since the window started: since `T0_ENV` when set (so the install counts), else since now."""

    def __init__(self, t0: float | None = None, now: Callable[[], float] = time.time):
        self._now = now
        self.t0 = t0 if t0 is not None else float(os.environ.get(T0_ENV) or now())

    def elapsed(self) -> float:
        return self._now() - self.t0


@contextlib.contextmanager
def hard_deadline(seconds: float):
    """Raise WindowDeadline in the main thread after `seconds` (at once if not positive) unless left."""

    def fire(signum, frame):
        raise WindowDeadline(f"the window's deadline passed ({seconds:.0f} s after the run began)")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def held_off():
    """Hold the deadline's signal while a file is written; it is delivered, if due, right after."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})


@dataclass
class Live:
    """A job whose process runs (or, for the calibration and self-check, waits for its turn to start)."""

    planned: window_plan.Planned
    started: float
    process: Process | None = None
    gate: object | None = None  # the runner's end of the turn pipe
    popen: subprocess.Popen | None = None
    outcome: Outcome | None = None
    holding: str | None = None
    turn_since: float | None = None
    had_turn: bool = False
    asked: float | None = None  # when it asked for the turn it waits for
    waited: float = 0.0  # seconds it waited for turns (not held against its time limit)

    def active_s(self, now: float) -> float:
        """Seconds alive, less those spent waiting for turns."""
        return now - self.started - self.waited - (now - self.asked if self.asked is not None else 0.0)


@dataclass
class Settings:
    """What a window needs besides its jobs: the device its cells and calibration use (tests run on the
    CPU), the self-check's command (None: none), the CPUs, where structure records are, the config."""

    device: str = "cuda"
    selfcheck: list[str] | None = None
    cpus: tuple = ((), ())
    structures: Path = REPO_ROOT / "results"
    config: Config = window_plan.CONFIG
    plugins: tuple[str, ...] = ()


def selfcheck_command(out: Path) -> list[str]:
    script = REPO_ROOT / "benchmarks" / "timer_agreement.py"
    models = ("--models", window.SELFCHECK_MODELS)
    return [
        sys.executable,
        str(script),
        "--device",
        "cuda",
        *models,
        *window.SELFCHECK_ARGS,
        "--out",
        str(out),
    ]


def selfcheck_summary(path: Path, code: int | None) -> dict:
    if code not in (0, 1) or not path.exists():
        return {"status": "error", "error": f"timer_agreement.py exited with {code}"}
    doc = json.loads(path.read_text(encoding="utf-8"))
    ratios = {
        f"{m['model']} {m['input_hw'][0]}x{m['input_hw'][1]}": {k: c["ratio"] for k, c in m["checks"].items()}
        for m in doc["models"]
    }
    return {"status": "pass" if doc["pass"] else "fail", "ratios": ratios, "file": path.name}


class Window:
    """One window's run (see the module docstring): `run()` returns the manifest (also DIR/window.json)."""

    def __init__(
        self,
        out: Path,
        env: dict,
        planned: list[window_plan.Planned],
        deadline_s: float,
        clock: Clock,
        settings: Settings,
        log: Callable[[str], None] = print,
    ):
        self.out, self.env, self.clock, self.settings, self.log = Path(out), env, clock, settings, log
        self.planned = {p.job.id: p for p in planned}
        machine = env.get("machine") or "unknown-gpu"
        layout = Layout(self.out)
        self.records_path = layout.sweep(machine, "window", settings.device)
        self.journal = sidecar(self.records_path, "rounds")
        self.selfcheck_path = layout.selfcheck(machine, SELFCHECK_NAME)
        self.deadline_s = deadline_s
        self.sched = Scheduler([p.job for p in planned], settings.config, window_plan.hard_end(deadline_s))
        self.live: dict[int, Live] = {}
        self.steps = {p.job.id: _step(p) for p in planned}
        self.results: dict[tuple, CellResult] = {}
        for p in sorted(planned, key=lambda p: p.job.order):  # the records in plan order
            if p.cell is not None and p.job.phase in window.CELL_PHASES:
                self.results.setdefault(p.cell.key, CellResult(p.cell))
        self.alone: dict[tuple, dict] = {}
        self.checked: dict[str, dict] = {}
        self.cache_root = Path(tempfile.mkdtemp(prefix="segbench-inductor-"))
        self.manifest = {
            "mode": "gpu_window",
            "deadline_s": deadline_s,
            "hard_end_s": window_plan.hard_end(deadline_s),
            "phases": {name: text for name, text in window.PHASES.items()},
            "timing_policy": window.WINDOW_TIMING.as_dict(),
            "rounds_policy": window.WINDOW_ROUNDS.as_dict(),
            "config": {**vars(settings.config), "timer_cpus": sorted(settings.cpus[0])},
            "assumed": {k: {"value": v, "source": s} for k, (v, s) in window_plan.ASSUMED.items()},
            "env": env,
            "records": self.records_path.relative_to(self.out).as_posix(),
            "selfcheck": None,
            "interference": None,
            "started_s": round(clock.elapsed(), 2),
            "finished_s": None,
            "steps": list(self.steps.values()),
        }

    # ------------------------------------------------------------------------------------------ files

    def save(self) -> None:
        with held_off():
            write_json(self.out / MANIFEST, self.manifest)

    def _journal(self, planned: window_plan.Planned, fields: dict, wall: float) -> None:
        entry = {
            "model": planned.cell.model,
            "cell": planned.cell.execution.to_fields(),
            "label": planned.job.label,
        }
        with held_off():
            append_json(self.journal, {**entry, "round": planned.job.round, "fields": fields, "wall_s": wall})

    # ------------------------------------------------------------------------------------------ jobs

    def _launch(self, job_id: int, now: float) -> None:
        p = self.planned[job_id]
        live = self.live[job_id] = Live(p, now)
        self.steps[job_id]["started_s"] = round(now, 3)
        if p.job.phase in ("calibration", "selfcheck"):
            self.sched.want(job_id, EXCLUSIVE)  # its process starts when it gets the GPU
            return
        if p.job.phase == "structure":
            live.process = start_job(
                "bench.window_turns:check_structures", (p.payload,), self.settings.plugins
            )
            return
        mine, theirs = worker_context().Pipe(duplex=True)
        first = p.job.round == 1
        cache = (
            str(self.cache_root / safe_name(window.short_label(p.cell)))
            if p.cell.execution.backend == "compile"
            else None
        )
        args = (p.cell, window.WINDOW_TIMING, time.monotonic(), first, theirs, self.settings.cpus, cache)
        live.process = start_job("bench.window_turns:measure", args, self.settings.plugins)
        theirs.close()
        live.gate = mine

    def _grant(self, job_id: int, kind: str, now: float) -> None:
        live = self.live[job_id]
        step = self.steps[job_id]
        if kind == "skip":
            self._stop(job_id, "skipped for time")
            return
        live.holding, live.turn_since, live.had_turn = kind, now, True
        if live.asked is not None:
            live.waited, live.asked = live.waited + now - live.asked, None
        if kind == EXCLUSIVE:
            step["timed"] = [round(now, 3), None]
        phase = live.planned.job.phase
        if phase == "calibration":
            live.process = start_job(
                "bench.window_turns:calibrate", (self.settings.device, ("fp32", "fp16"), self.settings.cpus)
            )
        elif phase == "selfcheck":
            self.selfcheck_path.parent.mkdir(parents=True, exist_ok=True)
            timer = self.settings.cpus[0]
            live.popen = subprocess.Popen(
                self.settings.selfcheck,
                start_new_session=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, timer)) if timer else None,
            )
        else:
            live.gate.send(("go",))

    def _message(self, job_id: int, message, now: float) -> None:
        live, step = self.live[job_id], self.steps[job_id]
        if message[0] == "want":
            live.asked = now
            self.sched.want(job_id, message[1])
            if message[1] == EXCLUSIVE:
                step["ready_s"] = round(now, 3)
        elif message[0] == "done":
            if live.holding == EXCLUSIVE:
                step["timed"][1] = round(now, 3)
            live.holding = None
            self.sched.release(job_id, now)

    def _outcome(self, job_id: int, outcome: Outcome, now: float) -> None:
        live, p, step = self.live[job_id], self.planned[job_id], self.steps[job_id]
        live.outcome = outcome
        wall = now - live.started
        step.update(outcome=outcome.status, error=outcome.error)
        if live.holding is None and live.had_turn:
            self.sched.exit_begins(job_id)  # its CUDA context goes away outside a turn: keep the GPU quiet
        if p.job.phase == "calibration":
            self.env["calibration"] = (
                outcome.fields if outcome.status == "ok" else {"error": f"{outcome.status}: {outcome.error}"}
            )
        elif p.job.phase == "structure" and outcome.status == "ok":
            self.checked.update(outcome.fields)
        elif p.job.phase == "interference" and outcome.status == "ok":
            self.alone[p.cell.key] = outcome.fields
        elif p.cell is not None and p.job.phase in window.CELL_PHASES:
            result = self.results[p.cell.key]
            if outcome.status == "ok":
                self._journal(p, outcome.fields, wall)
                result.processes.append(outcome.fields)
                result.walls.append(wall)
            elif outcome.status == "oom" and self._others_on_gpu(job_id) and not p.job.alone:
                self._again_alone(job_id)
            elif result.failure is None:
                result.failure, result.failure_wall = outcome, wall
                self.sched.cancel_cell(p.cell.key, f"not run: {p.job.label} ended {outcome.status}")

    def _others_on_gpu(self, job_id: int) -> bool:
        return any(j != job_id and live.had_turn for j, live in self.live.items())

    def _again_alone(self, job_id: int) -> None:
        p = self.planned[job_id]
        new_id = max(self.planned) + 1
        job = replace(
            p.job, id=new_id, label=f"{p.job.label} again alone (out of memory beside others)", alone=True
        )
        self.planned[new_id] = replace(p, job=job)
        self.steps[new_id] = _step(self.planned[new_id])
        self.manifest["steps"].append(self.steps[new_id])
        self.sched.add(job, replaces=job_id)

    def _stop(self, job_id: int, why: str | Outcome) -> None:
        """Kill the job's process (if any), wait for it to be gone, and end the job: as a failure of its cell
        when `why` is an Outcome (a process past its time limit), else only in the manifest, as `why` says
        (skipped for time, stopped at the deadline: nothing wrong with the cell)."""
        live = self.live[job_id]
        if live.process is not None:
            live.process.close()
        if live.popen is not None and live.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(live.popen.pid, signal.SIGKILL)
            live.popen.wait(5)
        if live.outcome is None and isinstance(why, Outcome):
            self._outcome(job_id, why, self.clock.elapsed())
        elif live.outcome is None:
            live.outcome = Outcome("timeout", why, {})
            self.steps[job_id].update(outcome=why)
        self._end(job_id)

    def _end(self, job_id: int) -> None:
        live = self.live.pop(job_id)
        now = self.clock.elapsed()
        step = self.steps[job_id]
        step["ended_s"] = round(now, 3)
        if step.get("timed") and step["timed"][1] is None:
            step["timed"][1] = round(now, 3)
        if live.gate is not None:
            live.gate.close()
        if live.process is not None:
            live.process.close()
        self.sched.end(job_id, now, step["outcome"])
        timed = step.get("timed")
        took = f", timed {timed[1] - timed[0]:.2f} s" if timed else ""
        status = step["outcome"] + (
            f": {step['error']}" if step.get("error") and step["outcome"] != "ok" else ""
        )
        self.log(f"[{now:6.1f} s] {live.planned.job.label}: {status} ({now - live.started:.1f} s{took})")
        self.save()

    # ------------------------------------------------------------------------------------------ loop

    def _limits(self, now: float) -> None:
        """Stop a process past its time limit: its life's, or its exclusive turn's (a hung forward). A process
        is killed only while no other one is timed (its CUDA context going away is GPU work)."""
        timing = next((j for j, live in self.live.items() if live.holding == EXCLUSIVE), None)
        for job_id, live in list(self.live.items()):
            job = live.planned.job
            if job.phase in ("calibration", "selfcheck"):  # its process lives in its exclusive turn
                over = live.turn_since is not None and now > live.turn_since + LIMIT_S[job.phase]
            else:
                over = live.active_s(now) > LIMIT_S.get(job.phase, 120.0)
                if live.holding == EXCLUSIVE and live.turn_since is not None:
                    over = over or now > live.turn_since + job.exclusive_s + TURN_LIMIT_S
                elif live.holding == SHARED and live.turn_since is not None:
                    over = over or now > live.turn_since + SHARED_LIMIT_S
            if over and (timing is None or timing == job_id):
                error = f"no result within its time limit ({live.active_s(now):.0f} s, not counting waits)"
                self._stop(job_id, Outcome("timeout", error, {}))

    def _poll(self, now: float) -> None:
        """Wait (briefly) for the processes and handle what they sent or whether they ended."""
        waits = {}
        for job_id, live in self.live.items():
            if live.gate is not None:
                waits[live.gate] = (job_id, "gate")
            if live.process is not None:
                key = live.process.receiver if live.outcome is None else live.process.process.sentinel
                waits[key] = (job_id, "result" if live.outcome is None else "gone")
        wake = self.sched.wake_at()
        timeout = 0.05 if any(live.popen is not None for live in self.live.values()) else 0.2
        if wake is not None:
            timeout = max(0.0, min(timeout, wake - now))
        if not waits:
            time.sleep(timeout)
        for ready in wait(list(waits), timeout) if waits else ():
            job_id, what = waits[ready]
            if job_id not in self.live:
                continue
            live, at = self.live[job_id], self.clock.elapsed()
            if what == "gate":
                try:
                    self._message(job_id, ready.recv(), at)
                except (EOFError, OSError):
                    live.gate.close()
                    live.gate = None
            elif what == "result":
                outcome = live.process.receive()
                if outcome is not None:
                    self._outcome(job_id, outcome, at)
            else:
                self._end(job_id)
        for job_id, live in list(self.live.items()):
            if live.popen is not None and live.popen.poll() is not None:
                summary = selfcheck_summary(self.selfcheck_path, live.popen.returncode)
                self.manifest["selfcheck"] = summary
                live.outcome = Outcome(
                    summary["status"] if summary["status"] != "error" else "error", summary.get("error"), {}
                )
                self.steps[job_id].update(outcome=summary["status"], error=summary.get("error"))
                self._end(job_id)

    def run(self) -> dict:
        self.save()
        hard = self.deadline_s - window.PACK_RESERVE_S
        try:
            with exclusive(self.records_path), hard_deadline(hard - self.clock.elapsed()):
                while not self.sched.done():
                    now = self.clock.elapsed()
                    for job in self.sched.start_due(now):
                        self._launch(job.id, now)
                    for job_id, kind in self.sched.grants(now):
                        self._grant(job_id, kind, now)
                    self._skipped(now)
                    self._limits(now)
                    self._poll(now)
                self._finish()
        except WindowDeadline:
            self.log(f"[{self.clock.elapsed():6.1f} s] deadline reached: {len(self.live)} processes stopped")
            for job_id in list(self.live):
                self._stop(job_id, "stopped at the deadline")
            for step in self.steps.values():
                if step["outcome"] == "pending":
                    step["outcome"] = "skipped for time"
            with exclusive(self.records_path):
                self._finish()
        finally:
            shutil.rmtree(self.cache_root, ignore_errors=True)
        return self.manifest

    def _skipped(self, now: float) -> None:
        """Jobs the scheduler ended without starting (skipped for time, or their cell failed)."""
        for job_id, outcome in self.sched.ended.items():
            step = self.steps[job_id]
            if step["outcome"] == "pending" and job_id not in self.live:
                step.update(outcome=outcome, at_s=round(now, 3))
                self.log(f"[{now:6.1f} s] {outcome}: {self.planned[job_id].job.label}")

    def _finish(self) -> None:
        """Write the records and the manifest's summaries; then the journal has served."""
        records = cell_records(self.results, self.env, self.settings.structures, self.checked)
        with held_off():
            for record in records:
                append_record(self.records_path, record)
        if records:
            self.journal.unlink(missing_ok=True)
        self.manifest["interference"] = interference(self.alone, self.results)
        self.manifest["structure_checked"] = self.checked
        self.manifest["finished_s"] = round(self.clock.elapsed(), 2)
        self.manifest["summary"] = phase_summary(self.manifest["steps"])
        self.save()


def _step(planned: window_plan.Planned) -> dict:
    job = planned.job
    return {
        "job": job.id,
        "phase": job.phase,
        "step": job.label,
        "round": job.round,
        "estimate": {
            "seconds": round(sum(s.seconds for s in job.segments), 3),
            "exclusive_s": round(job.exclusive_s, 3),
            "latency_ms": planned.estimate and round(planned.estimate.latency_ms, 3),
        },
        "outcome": "pending",
    }
