"""A GPU window's worker side: GPU turns asked of the runner, CPU placement and priority, and the jobs.

Every worker process of a window runs `measure` (or `calibrate`, `check_structures`) and talks to the
runner (bench.window_run, whose bench.window_sched.Scheduler grants the turns) over a pipe: ("want",
"shared" | "exclusive") is answered with ("go",) when the turn is granted, and ("done",) gives it back.

Where a process runs, and how urgently (`Placement`): on the CPUs the timed process does not use, at nice 5
(building models, starting); at nice 0 while it holds a shared turn, since the GPU waits for that work;
Inductor's code generation at nice 15, on what the other processes leave (see bench.window_plan). During
its exclusive turn the process's main thread (the one launching kernels) moves to the timed process's own
CPUs. Raising a priority back needs the right to (root on a lent GPU machine); where it is refused, the
process goes on at the lower one and its record says so.

`torch.compile` compiles on the first call of the compiled model, inside the shared set-up turn: Dynamo's
compile-start callback gives the turn back for the code generation (CPU work) and the compile-end callback
asks for it again before the compiled code first runs on the GPU, so a compile never holds the GPU while it
generates code. `compile_s` is the compile as the backend timed it, less the time spent waiting for that
turn (`compile_gpu_wait_s`). Each cell compiles into an Inductor cache of its own, so its first process's
compile is cold and its second finds the first's cache (`compile_cache`).
"""

from __future__ import annotations

import contextlib
import os
import time

from bench.worker import Turns

NICE = {"cpu": 5, "turn": 0, "compile": 15}  # bench.window_plan.WEIGHT is their CFS weight
COMPILE_THREADS = 1  # Inductor compiles its kernels in this process: no pool of subprocesses per worker


class Placement:
    """The process's CPUs and priority (see the module docstring); `notes` says what could not be set."""

    def __init__(self, timer_cpus, other_cpus):
        self.timer_cpus, self.other_cpus = frozenset(timer_cpus), frozenset(other_cpus)
        self.notes: list[str] = []

    def nice(self, level: str) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, NICE[level])  # on Linux: this thread
        except OSError as exc:
            note = f"nice {NICE[level]} ({level}) refused: {exc.strerror}"
            if note not in self.notes:
                self.notes.append(note)

    def cpus(self, which: frozenset[int]) -> None:
        if which:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, which)


class GpuTurns(Turns):
    """Turns asked of the window's runner over `conn` (bench.worker.Turns). `log` keeps each turn: kind,
    when asked and granted and given back (time.monotonic, the same clock in every process)."""

    def __init__(self, conn, placement: Placement):
        self.conn, self.placement = conn, placement
        self.waited_s = 0.0
        self.compile_wait_s = 0.0
        self.holding: str | None = None
        self.log: list[dict] = []
        self.notes: list[str] = []

    def _ask(self, kind: str) -> float:
        asked = time.monotonic()
        self.conn.send(("want", kind))
        reply = self.conn.recv()
        if reply != ("go",):
            raise RuntimeError(f"GPU turn protocol: expected ('go',), got {reply!r}")
        granted = time.monotonic()
        self.waited_s += granted - asked
        self.holding = kind
        self.log.append({"kind": kind, "asked": asked, "granted": granted, "released": None})
        return granted - asked

    def _give_back(self) -> None:
        self.log[-1]["released"] = time.monotonic()  # before telling: the next turn may begin right after
        self.holding = None
        self.conn.send(("done",))

    @contextlib.contextmanager
    def _shared(self):
        self._ask("shared")
        self.placement.nice("turn")
        try:
            yield
        finally:
            if self.holding == "shared":
                self._give_back()
            self.placement.nice("cpu")

    def setup(self):
        return self._shared()

    def after(self):
        return self._shared()

    @contextlib.contextmanager
    def timed(self):
        self.placement.cpus(self.placement.timer_cpus)
        self._ask("exclusive")
        try:
            yield
        finally:
            self._give_back()
            self.placement.cpus(self.placement.other_cpus)

    def exit_turn(self) -> None:
        """Ask for a shared turn and keep it: the process ends holding it (its CUDA context goes away)."""
        if self.holding is None:
            self._ask("shared")
        self.placement.nice("turn")

    # torch.compile: give the GPU back while Dynamo and Inductor generate code (see the module docstring)

    def compile_started(self, *args) -> None:
        if self.holding == "shared":
            self._give_back()
            self.placement.nice("compile")
            self._compiling = True
        elif self.holding == "exclusive":
            self.notes.append("torch.compile recompiled during the timed turn")

    def compile_ended(self, *args) -> None:
        if getattr(self, "_compiling", False):
            self._compiling = False
            self.placement.nice("turn")
            self.compile_wait_s += self._ask("shared")

    def install_compile_hooks(self) -> bool:
        """Register the compile callbacks with Dynamo; False where this torch has no callback handler
        (then a compile holds its shared turn throughout: slower for the window, never wrong)."""
        import torch._dynamo

        handler = getattr(torch._dynamo, "callback_handler", None)
        if handler is None or not hasattr(handler, "register_start_callback"):
            self.notes.append("no Dynamo compile callbacks: the compile held its GPU turn")
            return False
        handler.register_start_callback(self.compile_started)
        handler.register_end_callback(self.compile_ended)
        return True


def _compile_settings(cache: str | None) -> dict:
    """This process's Inductor settings: its own cache folder and one compile thread."""
    if cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        os.environ.pop("TRITON_CACHE_DIR", None)  # under the Inductor cache: one cache per cell
    import torch._inductor.config as inductor

    inductor.compile_threads = COMPILE_THREADS
    return {"compile_threads": COMPILE_THREADS, "compile_cache": cache}


def measure(cell, policy, started: float, first: bool, conn, cpus: tuple, compile_cache: str | None) -> dict:
    """A window's worker process for `cell` (bench.worker.measure_cell with GPU turns): its fields, with
    `process.gpu_turns` (each turn's times), `process.gpu_wait_s` and the window's conditions."""
    from bench import worker

    placement = Placement(*cpus)
    placement.cpus(placement.other_cpus)
    placement.nice("cpu")
    turns = GpuTurns(conn, placement)
    window_conditions = {
        "timer_cpus": sorted(placement.timer_cpus),
        "turns": "shared set-up, exclusive timing",
    }
    try:
        if cell.execution.backend == "compile":
            window_conditions.update(_compile_settings(compile_cache), cold_cache=first)
            turns.install_compile_hooks()
        fields = worker.measure_cell(cell, policy, 1, started, agreement=first, turns=turns)
    except BaseException:
        turns.exit_turn()  # the process ends with its CUDA context: not while another one is timed
        raise
    if cell.execution.backend == "compile":
        wait = round(turns.compile_wait_s, 3)
        fields["compile_s"] = round(max(0.0, fields["compile_s"] - wait), 3)
        details = fields["conditions"]["backend_details"]
        if details.get("compile_first_call_s") is not None:
            details["compile_first_call_s"] = round(max(0.0, details["compile_first_call_s"] - wait), 4)
        window_conditions["compile_gpu_wait_s"] = wait
    window_conditions["notes"] = placement.notes + turns.notes
    fields["conditions"]["window"] = window_conditions
    fields["process"].update(gpu_wait_s=round(turns.waited_s, 4), gpu_turns=turns.log)
    turns.exit_turn()
    return fields


def calibrate(device: str, precisions: tuple[str, ...], cpus: tuple) -> dict:
    """The run's calibration (bench.worker.calibrate) on the timed process's CPUs; the runner starts this
    process when it grants the exclusive turn, and counts it as holding the GPU until it is gone."""
    from bench import worker

    Placement(*cpus).cpus(frozenset(cpus[0]))
    return worker.calibrate(device, precisions, None)


def check_structures(wanted: dict) -> dict:
    """This machine's build of each model against its committed structure records (CPU only)."""
    from bench.window_structure import check_models

    os.nice(NICE["cpu"])
    return check_models(wanted)
