"""Worker processes: each job (one round of one cell, or the run's calibration) runs in a fresh process, so a
crash, an out-of-memory kill or a hang costs one outcome, never the sweep.

Workers are forked from a fork server that has imported torch, the zoo and its model registry once
(bench.preload; importing them costs several seconds on a 2-core CPU, more than most quick cells take to
measure). The fork server has imported modules and nothing else: no model built, no CUDA initialised, no
thread pool started, so each job still starts from the same clean state, in a process of its own.

What a worker runs is what the runner runs. Python starts multiprocessing's helpers (the fork server, the
resource tracker) with `python -c`, which puts the current directory first on `sys.path`: a `./bench/`,
`./zoo/` or `./torch.py` there would run in every worker while the record's provenance names the runner's
code. So the helpers start in an empty temporary directory with the runner's own `sys.path` as PYTHONPATH,
and each worker checks that `bench`, `zoo` and `torch` come from the files the runner imported.

A worker never outlives its runner, however the runner ends (Ctrl-C, SIGTERM, SIGKILL): it watches a pipe
whose other end only the runner holds and kills itself when that pipe closes; on Linux the kernel also kills
it when the fork server exits (PR_SET_PDEATHSIG), which the fork server does when the runner is gone. The
resource tracker then exits as its last client does.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT_S = 300.0  # interpreter start and imports in a worker, before the job's own time limit
CHECKED_MODULES = ("bench", "zoo", "torch")  # a worker must import these from the runner's files
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Outcome:
    status: str  # one of bench.records.STATUSES
    error: str | None
    fields: dict


# ------------------------------------------------------------------------------------------- the runner


_helpers_started = False


@contextlib.contextmanager
def _environment(**values: str):
    previous = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _start_helpers() -> None:
    """Start multiprocessing's fork server and resource tracker in an empty directory, with the runner's
    module search path (its '' entry, the current directory, made explicit as spawned children get it)."""
    global _helpers_started
    if _helpers_started:
        return
    from multiprocessing import forkserver

    path = os.pathsep.join(os.getcwd() if entry == "" else entry for entry in sys.path)
    here = os.getcwd()
    # The helpers' interpreters need their directory while they start, after ensure_running() returns:
    # it is removed when the runner exits.
    empty = tempfile.mkdtemp(prefix="segbench-helpers-")
    atexit.register(shutil.rmtree, empty, ignore_errors=True)
    with _environment(PYTHONPATH=path):
        os.chdir(empty)
        try:
            forkserver.ensure_running()
        finally:
            os.chdir(here)
    _helpers_started = True


def worker_context():
    """The multiprocessing context every worker is started from (its helpers started safely, once)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["bench.preload"])
    _start_helpers()
    return ctx


def _module_files() -> dict[str, str]:
    return {
        name: os.path.realpath(sys.modules[name].__file__)
        for name in CHECKED_MODULES
        if name in sys.modules and getattr(sys.modules[name], "__file__", None)
    }


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has killed: in this cgroup (v2) plus system-wide, or None
    where neither count can be read. A rise across a job is the evidence that a SIGKILL was an OOM kill."""
    counts = []
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/vmstat").read_text().splitlines():
            if line.startswith("oom_kill "):
                counts.append(int(line.split()[1]))
    with contextlib.suppress(OSError, ValueError, IndexError):
        group = Path("/proc/self/cgroup").read_text().splitlines()[0].split("::", 1)[1]
        for line in (Path("/sys/fs/cgroup") / group.lstrip("/") / "memory.events").read_text().splitlines():
            if line.startswith("oom_kill "):
                counts.append(int(line.split()[1]))
    return sum(counts) if counts else None


def exit_outcome(code: int | None, oom_before: int | None, oom_after: int | None) -> Outcome:
    """The outcome of a worker that died without sending a result. A signal is named; "out of memory" is
    said only with evidence (the kernel's OOM-kill count rose meanwhile), and then hedged: another process
    could have been the one killed."""
    if code is None:
        return Outcome("crashed", "worker vanished without an exit status", {})
    if code >= 0:
        return Outcome("crashed", f"worker exited with code {code}", {})
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    if -code == signal.SIGKILL and None not in (oom_before, oom_after) and oom_after > oom_before:
        error = f"worker killed by {name} (possibly out of memory: the kernel's OOM killer ran meanwhile)"
        return Outcome("oom", error, {})
    return Outcome("crashed", f"worker killed by {name}", {})


class Job:
    """A job running in its worker process (`start_job`). `receiver` can be waited on with
    `multiprocessing.connection.wait`; `receive()` then reads what the worker sent."""

    def __init__(self, process, receiver, alive, oom_before: int | None):
        self.process, self.receiver, self._alive, self._oom_before = process, receiver, alive, oom_before
        self.started = False  # the worker has imported what it needs and begun the job

    def receive(self) -> Outcome | None:
        """The job's outcome, or None after the worker's "ready"; a worker that died without sending one
        gives the outcome its exit status says (`exit_outcome`). Call when `receiver` is ready."""
        try:
            message = self.receiver.recv()
        except EOFError:
            self.process.join(5)
            return exit_outcome(self.process.exitcode, self._oom_before, oom_kills())
        if isinstance(message, Outcome):  # after "ready", or instead of it on an early failure
            return message
        if message == "ready" and not self.started:
            self.started = True
            return None
        raise RuntimeError(f"worker protocol: expected a result, got {message!r}")

    def close(self) -> None:
        """Kill the worker if it still runs, and wait for it to be gone."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self._alive.close()
        self.receiver.close()


def start_job(job: str, args: tuple, plugins: tuple[str, ...] = ()) -> Job:
    """Start `bench.worker.<job>(*args)` (or `module:function` for a job defined elsewhere) in a fresh
    process, without waiting for it."""
    ctx = worker_context()
    receiver, sender = ctx.Pipe(duplex=False)
    watch, alive = ctx.Pipe(
        duplex=False
    )  # the runner holds `alive` and never writes: closing it ends the worker
    process = ctx.Process(
        target=_worker_main, args=(sender, watch, job, args, plugins, _module_files()), daemon=True
    )
    oom_before = oom_kills()
    process.start()
    sender.close()
    watch.close()
    return Job(process, receiver, alive, oom_before)


def run_job(job: str, args: tuple, timeout_s: float, plugins: tuple[str, ...] = ()) -> Outcome:
    """Run `bench.worker.<job>(*args)` in a fresh process; `timeout_s` bounds the job, not the start-up."""
    running = start_job(job, args, plugins)
    try:
        for stage, limit in (("start", STARTUP_TIMEOUT_S), ("measure", timeout_s)):
            if not running.receiver.poll(limit):
                return Outcome("timeout", f"no result within {limit:g} s ({stage})", {})
            outcome = running.receive()
            if outcome is not None:
                return outcome
        raise RuntimeError("worker protocol: expected a result after 'ready'")
    finally:
        running.close()


# ------------------------------------------------------------------------------------------- the worker


def _die_with_runner(watch) -> None:
    """End this worker when its runner ends, however it ends (see the module docstring)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # Our copy of the fork server's liveness pipe would keep it (and so the death signal) alive after the
    # runner is gone; this worker never starts processes through it.
    from multiprocessing import forkserver

    server = forkserver._forkserver
    if getattr(server, "_forkserver_alive_fd", None) is not None:
        with contextlib.suppress(OSError):
            os.close(server._forkserver_alive_fd)
        server._forkserver_alive_fd = None

    def watchdog():
        with contextlib.suppress(EOFError, OSError):
            watch.recv_bytes()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watchdog, name="segbench-runner-watchdog", daemon=True).start()


def _check_modules(expected: dict[str, str]) -> None:
    import importlib

    for name, path in expected.items():
        here = getattr(importlib.import_module(name), "__file__", None)
        here = here and os.path.realpath(here)
        if here != path:
            raise RuntimeError(
                f"this worker imported {name} from {here}, the runner from {path}; not measuring"
            )


def _job_function(job: str):
    import importlib

    from bench import worker

    module, _, name = job.rpartition(":")
    return getattr(importlib.import_module(module) if module else worker, name)


def _worker_main(conn, watch, job: str, args: tuple, plugins: tuple[str, ...], modules: dict) -> None:
    _die_with_runner(watch)
    from bench import worker  # imported here: the fork server pays for torch once, not the parent

    try:
        _check_modules(modules)
        worker.import_plugins(plugins)
        function = _job_function(job)
        conn.send("ready")
        conn.send(Outcome("ok", None, function(*args)))
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a record
        status = "oom" if worker.is_oom(exc) else "error"
        conn.send(Outcome(status, worker.one_line(exc), {}))
    finally:
        conn.close()
