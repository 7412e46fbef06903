"""Running a GPU window (`segbench gpu --out DIR`): the steps of bench.window under its budget, each cell in a
fresh worker (bench.run), every outcome written as it happens.

The folder it writes (at most 8 files, each at most 16 MiB, no deeper than two folders; bench.pack checks):

    DIR/window.log                                     the whole output (written by gpu/run.sh)
    DIR/window.json                                    the manifest: every step's estimate, time limit,
                                                       outcome (or "skipped for time"), wall time; the budget
    DIR/<machine>/<UTC time>-window-cuda.jsonl         the bench records (segbench report DIR reads them)
    DIR/selfcheck/<machine>/timer-agreement-cuda.json  the timer self-check

A global deadline stops the window however a step behaves: an interval timer raises `WindowDeadline` in the
main thread, which ends the step in progress (a worker is killed, the self-check's process too), records it,
marks the steps not reached as skipped for time, and still writes the manifest. Records and the manifest are
written whole (append of fsync'ed lines, atomic replace) with that timer held off, so the folder is always
consistent, even if the machine is taken away mid-run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import window
from bench.env import REPO_ROOT, collect_env, machine_slug
from bench.errors import UsageError
from bench.run import Outcome, calibrate, make_record, run_isolated
from bench.store import Layout, append_record, check_writable, exclusive, write_json

T0_ENV = "SEGBENCH_WINDOW_T0"  # epoch seconds at which the window started (gpu/run.sh sets it)
MANIFEST = "window.json"
SELFCHECK_NAME = "timer-agreement-cuda"


class WindowDeadline(Exception):
    """The window's deadline passed while a step was running."""


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
        raise WindowDeadline(f"the window's deadline passed ({seconds:.0f} s after this step began at most)")

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
class Hooks:
    """What a window does on the GPU, replaceable in tests: calibrate(timeout_s) -> env calibration,
    selfcheck(path, timeout_s) -> summary, measure(cell, timeout_s) -> bench.run.Outcome."""

    calibrate: Callable[[float], dict]
    selfcheck: Callable[[Path, float], dict]
    measure: Callable[[window.Cell, float], Outcome]


def gpu_hooks() -> Hooks:
    return Hooks(
        calibrate=lambda timeout: calibrate("cuda", ("fp32", "fp16"), None, timeout),
        selfcheck=run_selfcheck,
        measure=lambda cell, timeout: run_isolated(cell, window.WINDOW_TIMING, timeout),
    )


def run_selfcheck(out: Path, timeout_s: float) -> dict:
    """benchmarks/timer_agreement.py on CUDA in its own process; a summary of what it wrote."""
    command = [
        sys.executable,
        str(REPO_ROOT / "benchmarks" / "timer_agreement.py"),
        "--device",
        "cuda",
        "--models",
        window.SELFCHECK_MODELS,
        *window.SELFCHECK_ARGS,
        "--out",
        str(out),
    ]
    try:
        code = subprocess.run(command, timeout=timeout_s, check=False).returncode
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"no result within {timeout_s:.0f} s"}
    if code not in (0, 1) or not out.exists():
        return {"status": "error", "error": f"timer_agreement.py exited with {code}"}
    doc = json.loads(out.read_text(encoding="utf-8"))
    ratios = {
        f"{m['model']} {m['input_hw'][0]}x{m['input_hw'][1]}": {k: c["ratio"] for k, c in m["checks"].items()}
        for m in doc["models"]
    }
    return {"status": "pass" if doc["pass"] else "fail", "ratios": ratios, "file": out.name}


def _machine(env: dict) -> str:
    return env.get("machine") or "unknown-gpu"


def run_window(
    out: Path,
    env: dict,
    steps: list[window.Step],
    budget: window.Budget,
    hooks: Hooks,
    clock: Clock,
    gpu: window.GpuSpec,
    skipped_before: list[str] = (),
    log: Callable[[str], None] = print,
) -> dict:
    """Run `steps` under `budget`, writing into `out`; return the manifest (also out/window.json)."""
    layout = Layout(Path(out))
    machine = _machine(env)
    records_path = layout.sweep(machine, "window", "cuda")
    selfcheck_path = layout.selfcheck(machine, SELFCHECK_NAME)
    manifest = {
        "mode": "gpu_window",
        "deadline_s": budget.deadline_s,
        "pack_reserve_s": budget.pack_s,
        "phases": [
            {
                "name": p.name,
                "what": p.description,
                "reserve_s": budget.reserve[p.name],
                "cap_s": p.cap_s,
                "ends_by_s": budget.phase_end(p.name),
            }
            for p in budget.phases
            if p.name in budget.active
        ],
        "timing_policy": window.WINDOW_TIMING.as_dict(),
        "estimates": {"gpu": gpu.key, "gpu_source": gpu.source, "assumed": window.ASSUMED},
        "env": env,
        "records": records_path.relative_to(out).as_posix(),
        "selfcheck": None,
        "steps": [],
        "measured_before": list(skipped_before),
        "started_s": round(clock.elapsed(), 2),
        "finished_s": None,
    }

    def save():
        with held_off():
            write_json(Path(out) / MANIFEST, manifest)

    listed: set[int] = set()

    def entry(step: window.Step, **fields) -> dict:
        listed.add(id(step))
        item = {
            "phase": step.phase,
            "step": step.label,
            "model": step.cell.model if step.cell else None,
            "estimate_s": round(step.estimate.seconds, 2),
            "estimate_ms": step.estimate.latency_ms and round(step.estimate.latency_ms, 3),
            **fields,
        }
        manifest["steps"].append(item)
        return item

    def run_step(step: window.Step, limit: float) -> dict:
        start = clock.elapsed()
        if step.cell is None and step.phase == "calibration":
            env["calibration"] = hooks.calibrate(limit)
            status = "error" if "error" in env["calibration"] else "ok"
            return {"outcome": status, "error": env["calibration"].get("error")}
        if step.cell is None:
            result = hooks.selfcheck(selfcheck_path, limit)
            manifest["selfcheck"] = {**result, "wall_s": round(clock.elapsed() - start, 2)}
            return {"outcome": result["status"], "error": result.get("error")}
        try:
            outcome = hooks.measure(step.cell, limit)
        except WindowDeadline as exc:
            outcome = Outcome("timeout", f"stopped at the window's deadline: {exc}", {})
            _record(records_path, step.cell, outcome, env, clock.elapsed() - start)
            raise
        _record(records_path, step.cell, outcome, env, clock.elapsed() - start)
        return {"outcome": outcome.status, "error": outcome.error}

    save()
    hard_end = budget.deadline_s - budget.pack_s
    try:
        with exclusive(records_path), hard_deadline(hard_end - clock.elapsed()):
            for step, limit in window.schedule(steps, budget, clock.elapsed):
                at = clock.elapsed()
                if limit is None:
                    left = budget.phase_end(step.phase) - at
                    entry(step, outcome="skipped for time", at_s=round(at, 2), left_s=round(left, 2))
                    log(
                        f"[{at:6.1f} s] skipped for time: {step.label} (estimate "
                        f"{step.estimate.seconds:.1f} s, {left:.1f} s left in {step.phase})"
                    )
                    save()
                    continue
                log(f"[{at:6.1f} s] {step.phase}: {step.label} (limit {limit:.0f} s)")
                item = entry(step, outcome="running", at_s=round(at, 2), limit_s=round(limit, 2))
                save()
                try:
                    item.update(run_step(step, limit))
                except WindowDeadline:
                    item.update(outcome="stopped at the deadline")
                    raise
                finally:
                    item["wall_s"] = round(clock.elapsed() - at, 2)
                    save()
                status = item["outcome"] + (f": {item['error']}" if item.get("error") else "")
                log(f"[{clock.elapsed():6.1f} s]   {status} ({item['wall_s']:.1f} s)")
    except WindowDeadline:
        at = clock.elapsed()
        pending = [s for s in steps if id(s) not in listed]
        log(f"[{at:6.1f} s] deadline reached: {len(pending)} steps not started")
        for step in pending:
            entry(step, outcome="skipped for time", at_s=round(at, 2), left_s=0.0)
    manifest["finished_s"] = round(clock.elapsed(), 2)
    manifest["summary"] = summary(manifest["steps"])
    save()
    return manifest


def _record(path: Path, cell: window.Cell, outcome: Outcome, env: dict, wall_s: float) -> None:
    with held_off():
        append_record(path, make_record(cell, outcome, env, wall_s))


def summary(items: list[dict]) -> dict:
    """Per phase: steps, outcomes counted, wall time spent."""
    out: dict[str, dict] = {}
    for item in items:
        phase = out.setdefault(item["phase"], {"steps": 0, "outcomes": {}, "wall_s": 0.0})
        phase["steps"] += 1
        phase["outcomes"][item["outcome"]] = phase["outcomes"].get(item["outcome"], 0) + 1
        phase["wall_s"] = round(phase["wall_s"] + (item.get("wall_s") or 0.0), 2)
    return out


# ------------------------------------------------------------------------------------------ command


def _selected(models: list[str] | None) -> list[str] | None:
    if not models:
        return None
    import zoo
    from bench.spec import check_models

    for name in check_models(models):
        if zoo.model_group(name) not in window.GROUP_ORDER:
            raise UsageError(f"{name} is not a zoo model: a GPU window measures zoo models only")
    return models


def _phases(text: str | None) -> tuple[str, ...]:
    names = tuple(p.strip() for p in (text or ",".join(window.PHASE_NAMES[1:])).split(",") if p.strip())
    unknown = [p for p in names if p not in window.PHASE_NAMES[1:]]
    if unknown or not names:
        raise UsageError(
            f"unknown phase {', '.join(unknown)!r}: expected some of {', '.join(window.PHASE_NAMES[1:])}"
        )
    return names


def command(args) -> int:
    """`segbench gpu`: --plan, or the window itself."""
    if args.deadline <= window.PACK_RESERVE_S:
        raise UsageError(f"--deadline must be more than {window.PACK_RESERVE_S:g} s, got {args.deadline:g}")
    phases = _phases(args.phases)
    cells = window.window_cells(_selected(args.models), tuple(p for p in phases if p in window.CELL_PHASES))
    fixed = ("calibration", *(("selfcheck",) if "selfcheck" in phases else ()))
    facts = window.StructureFacts(REPO_ROOT / "results")
    if args.plan:
        gpu = window.gpu_spec(args.gpu)
        machine = machine_slug("cuda", {"name": gpu.nvml_names[0]})
        return _print_plan(cells, facts, gpu, fixed, args, machine)
    import torch

    if not torch.cuda.is_available():
        raise UsageError("no CUDA device is available to torch here (--plan sizes a window without one)")
    if args.out is None:
        raise UsageError("a window needs --out DIR (the folder it writes)")
    check_writable(args.out)
    if any(Path(args.out).rglob("*.jsonl")) or (Path(args.out) / MANIFEST).exists():
        raise UsageError(f"{args.out} holds a window already: give an empty folder")
    env = collect_env("cuda")
    gpu = window.gpu_for_name((env.get("gpu") or {}).get("name"))
    if gpu is None:
        gpu = window.gpu_spec(args.gpu)
        print(
            f"segbench: {env.get('gpu')} is not in the peaks table: estimates use {gpu.name}'s",
            file=sys.stderr,
        )
    measured = window.measured_keys(args.skip_measured, env["machine"]) if args.skip_measured else set()
    before = [window.short_label(c.cell) for c in cells if c.cell.key in measured]
    steps = window.window_steps([c for c in cells if c.cell.key not in measured], facts, gpu, fixed)
    budget = window.Budget(args.deadline, window.phase_work(steps))
    clock = Clock()
    print(
        f"segbench: GPU window on {(env.get('gpu') or {}).get('name')}: {len(steps)} steps, deadline "
        f"{args.deadline:g} s ({clock.elapsed():.1f} s gone), {len(before)} cells measured before "
        f"-> {args.out}",
        file=sys.stderr,
    )
    manifest = run_window(Path(args.out), env, steps, budget, gpu_hooks(), clock, gpu, before, _log)
    for phase, figures in manifest["summary"].items():
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(figures["outcomes"].items()))
        _log(f"{phase}: {counts} ({figures['wall_s']:.0f} s)")
    _log(f"window over at {manifest['finished_s']:.1f} s; manifest {Path(args.out) / MANIFEST}")
    return 0


def _log(line: str) -> None:
    print(line, flush=True)


def _print_plan(cells, facts, gpu, fixed, args, machine: str) -> int:
    measured = window.measured_keys(args.skip_measured, machine) if args.skip_measured else set()
    todo = [c for c in cells if c.cell.key not in measured]
    rows, budget = window.plan(window.window_steps(todo, facts, gpu, fixed), args.deadline)
    print(window.format_plan(rows, budget, gpu, measured_before=len(cells) - len(todo)))
    return 0
