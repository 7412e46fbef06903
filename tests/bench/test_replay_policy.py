"""benchmarks/replay_policy.py: a sweep's own samples replayed under a shorter per-process timing policy."""

import json
from pathlib import Path

import pytest

from bench.measure.latency import TimingPolicy

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "results" / "cpu-amd-epyc-2c" / "20261207T130854Z-quick-cpu.jsonl"


@pytest.fixture(scope="module")
def replay_policy(benchmark_script):
    return benchmark_script("replay_policy")


def record(model: str, processes: list[list[float]], max_time_s: float = 1.0) -> dict:
    """A bench record whose processes stopped on a `max_time_s` budget (no interval target can be met)."""
    policy = TimingPolicy(min_samples=3, min_time_s=0.0, max_time_s=max_time_s, ci_target_rel=1e-9)
    return {
        "kind": "bench",
        "status": "ok",
        "model": model,
        "group": "realtime",
        "input_hw": [360, 480],
        "wall_s": 10.0,
        "latency_samples_ms": [s for p in processes for s in p],
        "latency_ms": {"process_n": [len(p) for p in processes]},
        "conditions": {
            "timing_policy": policy.as_dict(),
            "processes": [{"setup_s": 0.1} for _ in processes],
        },
    }


def test_a_shorter_budget_cuts_each_process_where_it_would_have_stopped(replay_policy):
    records = [record("a", [[200.0, 210.0, 190.0, 205.0, 200.0], [220.0, 215.0, 225.0, 210.0, 230.0]])]
    same, shorter = replay_policy.replay(records, {}), replay_policy.replay(records, {"max_time_s": 0.6})
    assert same[0]["replayed_s"] == same[0]["sampled_s"] == pytest.approx(2.105)
    assert same[0]["longer"] == 0 and same[0]["replayed_rel"] == same[0]["recorded_rel"]
    # 0.6 s: each process stops at its third sample (0.60 s and 0.66 s elapsed)
    assert shorter[0]["replayed_s"] == pytest.approx((600.0 + 660.0) / 1000.0)
    assert shorter[0]["sampled_s"] == same[0]["sampled_s"]


def test_a_longer_budget_keeps_what_was_taken_and_counts_the_processes(replay_policy):
    records = [record("a", [[200.0] * 5, [210.0, 200.0, 190.0, 205.0, 195.0]])]
    rows = replay_policy.replay(records, {"max_time_s": 5.0})
    assert rows[0]["longer"] == 2 and rows[0]["replayed_s"] == rows[0]["sampled_s"]


def test_replaying_a_sweep_under_its_own_policy_gives_its_recorded_intervals(replay_policy):
    records = [json.loads(line) for line in QUICK.read_text().splitlines()]
    rows = replay_policy.replay(records, {})
    by_cell = {(r["model"], tuple(r["input_hw"])): r for r in records if r.get("kind") == "bench"}
    assert len(rows) == len(by_cell) == 60
    for row in rows:  # samples are stored to 4 decimals, so the interval agrees to about 1e-6
        recorded = by_cell[row["model"], tuple(row["input_hw"])]["latency_ms"]["ci_rel"]
        assert row["recorded_rel"] == pytest.approx(recorded, abs=1e-5)
        assert row["replayed_rel"] == row["recorded_rel"]


def test_a_shorter_budget_on_a_real_sweep_saves_time_and_never_adds_any(replay_policy):
    records = [json.loads(line) for line in QUICK.read_text().splitlines()]
    rows = replay_policy.replay(records, {"max_time_s": 2.0})
    assert sum(r["replayed_s"] for r in rows) < 0.8 * sum(r["sampled_s"] for r in rows)
    assert all(r["replayed_s"] <= r["sampled_s"] for r in rows)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("warmup_s=1", "expected NAME=VALUE with NAME one of"),
        ("max_time_s", "expected NAME=VALUE"),
        ("max_time_s=soon", "is not a number"),
        ("max_time_s=-1", "must not be negative"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(replay_policy, capsys, setting, message):
    assert replay_policy.main([str(QUICK), "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_a_file_without_worker_processes_is_one_line(replay_policy, tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text(json.dumps({"kind": "structure"}) + "\n")
    assert replay_policy.main([str(path)]) == 2
    assert "no ok bench records" in capsys.readouterr().err


def test_the_table_gives_each_group_and_the_saving(replay_policy, capsys):
    assert replay_policy.main([str(QUICK), "--set", "max_time_s=3"]) == 0
    out = capsys.readouterr().out
    assert {"semantic", "realtime", "portrait", "backbone", "all"} <= {
        line.split()[0] for line in out.splitlines()
    }
    assert "the cells' wall time 9.8 min ->" in out
