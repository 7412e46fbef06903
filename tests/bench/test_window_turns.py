"""GPU turns on the worker side (bench.window_turns, bench.worker.Turns): what a window's worker asks of its
runner and when, with the runner played by a thread."""

import contextlib
import multiprocessing
import threading
import time

import pytest

from bench import window_turns, worker
from bench.spec import Cell, executions
from bench.window import WINDOW_TIMING
from tests.bench import faulty_models  # noqa: F401 - registers fault_tiny


class FakePlacement(window_turns.Placement):
    """Records the priorities and CPUs asked for instead of changing this test process's."""

    def __init__(self):
        super().__init__({0, 1}, {2, 3})
        self.calls = []

    def nice(self, level):
        self.calls.append(("nice", level))

    def cpus(self, which):
        self.calls.append(("cpus", tuple(sorted(which))))


@contextlib.contextmanager
def fake_runner(delay=0.0):
    """A thread answering every ("want", kind) with ("go",) after `delay`; yields (conn, messages)."""
    mine, theirs = multiprocessing.Pipe(duplex=True)
    messages = []

    def serve():
        with contextlib.suppress(EOFError, OSError):
            while True:
                message = mine.recv()
                messages.append(message)
                if message[0] == "want":
                    time.sleep(delay)
                    mine.send(("go",))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield theirs, messages
    finally:
        theirs.close()
        thread.join(5)


def test_turns_ask_and_give_back_and_count_the_waiting():
    placement = FakePlacement()
    with fake_runner(delay=0.05) as (conn, messages):
        turns = window_turns.GpuTurns(conn, placement)
        with turns.setup():
            assert turns.holding == "shared"
        with turns.timed():
            assert turns.holding == "exclusive"
        turns.exit_turn()
        time.sleep(0.05)
    assert messages == [("want", "shared"), ("done",), ("want", "exclusive"), ("done",), ("want", "shared")]
    assert turns.waited_s >= 0.15 and [t["kind"] for t in turns.log] == ["shared", "exclusive", "shared"]
    assert turns.log[1]["granted"] >= turns.log[0]["released"]
    # nice 0 while holding a shared turn, back to 5 after; the timed turn on the timer's CPUs
    assert placement.calls == [
        ("nice", "turn"),
        ("nice", "cpu"),
        ("cpus", (0, 1)),
        ("cpus", (2, 3)),
        ("nice", "turn"),
    ]


def test_a_compile_gives_the_shared_turn_back_and_asks_for_it_again():
    placement = FakePlacement()
    with fake_runner(delay=0.05) as (conn, messages):
        turns = window_turns.GpuTurns(conn, placement)
        with turns.setup():
            turns.compile_started()
            assert turns.holding is None
            turns.compile_ended()
            assert turns.holding == "shared"
        with turns.timed():
            turns.compile_started()  # a recompile while timed: noted, the turn kept
            assert turns.holding == "exclusive"
        time.sleep(0.05)
    assert messages[:4] == [("want", "shared"), ("done",), ("want", "shared"), ("done",)]
    assert turns.compile_wait_s >= 0.05 and "recompiled" in turns.notes[0]
    assert ("nice", "compile") in placement.calls


def test_the_compile_callbacks_are_registered_with_dynamo():
    pytest.importorskip("torch._dynamo")
    import torch._dynamo

    turns = window_turns.GpuTurns(None, FakePlacement())
    handler = torch._dynamo.callback_handler
    try:
        assert turns.install_compile_hooks()
        assert turns.compile_started in handler.start_callbacks
        assert turns.compile_ended in handler.end_callbacks
    finally:
        handler.remove_start_callback(turns.compile_started)
        handler.remove_end_callback(turns.compile_ended)


class Recording(worker.Turns):
    """Turns that record which one is held, so the test can check where each step of a cell runs."""

    def __init__(self):
        self.now = None
        self.seen = []
        self.waited_s = 30.0

    @contextlib.contextmanager
    def _turn(self, name):
        self.seen.append(name)
        self.now = name
        yield
        self.now = None

    def setup(self):
        return self._turn("setup")

    def timed(self):
        return self._turn("timed")

    def after(self):
        return self._turn("after")


def test_measure_cell_builds_outside_the_turns_and_times_only_inside_the_timed_one(monkeypatch):
    turns = Recording()
    where = {}

    def spy(name, function):
        def wrapped(*args, **kwargs):
            where.setdefault(name, []).append(turns.now)
            return function(*args, **kwargs)

        monkeypatch.setattr(worker, name, wrapped)

    spy("prepare", worker.prepare)
    spy("sample_latency", worker.sample_latency)
    spy("calibration_samples", worker.calibration_samples)
    spy("output_agreement", worker.output_agreement)
    spy("_build_on_cpu", worker._build_on_cpu)
    (execution,) = executions("fault_tiny", [(16, 16)], "cpu", {"channels_last": (True,)})
    cell = Cell("fault_tiny", execution)  # not eager fp32: its output agreement is measured
    started = time.monotonic() - 40.0
    fields = worker.measure_cell(cell, WINDOW_TIMING, 1, started, agreement=True, turns=turns)
    assert turns.seen == ["setup", "timed", "after"]
    assert where == {
        "_build_on_cpu": [None, None],  # the cell's model and the reference model: on the CPU, no turn
        "prepare": ["setup"],
        "calibration_samples": ["timed", "timed"],
        "sample_latency": ["timed"],
        "output_agreement": ["after"],
    }
    assert 10.0 <= fields["process"]["setup_s"] < 40.0  # the 30 s spent waiting for turns left out
    assert fields["agreement"]["argmax_agreement_pct"] == 100.0
