"""Intervals calibrated across runs (bench.intervals): the run-to-run spread fitted from repeated sweeps, the
widened intervals, and their use by `segbench compare`, `segbench calibrate-intervals` and the report."""

import json
import math

import pytest

from bench import intervals
from bench.cli import main
from bench.compare import compare_paths
from bench.errors import UsageError
from bench.records import from_dict
from reports.render import render_report
from tests.reports import fixtures


def run(offsets: dict[str, float], half_rel=0.02, machine="cpu-test-2c", device="cpu", **extra) -> list:
    """One sweep's records: model -> median latency (ms), each with a symmetric interval of +-half_rel."""
    return [
        from_dict(fixtures.bench(model, latency=median, ci=(median * (1 - half_rel), median * (1 + half_rel)),
                                 machine=machine, device=device, **extra))
        for model, median in offsets.items()
    ]  # fmt: skip


MODELS = [f"model{i:02d}" for i in range(20)]


def calibration(tau_run=0.1, machine="cpu-test-2c", device="cpu") -> intervals.IntervalCalibration:
    return intervals.IntervalCalibration(
        machine=machine, device=device, tau_run=tau_run, confidence=0.95, cells=20, pairs=40,
        inside_recorded=0.5, runs=("a.jsonl", "b.jsonl"), commits=("abc1234",), threads=(2,),
        made="2026-12-07T00:00:00+00:00",
    )  # fmt: skip


def test_the_spread_a_pair_needs_widens_its_interval_exactly_to_the_other_median():
    median, ci = 100.0, (98.0, 103.0)
    assert intervals.needed_spread(median, ci, 102.5, 0.95) == 0.0  # inside already
    for other in (80.0, 110.0):
        tau = intervals.needed_spread(median, ci, other, 0.95)
        low, high = intervals.widen(median, ci, tau, 0.95)
        assert math.isclose(low if other < median else high, other, rel_tol=1e-12)
    assert intervals.widen(median, ci, 0.0, 0.95) == ci  # no spread: the recorded interval
    assert intervals.widen(median, ci, 10.0, 0.95)[0] == 0.0  # never below zero


def test_fit_takes_the_order_statistic_that_holds_the_confidence():
    a = run({m: 100.0 for m in MODELS})
    # 18 cells repeat within their +-2% intervals, two move by +10% and +30%.
    moved = {m: 100.0 for m in MODELS} | {MODELS[0]: 110.0, MODELS[1]: 130.0}
    b = run(moved)
    fitted = intervals.fit({"a.jsonl": a, "b.jsonl": b}, confidence=0.95)
    assert (fitted.cells, fitted.pairs, fitted.machine, fitted.device) == (20, 40, "cpu-test-2c", "cpu")
    assert fitted.inside_recorded == 36 / 40
    # The 38th smallest of the 40 needed spreads: the +10% cell's (in either direction), not the +30% one's.
    needed = sorted(
        intervals.needed_spread(x.latency.median, x.latency.ci95, y.latency.median, 0.95)
        for first, second in ((a, b), (b, a))
        for x, y in zip(first, second, strict=True)
    )
    assert fitted.tau_run == needed[37] and 0 < fitted.tau_run < needed[-1]
    inside = sum(
        intervals.widen(x.latency.median, x.latency.ci95, fitted.tau_run, 0.95)[0]
        <= y.latency.median
        <= intervals.widen(x.latency.median, x.latency.ci95, fitted.tau_run, 0.95)[1]
        for first, second in ((a, b), (b, a))
        for x, y in zip(first, second, strict=True)
    )
    assert inside / 40 >= 0.95


@pytest.mark.parametrize(
    "runs, message",
    [
        (lambda: {"a": run({m: 1.0 for m in MODELS})}, "two or more sweeps"),
        (lambda: {"a": run({m: 1.0 for m in MODELS}), "b": run({m: 1.0 for m in MODELS}, machine="other")},
         "one machine and device"),
        (lambda: {"a": run({m: 1.0 for m in MODELS[:5]}), "b": run({m: 1.0 for m in MODELS[:5]})},
         "share 5 measured cells"),
        (lambda: {"a": run({m: 1.0 for m in MODELS}), "b": [from_dict(fixtures.bench("x", status="error"))]},
         "no ok bench record"),
    ],
)  # fmt: skip
def test_fit_refuses_what_cannot_calibrate_a_machine(runs, message):
    with pytest.raises(UsageError, match=message):
        intervals.fit(runs())


def test_a_record_is_calibrated_only_by_its_own_machine_and_device():
    (record,) = run({"bisenetv2": 100.0}, conditions={"rounds_policy": {"target_rel": 0.05}})
    calibrations = {("cpu-test-2c", "cpu"): calibration(0.1)}
    widened = intervals.calibrated(record, calibrations)
    low, high = widened.latency.ci95
    expected = math.sqrt(2.0**2 + (1.959963984540054 * math.sqrt(2) * 0.1 * 100) ** 2)
    assert math.isclose(high - 100.0, expected, rel_tol=1e-9) and math.isclose(100.0 - low, expected)
    assert math.isclose(widened.latency.ci_rel, expected / 100.0)
    assert widened.latency.target_met is False  # +-28% misses the sweep's 5% target
    assert widened.latency.extra["calibration"]["recorded_ci95"] == [98.0, 102.0]
    assert "calibrated across runs" in widened.latency.ci_method
    assert intervals.calibrated(widened, calibrations) is widened  # never widened twice
    assert record.latency.ci95 == (98.0, 102.0)  # the record read is not changed
    for other in (
        {("cpu-other-2c", "cpu"): calibration(0.1)},
        {("cpu-test-2c", "cuda"): calibration(0.1)},
        {},
    ):
        assert intervals.calibrated(record, other) is record


def test_calibration_files_round_trip_and_bad_ones_are_named(tmp_path):
    folder = tmp_path / "selfcheck"
    (folder / "cpu-test-2c").mkdir(parents=True)
    fitted = calibration(0.07)
    (folder / "cpu-test-2c" / "interval-calibration-cpu.json").write_text(json.dumps(fitted.to_dict()))
    assert intervals.load(folder) == {("cpu-test-2c", "cpu"): fitted}
    assert intervals.load(tmp_path / "absent") == {} and intervals.load(None) == {}
    bad = folder / "cpu-test-2c" / "interval-calibration-cuda.json"
    broken = (
        ("{oops", "unreadable interval calibration"),
        ('{"mode": "interval_calibration"}', "malformed interval calibration"),
        ("[1, 2]", "not an interval calibration"),
        (json.dumps({**fitted.to_dict(), "tau_run": -1}), "tau_run >= 0"),
        (json.dumps({**fitted.to_dict(), "confidence": "high"}), "0 < confidence < 1"),
    )
    for text, message in broken:
        bad.write_text(text)
        with pytest.raises(UsageError, match=message) as caught:
            intervals.load(folder)
        assert "interval-calibration-cuda.json" in str(caught.value)


def write_run(path, medians, half_rel=0.02, timestamp="2026-01-01T00:00:00+00:00"):
    records = [
        fixtures.bench(model, latency=m, ci=(m * (1 - half_rel), m * (1 + half_rel)), timestamp=timestamp)
        for model, m in medians.items()
    ]
    return fixtures.write(path, records)


def test_compare_judges_a_slowdown_against_the_calibrated_intervals(tmp_path):
    base = write_run(tmp_path / "base.jsonl", {"bisenetv2": 100.0})
    new = write_run(tmp_path / "new.jsonl", {"bisenetv2": 120.0}, timestamp="2026-01-02T00:00:00+00:00")
    (row,) = [r for r in compare_paths(base, new).rows if r.latency]
    assert row.regression  # +20% with disjoint +-2% intervals
    calibrations = {("cpu-test-2c", "cpu"): calibration(0.1)}
    comparison = compare_paths(base, new, calibrations=calibrations)
    (row,) = [r for r in comparison.rows if r.latency]
    assert not row.regression and row.verdict == "within noise"  # +-28% across runs holds +20%
    assert comparison.settings["calibrations"] == [calibration(0.1).describe()]


def test_calibrate_intervals_writes_the_machines_file_and_compare_reads_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = write_run(tmp_path / "a.jsonl", {m: 100.0 for m in MODELS})
    b = write_run(tmp_path / "b.jsonl", {m: 125.0 if m in MODELS[:4] else 100.0 for m in MODELS})
    assert main(["calibrate-intervals", str(a), str(b), "--results", "results"]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "results" / "selfcheck" / "cpu-test-2c" / "interval-calibration-cpu.json"
    assert str(written.relative_to(tmp_path)) in out and "80% of 40 pairs inside the recorded 95%" in out
    fitted = intervals.load(tmp_path / "results" / "selfcheck")[("cpu-test-2c", "cpu")]
    assert fitted.runs == (a.as_posix(), b.as_posix()) and fitted.inside_recorded == 32 / 40
    assert main(["compare", str(a), str(b)]) == 0  # the default --calibrations: results/selfcheck
    assert "intervals calibrated across runs: run-to-run spread" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--calibrations", "nowhere"]) == 1  # as recorded: +25% flagged


@pytest.mark.parametrize(
    "args, message",
    [(["a.jsonl"], "two or more results files"), (["a.jsonl", "missing.jsonl"], "does not exist"),
     (["a.jsonl", "a.jsonl", "--confidence", "1.5"], "between 0 and 1")],
)  # fmt: skip
def test_calibrate_intervals_bad_input_is_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / "a.jsonl", {m: 100.0 for m in MODELS})
    assert main(["calibrate-intervals", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_report_shows_calibrated_intervals_and_the_spread_it_used(tmp_path):
    root = tmp_path / "results"
    (root / "cpu-test-2c").mkdir(parents=True)
    write_run(root / "cpu-test-2c" / "run.jsonl", {"bisenetv2": 100.0})
    site = render_report([root], tmp_path / "plain").parent
    assert "± 2.0 ms, n=10" in (site / "index.html").read_text()
    (root / "selfcheck" / "cpu-test-2c").mkdir(parents=True)
    path = root / "selfcheck" / "cpu-test-2c" / "interval-calibration-cpu.json"
    path.write_text(json.dumps(calibration(0.1).to_dict()))
    site = render_report([root], tmp_path / "calibrated").parent
    index = (site / "index.html").read_text()
    assert "± 28 ms, n=10" in index and "± 2.0 ms" not in index
    assert "intervals calibrated across runs (10.0% run-to-run)" in index
    machines = (site / "machines.html").read_text()
    assert "tau_run 10.0% over 20 cells" in machines and "measured" in machines


def test_results_as_data_carry_the_calibrated_interval_and_its_spread(tmp_path):
    from bench.frame import load_results

    root = tmp_path / "results"
    (root / "cpu-test-2c").mkdir(parents=True)
    run_file = write_run(root / "cpu-test-2c" / "run.jsonl", {"bisenetv2": 100.0})
    plain = load_results(root)
    assert (plain["latency_ci_low"][0], plain["latency_ci_high"][0]) == (98.0, 102.0)
    assert plain["latency_run_spread"].isna().all()
    (root / "selfcheck" / "cpu-test-2c").mkdir(parents=True)
    path = root / "selfcheck" / "cpu-test-2c" / "interval-calibration-cpu.json"
    path.write_text(json.dumps(calibration(0.1).to_dict()))
    frame = load_results(root)
    assert frame["latency_run_spread"][0] == 0.1 and frame["latency_ci_high"][0] == pytest.approx(
        127.79, 1e-3
    )
    assert (
        load_results(run_file)["latency_run_spread"].isna().all()
    )  # a file alone: no folder, no calibration
