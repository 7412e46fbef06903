"""Running a GPU window (bench.window_run) with the GPU replaced by fakes: budgets, deadline, files."""

import json
import time

import pytest

from bench import window
from bench.records import BenchRecord
from bench.run import Outcome
from bench.store import read_records
from bench.window_run import MANIFEST, Clock, Hooks, WindowDeadline, hard_deadline, run_window

ENV = {
    "machine": "nvidia-h100-80gb-hbm3",
    "timestamp": "2026-12-07T00:00:00+00:00",
    "git_commit": "0" * 40,
    "git_dirty": False,
    "torch": "2.11.0",
    "gpu": {"name": "NVIDIA H100 80GB HBM3", "driver": "580.159.04", "memory_total_mb": 81559},
}
H100 = window.gpu_spec("h100-sxm")


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _steps(seconds: list[float], phases=("eager",)):
    cells = window.window_cells(["sinet", "bisenetv2", "fastscnn"], phases)
    fixed = [
        window.Step(n, None, window.Estimate(None, 5.0, None, "assumed"))
        for n in ("calibration", "selfcheck")
    ]
    return fixed + [
        window.Step(c.phase, c.cell, window.Estimate(1.0, s, 1e9, "test"))
        for c, s in zip(cells, seconds, strict=False)
    ]


def _hooks(clock: FakeTime, took: dict[str, float], calls: list):
    def measure(cell, limit):
        calls.append((window.short_label(cell), limit))
        clock.now += took.get(cell.model, 3.0)
        return Outcome("error", "RuntimeError: fake GPU", {})

    def selfcheck(path, limit):
        clock.now += 5.0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"mode": "timer_agreement"}))
        return {"status": "pass", "ratios": {"sinet 224x224": {"event_loop": 1.004}}, "file": path.name}

    def calibrate(limit):
        clock.now += 5.0
        return {"peaks": {"tflops": {"fp32": 50.0}, "gbps": 3000.0}}

    return Hooks(calibrate=calibrate, selfcheck=selfcheck, measure=measure)


def test_every_step_is_listed_once_with_its_outcome_and_records_are_written(tmp_path):
    now = FakeTime()
    steps = _steps([3.0] * 6)
    calls = []
    budget = window.Budget(60.0, window.phase_work(steps))
    manifest = run_window(tmp_path, dict(ENV), steps, budget, _hooks(now, {}, calls), Clock(0.0, now), H100)
    assert [s["step"] for s in manifest["steps"]] == [s.label for s in steps]
    assert json.loads((tmp_path / MANIFEST).read_text()) == manifest
    outcomes = [s["outcome"] for s in manifest["steps"]]
    assert outcomes[:2] == ["ok", "pass"]
    ran = [s for s in manifest["steps"][2:] if s["outcome"] != "skipped for time"]
    assert all(s["outcome"] == "error" and s["wall_s"] == 3.0 for s in ran)
    records = read_records(tmp_path / manifest["records"])
    assert [r.model for r in records] == [s["model"] for s in ran]
    assert all(
        isinstance(r, BenchRecord) and r.status == "error" and r.machine == ENV["machine"] for r in records
    )
    assert records[0].env.calibration == {"peaks": {"tflops": {"fp32": 50.0}, "gbps": 3000.0}}
    assert manifest["selfcheck"]["ratios"] and (tmp_path / "selfcheck" / ENV["machine"]).is_dir()
    assert manifest["summary"]["eager"]["steps"] == 6
    for (_, limit), item in zip(calls, ran, strict=True):  # a limit never runs past the phase's end
        assert limit <= budget.cap("eager") and item["at_s"] + limit <= budget.phase_end("eager") + 1e-9


def test_cells_that_do_not_fit_are_skipped_for_time_and_cheaper_ones_still_run(tmp_path):
    now = FakeTime()
    steps = _steps([3.0, 40.0, 3.0, 3.0, 3.0, 3.0])  # the second cell is estimated beyond what is left
    budget = window.Budget(40.0, window.phase_work(steps))  # eager ends at 30 s
    manifest = run_window(tmp_path, dict(ENV), steps, budget, _hooks(now, {}, []), Clock(0.0, now), H100)
    outcomes = [s["outcome"] for s in manifest["steps"][2:]]
    # 10 s of calibration and self-check, then 3 s per cell until less than 3 s is left before 30 s
    assert outcomes == ["error", "skipped for time", "error", "error", "error", "error"]
    skipped = manifest["steps"][3]
    assert skipped["left_s"] == pytest.approx(30.0 - 13.0) and skipped["estimate_s"] == 40.0
    assert manifest["finished_s"] == pytest.approx(25.0)


def test_a_slow_cell_uses_the_time_of_those_after_it_which_are_then_skipped(tmp_path):
    now = FakeTime()
    steps = _steps([3.0] * 6)  # bisenetv2, fastscnn, sinet in fp32, then in fp16
    calls = []
    took = {"bisenetv2": 14.0}  # estimated 3 s, takes 14 s
    budget = window.Budget(40.0, window.phase_work(steps))  # eager from 10 s to 30 s
    manifest = run_window(tmp_path, dict(ENV), steps, budget, _hooks(now, took, calls), Clock(0.0, now), H100)
    outcomes = [s["outcome"] for s in manifest["steps"][2:]]
    assert outcomes == ["error"] * 3 + ["skipped for time"] * 3  # 10 + 14 + 3 + 3 s: nothing left at 30 s
    assert [limit for _, limit in calls] == [pytest.approx(20.0), pytest.approx(6.0), pytest.approx(3.0)]


def test_the_deadline_stops_a_hung_step_and_the_files_are_still_written(tmp_path):
    def hang(cell, limit):
        time.sleep(30)

    hooks = Hooks(calibrate=lambda limit: {}, selfcheck=lambda p, limit: {"status": "pass"}, measure=hang)
    cells = window.window_cells(["sinet"], ("eager",))
    steps = [window.Step(c.phase, c.cell, window.Estimate(1.0, 0.1, 1e9, "test")) for c in cells]
    budget = window.Budget(
        1.5, window.phase_work(steps), pack_s=0.5
    )  # the deadline fires 1 s after the start
    start = time.monotonic()
    manifest = run_window(tmp_path, dict(ENV), steps, budget, hooks, Clock(), H100, log=lambda line: None)
    assert time.monotonic() - start < 10
    assert [s["outcome"] for s in manifest["steps"]] == ["stopped at the deadline", "skipped for time"]
    (record,) = read_records(tmp_path / manifest["records"])
    assert record.status == "timeout" and "deadline" in record.error
    assert json.loads((tmp_path / MANIFEST).read_text())["steps"][1]["outcome"] == "skipped for time"


def test_hard_deadline_raises_in_time_and_is_cleared_after():
    with pytest.raises(WindowDeadline), hard_deadline(0.05):
        time.sleep(5)
    with hard_deadline(5.0):
        pass
    time.sleep(0.01)  # no late alarm: the timer was cleared on leaving


def test_clock_counts_from_the_scripts_start(monkeypatch):
    monkeypatch.setenv("SEGBENCH_WINDOW_T0", "1000.0")
    assert Clock(now=lambda: 1012.5).elapsed() == 12.5
    monkeypatch.delenv("SEGBENCH_WINDOW_T0")
    assert Clock(now=lambda: 5.0).elapsed() == 0.0


@pytest.mark.slow
def test_the_deadline_stops_a_real_worker_and_kills_it(tmp_path):
    import multiprocessing

    from bench.run import run_isolated
    from bench.spec import Cell, executions
    from tests.bench import faulty_models  # noqa: F401 - registers fault_sleeps in this process too

    plugin = ("tests.bench.faulty_models",)
    cell = Cell("fault_sleeps", executions("fault_sleeps", [(32, 32)], "cpu", {})[0])
    hooks = Hooks(
        calibrate=lambda limit: {},
        selfcheck=lambda p, limit: {"status": "pass"},
        measure=lambda c, limit: run_isolated(c, window.WINDOW_TIMING, limit, 1, plugin),
    )
    steps = [window.Step("eager", cell, window.Estimate(1.0, 1.0, 1e6, "test"))]
    budget = window.Budget(21.0, window.phase_work(steps), pack_s=1.0)  # its cap (60 s) outlasts the deadline
    start = time.monotonic()
    manifest = run_window(tmp_path, dict(ENV), steps, budget, hooks, Clock(), H100, log=lambda line: None)
    assert 19.0 < time.monotonic() - start < 40.0
    assert manifest["steps"][0]["outcome"] == "stopped at the deadline"
    (record,) = read_records(tmp_path / manifest["records"])
    assert record.status == "timeout" and "deadline" in record.error
    assert multiprocessing.active_children() == []  # the worker was killed, not left sleeping
