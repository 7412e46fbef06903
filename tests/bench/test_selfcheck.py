"""benchmarks/timer_agreement.py --compare-runs: raw and calibration-normalised repeatability figures."""

import copy
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results" / "cpu-amd-epyc-2c" / "20261202T045210Z-quick-cpu.jsonl"


@pytest.fixture(scope="module")
def selfcheck(benchmark_script):
    return benchmark_script("timer_agreement")


def write_run(path: Path, records: list[dict], latency_factor: float, calibration_factor: float) -> Path:
    with path.open("w") as f:
        for record in records:
            record = copy.deepcopy(record)
            record["latency_ms"]["median"] *= latency_factor
            record["calibration"]["median_ms"] *= calibration_factor
            f.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module")
def records():
    lines = RESULTS.read_text().splitlines()[:6]
    return [json.loads(line) for line in lines]


def test_identical_runs_pass_both_ways(selfcheck, records, tmp_path):
    a = write_run(tmp_path / "a.jsonl", records, 1.0, 1.0)
    b = write_run(tmp_path / "b.jsonl", records, 1.0, 1.0)
    result = selfcheck.run_compare(a, b)
    assert result["pass"] and result["median_ratio"] == 1.0 and result["models_paired"] == 6
    assert result["calibration_normalised"]["pass"]
    assert result["calibration_normalised"]["median_ratio"] == pytest.approx(1.0)


def test_a_uniformly_slower_host_fails_raw_and_passes_normalised(selfcheck, records, tmp_path):
    a = write_run(tmp_path / "a.jsonl", records, 1.0, 1.0)
    b = write_run(tmp_path / "b.jsonl", records, 0.85, 0.85)  # run A's host was ~18% slower throughout
    result = selfcheck.run_compare(a, b)
    assert not result["pass"] and result["median_ratio"] == pytest.approx(0.85)
    assert len(result["models_outside_tolerance"]) == 6
    normalised = result["calibration_normalised"]
    assert normalised["pass"] and normalised["median_ratio"] == pytest.approx(1.0)
    assert all(c["calibration_ratio"] == pytest.approx(0.85) for c in result["cells"])


def test_a_slower_model_is_not_normalised_away(selfcheck, records, tmp_path):
    a = write_run(tmp_path / "a.jsonl", records, 1.0, 1.0)
    b = write_run(tmp_path / "b.jsonl", records, 1.2, 1.0)  # the models slowed, the calibration did not
    result = selfcheck.run_compare(a, b)
    assert not result["pass"] and not result["calibration_normalised"]["pass"]
    assert result["calibration_normalised"]["median_ratio"] == pytest.approx(1.2)


def test_records_without_calibration_give_no_normalised_figure(selfcheck, records, tmp_path):
    bare = [{**r, "calibration": {}} for r in records]
    for path in (tmp_path / "a.jsonl", tmp_path / "b.jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in bare))
    result = selfcheck.run_compare(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    assert result["pass"] and result["calibration_normalised"] is None
    assert all(c["calibration_ratio"] is None for c in result["cells"])


def test_intervals_that_hold_pass_the_calibration_check_and_widths_are_reported(selfcheck, records, tmp_path):
    a = write_run(tmp_path / "a.jsonl", records, 1.0, 1.0)
    b = write_run(tmp_path / "b.jsonl", records, 1.0, 1.0)
    result = selfcheck.run_compare(a, b)
    check = result["interval_calibration"]
    assert check["share"] == 1.0 and check["pass"] and check["cells"] == 6 and check["outside"] == []
    widths = result["interval_widths"]["a"]
    expected = sorted(r["latency_ms"]["ci_rel"] for r in records)
    assert widths["median"] == pytest.approx((expected[2] + expected[3]) / 2)
    assert widths["share_within"] == pytest.approx(sum(w <= 0.05 for w in expected) / 6)
    assert widths["processes_per_cell"] == 1.0  # records from before rounds: one process each
    assert result["sweeps"] == {"a": [], "b": []}  # no run summaries beside these files


def test_medians_outside_the_first_runs_intervals_fail_the_calibration_check(selfcheck, records, tmp_path):
    a = write_run(tmp_path / "a.jsonl", records, 1.0, 1.0)
    b = write_run(tmp_path / "b.jsonl", records, 1.5, 1.0)  # every median 50% higher: outside every interval
    result = selfcheck.run_compare(a, b)
    check = result["interval_calibration"]
    assert check["share"] == 0.0 and not check["pass"] and len(check["outside"]) == 6
    assert selfcheck.main(["--compare-runs", str(a), str(b), "--out", str(tmp_path / "c.json")]) == 1
    assert json.loads((tmp_path / "c.json").read_text())["interval_calibration"]["share"] == 0.0


def test_intervals_calibrated_across_runs_are_checked_too(selfcheck, records, tmp_path):
    from bench.intervals import IntervalCalibration

    a = write_run(tmp_path / "a.jsonl", records, 1.0, 1.0)
    b = write_run(tmp_path / "b.jsonl", records, 1.2, 1.0)  # 20% slower: outside every recorded interval
    folder = tmp_path / "selfcheck" / "cpu-amd-epyc-2c"
    folder.mkdir(parents=True)
    calibration = IntervalCalibration(
        machine="cpu-amd-epyc-2c", device="cpu", tau_run=0.1, confidence=0.95, cells=20, pairs=40,
        inside_recorded=0.5, runs=(a.as_posix(), "elsewhere/other.jsonl"), commits=("abc",), threads=(2,),
        made="2026-12-07T00:00:00+00:00",
    )  # fmt: skip
    (folder / "interval-calibration-cpu.json").write_text(json.dumps(calibration.to_dict()))
    result = selfcheck.run_compare(a, b, tmp_path / "selfcheck")
    assert result["interval_calibration"]["share"] == 0.0
    across = result["interval_calibration_across_runs"]
    assert across["share"] == 1.0 and across["pass"] and across["tau_run"] == 0.1
    assert across["fitted_on_these"] == 1 and across["fitted_on"] == ["a.jsonl", "other.jsonl"]
    widths = result["interval_widths"]
    assert widths["a calibrated"]["median"] > 0.27 > widths["a"]["median"]  # +-1.96 sqrt(2) 10% at least
    assert selfcheck.run_compare(a, b, tmp_path / "nowhere")["interval_calibration_across_runs"] is None
