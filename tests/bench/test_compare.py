"""Regression rules (bench.compare) on synthetic result sets, and `segbench compare` end to end."""

import copy
import json
import random

import pytest

from bench.cli import main
from bench.compare import compare_entries, entry_from_record, format_markdown, format_table, load_entries
from bench.errors import UsageError
from bench.measure.calibration import WORKLOAD
from bench.measure.stats import summarize
from bench.records import from_dict
from bench.store import append_record


def samples(median_ms: float, n: int = 60, noise: float = 0.02, seed: int = 0) -> list[float]:
    """Latency-like samples: a median with relative Gaussian noise and a slow right tail."""
    rng = random.Random(seed)
    return [median_ms * (1 + abs(rng.gauss(0, noise)) * (3 if i % 10 == 0 else 1)) for i in range(n)]


def calibration(median_ms: float, seed: int = 1) -> dict:
    summary = summarize(samples(median_ms, n=200, noise=0.01, seed=seed))
    return {"workload": WORKLOAD, "median_ms": summary["median"], "ci95": summary["ci95"], "n": 200}


def record(model="bisenetv2", latency=None, machine="cpu-test-2c", threads=2, cal=None, **fields):
    lat = latency if latency is not None else samples(50.0)
    env = {"machine": machine, "timestamp": "2026-12-01T00:00:00+00:00"}
    if cal is not None:
        env["calibration"] = {"workload": cal}
    return {
        "schema_version": 2,
        "kind": "bench",
        "model": model,
        "group": "realtime",
        "input_hw": [360, 480],
        "batch": 1,
        "device": "cpu",
        "precision": "fp32",
        "status": "ok",
        "error": None,
        "params": 3_358_755,
        "params_total": 3_400_000,
        "macs": 290_093_952,
        "output_shape": [1, 19, 360, 480],
        "latency_ms": summarize(lat),
        "latency_samples_ms": lat,
        "fps": 1000 / summarize(lat)["median"],
        "peak_mem_mb": 100.0,
        "conditions": {"threads": threads},
        "env": env,
        **fields,
    }


def compare(base_records, new_records, **kwargs):
    return compare_entries(
        [entry_from_record(from_dict(r)) for r in base_records],
        [entry_from_record(from_dict(r)) for r in new_records],
        **kwargs,
    )


def test_identical_result_sets_pass():
    base = [record(), record("enet", latency=samples(40.0, seed=3))]
    result = compare(base, copy.deepcopy(base))
    assert result.exit_code() == 0 and not result.regressions()
    assert result.compared == 2


def test_a_changed_parameter_count_fails():
    new = record(params=3_358_756)
    result = compare([record()], [new])
    assert result.exit_code() == 1
    (row,) = result.regressions()
    assert row.metric == "params" and row.verdict == "regression" and not row.latency
    # Structure fails even when latency is report-only.
    assert result.exit_code(latency_report_only=True) == 1


@pytest.mark.parametrize("field,value", [("macs", 290_093_953), ("output_shape", [1, 19, 180, 240])])
def test_a_changed_macs_or_output_shape_fails(field, value):
    result = compare([record()], [record(**{field: value})])
    assert [r.metric for r in result.regressions()] == [field]


def test_a_cell_that_now_fails_is_a_regression():
    broken = record(status="error", error="RuntimeError: boom", latency_ms=None)
    result = compare([record()], [broken])
    assert [(r.metric, r.verdict) for r in result.regressions()] == [("status", "regression")]


def test_a_20_percent_slowdown_is_flagged():
    base = samples(50.0)
    result = compare([record(latency=base)], [record(latency=[s * 1.20 for s in samples(50.0, seed=7)])])
    (row,) = result.regressions()
    assert row.latency and row.metric == "latency" and 15 < float(row.change.strip("+%")) < 25
    assert result.exit_code() == 1
    assert result.exit_code(latency_report_only=True) == 0


def test_3_percent_noise_is_not_flagged():
    result = compare(
        [record(latency=samples(50.0))], [record(latency=[s * 1.03 for s in samples(50.0, seed=7)])]
    )
    assert not result.regressions()
    (row,) = [r for r in result.rows if r.latency]
    assert row.verdict == "ok"


def test_a_slowdown_inside_overlapping_intervals_is_noise():
    """Above the threshold, but the samples are so spread that the medians' intervals overlap."""
    base = samples(50.0, n=8, noise=0.6, seed=1)
    new = [s * 1.2 for s in samples(50.0, n=8, noise=0.6, seed=2)]
    result = compare([record(latency=base)], [record(latency=new)], threshold=0.05)
    (row,) = [r for r in result.rows if r.latency]
    assert row.verdict in ("within noise", "ok") and not result.regressions()


def test_calibration_normalisation_removes_a_uniform_machine_slowdown():
    base = record(latency=samples(50.0), cal=calibration(5.0))
    slow_machine = record(latency=[s * 1.3 for s in samples(50.0, seed=7)], cal=calibration(6.5, seed=2))
    without = compare(
        [record(latency=samples(50.0))], [record(latency=[s * 1.3 for s in samples(50.0, seed=7)])]
    )
    assert without.regressions()  # raw latency alone would flag the 30%
    result = compare([base], [slow_machine])
    assert not result.regressions() and result.exit_code() == 0
    (row,) = [r for r in result.rows if r.latency]
    assert row.verdict == "machine slower" and "normalised" in row.change


def test_a_calibration_beside_the_cell_wins_over_the_runs():
    base = record(latency=samples(50.0), cal=calibration(5.0))
    new = record(latency=[s * 1.3 for s in samples(50.0, seed=7)], cal=calibration(5.0))
    assert compare([base], [new]).regressions()  # the run's calibration missed the slow moment
    new["calibration"] = calibration(6.5, seed=2)
    base["calibration"] = calibration(5.0, seed=4)
    assert not compare([base], [new]).regressions()


def test_calibration_keeps_a_real_slowdown():
    base = record(latency=samples(50.0), cal=calibration(5.0))
    new = record(latency=samples(60.0, seed=7), cal=calibration(5.0, seed=2))
    assert [r.metric for r in compare([base], [new]).regressions()] == ["latency"]


def test_a_slowdown_hidden_by_a_faster_machine_is_reported_not_flagged():
    base = record(latency=samples(50.0), cal=calibration(5.0))
    new = record(latency=[s * 1.02 for s in samples(50.0, seed=7)], cal=calibration(3.5, seed=2))
    result = compare([base], [new])
    assert not result.regressions()
    assert [r.verdict for r in result.rows if r.latency] == ["normalised slower"]


def test_normalize_required_without_calibration_is_a_usage_error():
    with pytest.raises(UsageError, match="calibration"):
        compare([record()], [record()], normalize=True)


def test_different_machines_never_flag_latency():
    result = compare([record(machine="cpu-a-2c")], [record(latency=samples(100.0), machine="cpu-b-8c")])
    assert not result.regressions() and result.exit_code() == 0
    (row,) = [r for r in result.rows if r.latency]
    assert row.verdict == "not comparable"
    # Structure is still compared across machines.
    assert compare([record(machine="cpu-a-2c")], [record(machine="cpu-b-8c", params=1)]).regressions()


def test_different_threads_never_flag_latency():
    result = compare([record(threads=2)], [record(latency=samples(100.0), threads=1)])
    assert not result.regressions()
    assert [r.verdict for r in result.rows if r.latency] == ["not comparable"]


def test_missing_cells_are_reported_not_flagged():
    result = compare([record("enet")], [record("bisenetv2")])
    assert result.exit_code() == 0
    assert sorted(r.verdict for r in result.rows) == ["new", "removed"]


def eval_record(miou):
    return {
        "schema_version": 2,
        "kind": "eval",
        "model": "bisenetv2",
        "dataset": "cityscapes",
        "split": "val",
        "protocol": "whole",
        "status": "ok",
        "error": None,
        "miou": miou,
        "weights": {"source": "x.pth"},
        "env": {"machine": "m"},
    }


@pytest.mark.parametrize("new,verdict", [(72.6, "ok"), (72.4, "regression"), (74.0, "improved")])
def test_miou_has_an_absolute_tolerance(new, verdict):
    result = compare([eval_record(73.0)], [eval_record(new)], miou_tol=0.5)
    (row,) = result.rows
    assert row.metric == "miou" and row.verdict == verdict


def test_missing_interval_is_computed_from_the_samples():
    old = record()
    del old["latency_ms"]["ci95"]
    entry = entry_from_record(from_dict(old))
    low, high = entry.latency["ci95"]
    assert low <= entry.latency["median"] <= high and low < high


def pytest_benchmark_json(median_s, machine="cpu-test-2c", data=True, cal=None):
    rounds = samples(median_s, n=30, seed=5)
    stats = {"median": sorted(rounds)[15], "iqr": 0.01 * median_s, "rounds": 30, "mean": median_s}
    if data:
        stats["data"] = rounds
    info = {"node": "host", "segbench_machine": machine, "torch_threads": 1}
    if cal:
        info["calibration"] = cal
    return {
        "machine_info": info,
        "commit_info": {},
        "benchmarks": [
            {"name": "test_forward[enet]", "fullname": "b.py::test_forward[enet]", "stats": stats}
        ],
        "datetime": "2026-12-01T00:00:00",
        "version": "5.1.0",
    }


@pytest.mark.parametrize("data", [True, False])
def test_pytest_benchmark_json_is_accepted(tmp_path, data):
    base, slow, same = tmp_path / "base.json", tmp_path / "slow.json", tmp_path / "same.json"
    base.write_text(json.dumps(pytest_benchmark_json(0.050, data=data)))
    slow.write_text(json.dumps(pytest_benchmark_json(0.065, data=data)))
    same.write_text(json.dumps(pytest_benchmark_json(0.050, data=data)))
    (entry,) = load_entries(base)
    assert entry.kind == "pytest-benchmark" and 45 < entry.latency["median"] < 55  # seconds -> ms
    assert main(["compare", str(base), str(same)]) == 0
    assert main(["compare", str(base), str(slow)]) == 1
    assert main(["compare", str(base), str(slow), "--latency-report-only"]) == 0


def test_pytest_benchmark_calibration_beside_each_benchmark_wins(tmp_path):
    """A uniformly 30% slower machine, seen by the calibration timed beside the benchmark; the session's
    calibration (machine_info), timed at another moment, says nothing changed and is not used."""
    base = pytest_benchmark_json(0.050, cal=calibration(5.0))
    new = pytest_benchmark_json(0.065, cal=calibration(5.0))
    base["benchmarks"][0]["extra_info"] = {"calibration": calibration(5.0)}
    new["benchmarks"][0]["extra_info"] = {"calibration": calibration(6.5, seed=3)}
    (tmp_path / "b.json").write_text(json.dumps(base))
    (tmp_path / "n.json").write_text(json.dumps(new))
    (entry,) = load_entries(tmp_path / "n.json")
    assert entry.calibration["median_ms"] > 6
    assert main(["compare", str(tmp_path / "b.json"), str(tmp_path / "n.json")]) == 0


def test_cli_on_results_files_and_markdown(tmp_path, capsys):
    base, new = tmp_path / "base" / "a.jsonl", tmp_path / "new.jsonl"
    append_record(base, from_dict(record()))
    append_record(new, from_dict(record(params=1)))
    md = tmp_path / "comment.md"
    assert main(["compare", str(tmp_path / "base"), str(new), "--markdown", str(md)]) == 1
    out = capsys.readouterr().out
    assert "params" in out and "regression" in out
    text = md.read_text()
    assert text.startswith("### SegBench comparison: regression") and "| bisenetv2 360x480" in text


def test_table_and_markdown_render_every_verdict():
    result = compare([record("enet"), record()], [record(latency=samples(60.0, seed=7))])
    table, md = format_table(result), format_markdown(result, latency_report_only=True)
    assert "removed" in table and "regression" in table
    assert "regression (reported only)" in md and "no regression" in md


@pytest.mark.parametrize(
    "argv,message",
    [
        (["compare", "missing.jsonl", "missing2.jsonl"], "does not exist"),
        (["compare", "BASE", "NEW", "--latency-threshold", "0"], "threshold"),
        (["compare", "BASE", "NEW", "--miou-tol", "-1"], "--miou-tol"),
        (["compare", "BASE", "PYTEST"], "pytest-benchmark"),
        (["compare", "BASE", "GARBAGE"], "not a SegBench record"),
        (["compare", "BASE", "EMPTY"], "holds no records"),
    ],
)
def test_bad_input_is_a_usage_error(tmp_path, capsys, argv, message):
    append_record(tmp_path / "base.jsonl", from_dict(record()))
    (tmp_path / "pytest.json").write_text(json.dumps(pytest_benchmark_json(0.05)))
    (tmp_path / "garbage.jsonl").write_text("{not json\n")
    paths = {
        "BASE": tmp_path / "base.jsonl",
        "NEW": tmp_path / "base.jsonl",
        "PYTEST": tmp_path / "pytest.json",
    }
    paths["GARBAGE"] = tmp_path / "garbage.jsonl"
    (tmp_path / "empty.jsonl").write_text("")
    paths["EMPTY"] = tmp_path / "empty.jsonl"
    argv = [str(paths.get(a, a)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
