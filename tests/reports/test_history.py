"""History you can act on (reports.history): every change judged as `segbench compare` would judge it."""

import pytest

from bench.compare import compare_paths
from reports import history
from tests.reports import fixtures, history_fixtures


@pytest.fixture(scope="module")
def steps():
    by_cell = history.histories(history_fixtures.typed())
    return {(machine, key[0]): cell for (machine, key), cell in by_cell.items()}


def test_each_cell_oldest_first(steps):
    assert set(steps) == {
        ("cpu-test-2c", "bisenetv2"), ("cpu-test-2c", "fastscnn"), ("cpu-test-2c", "enet"),
        ("gpu-test", "bisenetv2"),
    }  # fmt: skip
    assert [
        s.record.env.git_commit[:2] for s in steps[("cpu-test-2c", "bisenetv2")]
    ] == history_fixtures.COMMITS
    assert len(steps[("gpu-test", "bisenetv2")]) == 1


def test_latency_verdicts_follow_compare(steps):
    cell = steps[("cpu-test-2c", "bisenetv2")]
    assert [s.verdict for s in cell] == ["", "ok", "within noise", "within noise", "regression"]
    assert [s.flagged for s in cell] == [False, False, False, False, True]
    assert cell[4].change == pytest.approx(26.0 / 20.1 - 1, abs=1e-3)
    assert cell[2].change == pytest.approx(22.6 / 20.2 - 1, abs=1e-3)  # +12%, but within noise
    assert cell[4].interval == pytest.approx((26.0 * 0.99, 26.0 * 1.01))


def test_structural_changes_are_flagged(steps):
    fast = steps[("cpu-test-2c", "fastscnn")]
    assert [bool(s.structural) for s in fast] == [False, False, False, True, False]
    assert fast[3].flagged and fast[3].structural == ("macs 1,000,000,000 → 1,300,000,000 (+30.00%)",)
    enet = steps[("cpu-test-2c", "enet")]
    assert enet[2].structural == ("status ok → oom (out of memory)",) and enet[2].flagged
    assert enet[2].median is None
    assert not enet[3].flagged  # working again: compare calls it improved, nothing to act on


def test_a_step_is_what_compare_says_of_the_two_runs(tmp_path):
    """The history's verdict on c4 -> c5 is `segbench compare c4.jsonl c5.jsonl`'s."""
    recs = history_fixtures.records()
    at = {day: [r for r in recs if r["env"]["timestamp"].startswith(f"2026-01-0{day}")] for day in (4, 5)}
    base = fixtures.write(tmp_path / "c4.jsonl", [r for r in at[4] if r["model"] == "bisenetv2"])
    new = fixtures.write(tmp_path / "c5.jsonl", [r for r in at[5] if r["model"] == "bisenetv2"])
    rows = [r for r in compare_paths(base, new).rows if r.latency and "cpu" in r.item]
    cell = history.histories(history_fixtures.typed())
    step = next(c for (m, k), c in cell.items() if m == "cpu-test-2c" and k[0] == "bisenetv2")[-1]
    assert [r.verdict for r in rows] == [step.verdict] == ["regression"]


def test_latest_comparison_per_machine():
    recs = history_fixtures.typed(history_fixtures.records()[:9], "old.jsonl")  # days 1-3
    recs += history_fixtures.typed(history_fixtures.records()[9:], "new.jsonl")  # days 4-5 and the GPU
    runs = history.latest_comparisons(recs)
    assert [(r.machine, r.kind, r.base, r.new) for r in runs] == [
        ("cpu-test-2c", "bench", "old.jsonl", "new.jsonl")
    ]
    table = history.verdict_frame(runs[0])
    # Newest record per cell of each file: bisenetv2 26 vs 22.6 (wide) is within noise; fastscnn's MACs
    # changed; enet works again; the regressions come first.
    assert table.iloc[0]["verdict"] == "regression" and table.iloc[0]["metric"] == "macs"
    assert set(table["verdict"]) >= {"regression", "improved", "within noise"}
    assert runs[0].comparison.summary().startswith("3 cells compared, 1 structural/accuracy regressions")


def test_frame_has_interval_and_verdict(steps):
    frame = history.frame(steps[("cpu-test-2c", "bisenetv2")])
    last = frame.iloc[-1]
    assert last["compare_verdict"] == "regression" and bool(last["flagged"])
    assert last["ci95_low_ms"] == pytest.approx(25.74) and last["latency_n"] == 40
    assert last["commit"] == "c500000000" and last["interval"] == "25.74 – 26.26"
