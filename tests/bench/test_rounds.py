"""The sweep's rounds (bench.run.run_sweep), with a fake worker and a fake clock: no process is started.

Each fake process of a cell samples around the cell's true latency times that process's own offset
(alternately 1 + spread and 1 - spread), so the between-process spread is known; the clock advances by each
process's wall time."""

import json
import random

import pytest

from bench.conditions import Execution
from bench.isolation import Outcome
from bench.measure.stats import summarize
from bench.records import BenchRecord
from bench.run import finished_cells, run_sweep
from bench.spec import PROFILES, Cell, RoundsPolicy
from bench.store import read_records, sidecar

POLICY_CONFIDENCE = 0.95


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeWorker:
    """Stands in for bench.isolation.run_job: one fake process per call, logged in `calls`."""

    def __init__(self, clock, latency_ms, spread=None, wall_s=10.0, fail=(), seed=0):
        self.clock, self.latency_ms, self.wall_s = clock, latency_ms, wall_s
        self.spread = spread or {}
        self.fail = set(fail)
        self.rng = random.Random(seed)
        self.calls = []

    def __call__(self, job, args, timeout_s, plugins):
        cell = args[0]
        self.calls.append(str(cell))
        self.clock.now += self.wall_s
        if cell.model in self.fail:
            return Outcome("error", "RuntimeError: broken", {})
        offset = 1.0 + self.spread.get(cell.model, 0.0005) * (-1) ** self.calls.count(str(cell))
        samples = [self.latency_ms[cell.model] * offset * (1 + self.rng.gauss(0, 0.002)) for _ in range(40)]
        latency = {**summarize(samples), "stop_reason": "ci_target"}
        return Outcome("ok", None, process_fields(latency, samples))


def process_fields(latency: dict, samples: list[float]) -> dict:
    """What bench.worker.measure_cell returns, with fixed values where the sweep only copies them."""
    return {
        "output_shape": [1, 19, 32, 32],
        "latency_ms": latency,
        "latency_samples_ms": samples,
        "peak_mem_mb": 10.0,
        "peak_mem_method": "rss_hwm",
        "memory": {"cpu_peak_rss_mb": 10.0},
        "hardware": None,
        "compile_s": 0.0,
        "calibration_samples_ms": [1.0, 1.1, 0.9],
        "agreement": None,
        "conditions": {"threads": 2},
        "process": {"setup_s": 1.0, "first_call_ms": 400.0, "warmup_s": 0.5},
        "structure_digest": None,
        "structure": None,
    }


def cells(*models):
    return [Cell(m, Execution((32, 32))) for m in models]


ENV = {"machine": "test-machine", "timestamp": "2026-01-01T00:00:00+00:00", "git_commit": "abc"}


def sweep(tmp_path, worker, clock, models, rounds, **kwargs):
    out = tmp_path / "sweep.jsonl"
    summary = run_sweep(
        cells(*models),
        out,
        ENV,
        PROFILES["quick"].timing,
        timeout_s=60,
        progress=False,
        rounds=rounds,
        job=worker,
        clock=clock,
        **kwargs,
    )
    return summary, {r.model: r for r in read_records(out)}


MODELS = ("mobilenetv2", "bisenetv2", "enet")
LATENCY = {"mobilenetv2": 10.0, "bisenetv2": 50.0, "enet": 30.0, "fastscnn": 20.0, "sinet": 15.0}


def test_each_round_goes_over_every_cell_before_the_next(tmp_path):
    clock = FakeClock()
    worker = FakeWorker(clock, LATENCY)
    summary, records = sweep(tmp_path, worker, clock, MODELS, RoundsPolicy(min_rounds=3, max_rounds=3))
    labels = [str(c) for c in cells(*MODELS)]
    assert worker.calls == labels * 3
    for record in records.values():
        latency = record.latency
        assert latency.processes == 3 and len(latency.process_medians) == 3
        assert latency.n == sum(latency.process_n) == len(record.samples) == 120
        assert latency.ci95[0] < latency.median < latency.ci95[1]
    assert summary.processes == 9 and summary.counts["ok"] == 3
    assert not sidecar(tmp_path / "sweep.jsonl", "rounds").exists()  # the journal goes with the last record


def test_cells_that_converge_stop_and_the_budget_goes_to_those_that_do_not(tmp_path):
    clock = FakeClock()
    # enet's processes differ by 10%: it needs more processes than the others, which agree within 0.1%.
    worker = FakeWorker(clock, LATENCY, spread={"enet": 0.10})
    rounds = RoundsPolicy(min_rounds=2, max_rounds=4, target_rel=0.05)
    summary, records = sweep(tmp_path, worker, clock, MODELS, rounds)
    assert worker.calls[:6] == [str(c) for c in cells(*MODELS)] * 2
    assert set(worker.calls[6:]) == {str(cells("enet")[0])}  # the extra rounds all went to enet
    assert records["mobilenetv2"].latency.stop_reason == "ci_target"
    assert records["mobilenetv2"].latency.processes == 2
    assert records["enet"].latency.processes == 4 and records["enet"].latency.stop_reason == "rounds"
    assert summary.stops == {"ci_target": 2, "rounds": 1}


def test_a_cell_whose_next_process_does_not_fit_the_budget_says_so(tmp_path):
    clock = FakeClock()
    worker = FakeWorker(clock, LATENCY, spread={"enet": 0.10, "bisenetv2": 0.10})
    models = ("mobilenetv2", "bisenetv2", "fastscnn", "enet", "sinet")
    # Ten mandatory processes take 100 s; 115 s leaves room for one more process, not two.
    rounds = RoundsPolicy(min_rounds=2, max_rounds=4, target_rel=0.05, budget_s=115.0)
    _, records = sweep(tmp_path, worker, clock, models, rounds)
    assert len(worker.calls) == 11 and worker.calls[-1] == str(cells("bisenetv2")[0])
    assert [records[m].latency.stop_reason for m in models] == [
        "ci_target", "sweep_budget", "ci_target", "sweep_budget", "ci_target"
    ]  # fmt: skip
    assert records["bisenetv2"].latency.processes == 3 and records["enet"].latency.processes == 2


def test_a_failing_process_ends_its_cell_with_a_record_and_the_sweep_goes_on(tmp_path, capsys):
    clock = FakeClock()
    worker = FakeWorker(clock, LATENCY, fail={"bisenetv2"})
    summary, records = sweep(tmp_path, worker, clock, MODELS, RoundsPolicy(min_rounds=2, max_rounds=2))
    assert records["bisenetv2"].status == "error" and records["bisenetv2"].latency is None
    assert worker.calls.count(str(cells("bisenetv2")[0])) == 1
    assert {records[m].status for m in ("mobilenetv2", "enet")} == {"ok"}
    assert summary.counts == {"ok": 2, "error": 1, "skipped": 0}
    assert capsys.readouterr().out == ""  # the failure line goes to stderr


def test_the_journal_keeps_processes_of_an_interrupted_sweep_for_resume(tmp_path):
    clock = FakeClock()
    worker = FakeWorker(clock, LATENCY)

    def interrupted(job, args, timeout_s, plugins):
        if len(worker.calls) == 4:  # round 2 has begun: every cell has one process, one cell two
            raise KeyboardInterrupt
        return worker(job, args, timeout_s, plugins)

    rounds = RoundsPolicy(min_rounds=2, max_rounds=2)
    with pytest.raises(KeyboardInterrupt):
        sweep(tmp_path, interrupted, clock, MODELS, rounds)
    out = tmp_path / "sweep.jsonl"
    assert not out.exists()  # no cell finished its rounds
    journal = [json.loads(line) for line in sidecar(out, "rounds").read_text().splitlines()]
    assert [(e["model"], e["process"]) for e in journal] == [
        ("mobilenetv2", 1), ("bisenetv2", 1), ("enet", 1), ("mobilenetv2", 2)
    ]  # fmt: skip
    assert json.loads(sidecar(out, "run.json").read_text())["runs"][0]["interrupted"] is True

    worker.calls.clear()
    summary, records = sweep(tmp_path, worker, clock, MODELS, rounds, resume=True)
    assert worker.calls == [str(c) for c in cells("bisenetv2", "enet")]  # only the missing processes
    assert summary.reused_processes == 4 and all(r.latency.processes == 2 for r in records.values())
    first = journal[0]["fields"]["latency_ms"]["median"]
    assert records["mobilenetv2"].latency.process_medians[0] == first
    assert len(json.loads(sidecar(out, "run.json").read_text())["runs"]) == 2


def test_journal_entries_of_another_commit_are_not_reused(tmp_path):
    clock = FakeClock()
    worker = FakeWorker(clock, LATENCY)

    def interrupted(job, args, timeout_s, plugins):
        if len(worker.calls) == 1:
            raise KeyboardInterrupt
        return worker(job, args, timeout_s, plugins)

    rounds = RoundsPolicy(min_rounds=2, max_rounds=2)
    with pytest.raises(KeyboardInterrupt):
        sweep(tmp_path, interrupted, clock, MODELS[:1], rounds)
    worker.calls.clear()
    out = tmp_path / "sweep.jsonl"
    summary = run_sweep(
        cells("mobilenetv2"), out, {**ENV, "git_commit": "def"}, PROFILES["quick"].timing, timeout_s=60,
        progress=False, rounds=rounds, job=worker, clock=clock, resume=True,
    )  # fmt: skip
    assert summary.reused_processes == 0 and len(worker.calls) == 2  # both processes measured again


def test_retry_failed_measures_only_cells_whose_newest_record_failed(tmp_path):
    clock = FakeClock()
    rounds = RoundsPolicy(min_rounds=2, max_rounds=2)
    sweep(tmp_path, FakeWorker(clock, LATENCY, fail={"enet"}), clock, MODELS, rounds)
    worker = FakeWorker(clock, LATENCY)
    sweep(tmp_path, worker, clock, MODELS, rounds, resume=True)
    assert worker.calls == []  # resume alone never retries
    summary, _ = sweep(tmp_path, worker, clock, MODELS, rounds, retry_failed=True)
    assert worker.calls == [str(cells("enet")[0])] * 2 and summary.counts["skipped"] == 2
    records = read_records(tmp_path / "sweep.jsonl")
    assert [r.status for r in records if r.model == "enet"] == ["error", "ok"] and len(records) == 4
    assert finished_cells(records, retry_failed=True) == {c.key for c in cells(*MODELS)}


def test_efficiency_is_time_in_timed_forwards_over_wall_time(tmp_path):
    clock = FakeClock()
    worker = FakeWorker(clock, LATENCY)
    summary, records = sweep(tmp_path, worker, clock, MODELS, RoundsPolicy(min_rounds=2, max_rounds=2))
    timed = sum(sum(r.samples) for r in records.values()) / 1000
    assert summary.timed_s == pytest.approx(timed)
    assert summary.wall_s == 60.0 and summary.efficiency == pytest.approx(timed / 60.0)
    assert "sweep efficiency" in summary.line()
    saved = json.loads(sidecar(tmp_path / "sweep.jsonl", "run.json").read_text())["runs"][0]
    assert saved["efficiency"] == pytest.approx(summary.efficiency) and saved["processes"] == 6
    # The untimed rest, summed over the 6 processes: set-up (first forwards in it), warm-up, and the others.
    assert (saved["setup_s"], saved["first_call_s"], saved["warmup_s"]) == pytest.approx((6.0, 2.4, 3.0))
    other = 60.0 - timed - 6.0 - 3.0
    untimed = f"untimed: set-up 6 s (2 s of it first forwards), warm-up 3 s, other {other:.0f} s"
    assert untimed in summary.line()


def test_records_are_typed_bench_records(tmp_path):
    clock = FakeClock()
    _, records = sweep(tmp_path, FakeWorker(clock, LATENCY), clock, MODELS[:1], RoundsPolicy(2, 2))
    record = records["mobilenetv2"]
    assert isinstance(record, BenchRecord) and record.ok
    assert record.fps == pytest.approx(1000 / record.latency.median)
    assert record.get("calibration")["n"] == 6 and record.get("memory")["peak_mb_per_process"] == [10.0] * 2
