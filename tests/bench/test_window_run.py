"""Running a GPU window (bench.window_run) with real worker processes on the CPU (the GPU's turns are the
same there): records, manifest, one timed process at a time, failures, the deadline, the folder's limits."""

import itertools
import json
import multiprocessing
import sys
import time

import pytest

from bench import window, window_plan
from bench.pack import pack_folder
from bench.records import BenchRecord
from bench.spec import Cell, executions
from bench.store import read_records
from bench.structure import measure_structure
from bench.window_run import MANIFEST, Clock, Settings, Window, WindowDeadline, hard_deadline
from bench.window_sched import Config
from bench.window_structure import StructureFacts, candidates
from tests.bench import faulty_models  # noqa: F401 - registers the fault_* models in this process too

ENV = {
    "machine": "test-machine",
    "timestamp": "2026-12-07T00:00:00+00:00",
    "git_commit": "0" * 40,
    "git_dirty": False,
    "torch": "2.14.1",
}
H100 = window.gpu_spec("h100-sxm")
PLUGINS = ("tests.bench.faulty_models",)
CONFIG = Config(slots={"cells": 3, "compile": 1}, batch=2, max_shared_s=0.5, heavy=1, cores=2.0)
FAKE_SELFCHECK = [
    sys.executable,
    "-c",
    "import json, sys; json.dump({'pass': True, 'models': []}, open(sys.argv[1], 'w'))",
]


def cpu_cells(*specs):
    """WindowCells on the CPU: (model, (h, w), axes)."""
    out = []
    for model, hw, axes in specs:
        out += [window.WindowCell("eager", Cell(model, e)) for e in executions(model, [hw], "cpu", axes)]
    return out


def run(tmp_path, cells, deadline=600.0, results=None, interference=(), selfcheck=True):
    results = results or tmp_path / "results"
    models = sorted({c.cell.model for c in cells})
    wanted = candidates(results, models)
    facts = _facts(results, models)
    planned = window_plan.plan_jobs(
        cells, facts, H100, selfcheck, list(interference), wanted, calibration=False
    )
    settings = Settings(device="cpu", structures=results, config=CONFIG, plugins=PLUGINS)
    out = tmp_path / "window"
    runner = Window(out, dict(ENV), planned, deadline, Clock(), settings, log=lambda line: None)
    settings.selfcheck = [*FAKE_SELFCHECK, str(runner.selfcheck_path)]
    return out, runner.run()


def _facts(results, models):
    """Facts for models the structural baseline does not have (the fixtures): a tiny model's numbers."""
    facts = StructureFacts(results)
    facts._baseline = {"input_hw": [16, 16], "models": {m: {"macs": 1000, "params": 100} for m in models}}
    return facts


def turns_of(records):
    return [(r.model, t) for r in records for p in r.get("conditions")["processes"] for t in p["gpu_turns"]]


@pytest.mark.slow
def test_a_window_measures_each_cell_in_two_processes_one_timed_at_a_time(tmp_path):
    results = tmp_path / "results"
    counted = measure_structure("fault_tiny", (16, 16))
    from bench.store import Layout, append_record

    append_record(Layout(results).structure("fault_tiny"), counted)
    cells = cpu_cells(
        ("fault_tiny", (16, 16), {"channels_last": (False, True)}), ("fault_flaky", (24, 24), {})
    )
    out, manifest = run(
        tmp_path, cells, results=results, interference=[window.WindowCell("interference", cells[0].cell)]
    )

    assert json.loads((out / MANIFEST).read_text()) == manifest
    steps = manifest["steps"]
    assert [s["outcome"] for s in steps] == ["pass"] + ["ok"] * (len(steps) - 1)
    assert all(s["estimate"]["seconds"] > 0 and "ended_s" in s for s in steps[1:])  # estimate beside actual
    records = read_records(out / manifest["records"])
    assert [r.model for r in records] == ["fault_tiny", "fault_tiny", "fault_flaky"]
    for r in records:
        assert isinstance(r, BenchRecord) and r.ok and r.latency.processes == 2
        assert r.latency.stop_reason in ("ci_target", "rounds") and r.machine == "test-machine"
    assert records[0].get("macs") == counted.macs and "structure record" in records[0].get("structure_source")
    assert records[2].get("macs") is None and "no structure record" in records[2].get("structure_source")

    # Only one process timed at a time, and no set-up of one process beside another's timing.
    turns = turns_of(records)
    timed = sorted((t["granted"], t["released"]) for _, t in turns if t["kind"] == "exclusive")
    assert len(timed) == 6 and all(a[1] <= b[0] for a, b in itertools.pairwise(timed))
    for (_, t), (begin, end) in itertools.product(turns, timed):
        if t["kind"] == "shared" and t["released"] is not None:
            assert t["released"] <= begin or t["granted"] >= end
    (check,) = manifest["interference"]
    assert check["cell"] == "fault_tiny 16x16 b1 fp32 eager" and len(check["in_window_ms"]) == 2
    assert not list(out.rglob("*.rounds"))  # the journal has served once the records are written
    assert pack_folder(out) == [] and len(list(out.rglob("*"))) <= 8 + 3  # files and their folders
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_a_failing_cell_is_recorded_and_its_second_process_not_run(tmp_path):
    cells = cpu_cells(("fault_raises", (16, 16), {}), ("fault_tiny", (16, 16), {}))
    out, manifest = run(tmp_path, cells, selfcheck=False)
    outcomes = {s["step"]: s["outcome"] for s in manifest["steps"] if s["phase"] == "eager"}
    assert outcomes["fault_raises 16x16 b1 fp32 eager #1"] == "error"
    assert outcomes["fault_raises 16x16 b1 fp32 eager #2"].startswith("not run: fault_raises")
    records = {r.model: r for r in read_records(out / manifest["records"])}
    assert records["fault_raises"].status == "error" and "always fails" in records["fault_raises"].error
    assert records["fault_tiny"].ok and records["fault_tiny"].latency.processes == 2


@pytest.mark.slow
def test_the_deadline_stops_a_hung_process_and_the_files_are_still_written(tmp_path):
    cells = cpu_cells(("fault_sleeps", (16, 16), {}), ("fault_tiny", (16, 16), {}))
    start = time.monotonic()
    clock_now = Clock().elapsed()
    out, manifest = run(tmp_path, cells, deadline=clock_now + window.PACK_RESERVE_S + 20.0, selfcheck=False)
    assert time.monotonic() - start < 60
    outcomes = {s["step"]: s["outcome"] for s in manifest["steps"]}
    assert outcomes["fault_sleeps 16x16 b1 fp32 eager #1"] == "stopped at the deadline"
    assert outcomes["fault_sleeps 16x16 b1 fp32 eager #2"] in ("skipped for time", "stopped at the deadline")
    assert json.loads((out / MANIFEST).read_text())["finished_s"] is not None
    records = read_records(out / manifest["records"]) if (out / manifest["records"]).exists() else []
    assert all(r.model == "fault_tiny" for r in records)  # a cell cut by the deadline is no failure
    assert multiprocessing.active_children() == []


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
