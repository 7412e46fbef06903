"""The machines page lists the self-check files found under the report's folders, verdicts as measured."""

import json

import pytest

from bench.errors import UsageError
from reports import selfcheck
from reports.render import render_report
from tests.reports import fixtures


def timer_doc(machine, passed, ratio):
    return {
        "mode": "timer_agreement", "device": "cpu", "threads": 2, "rounds": 3, "budget_s": 4.0,
        "pass": passed, "env": {"machine": machine, "git_commit": "abcdef1234567"},
        "models": [{"model": fixtures.EVIL, "input_hw": [224, 224], "checks": {"timer": {"ratio": ratio}}}],
    }  # fmt: skip


def repeat_doc(machine, ratio, normalised=None):
    spread = [ratio - 0.1, ratio + 0.1]
    summary = {"median_ratio": ratio, "ratio_p10_p90": spread, "pass": abs(ratio - 1) <= 0.05}
    doc = {"mode": "compare_runs", "machines": [machine], "commits": ["1111111aaaa", "2222222bbbb"],
           "models_paired": 58, **summary, "calibration_normalised": None}  # fmt: skip
    if normalised is not None:
        doc["calibration_normalised"] = {
            "median_ratio": normalised, "ratio_p10_p90": [0.8, 1.2], "pass": abs(normalised - 1) <= 0.05
        }  # fmt: skip
    return doc


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    (root / "cpu-test-2c").mkdir(parents=True)
    fixtures.write(root / "cpu-test-2c" / "run.jsonl")
    checks = root / "selfcheck" / "cpu-test-2c"
    checks.mkdir(parents=True)
    (checks / "timer-agreement-cpu.json").write_text(json.dumps(timer_doc("cpu-test-2c", False, 0.9)))
    (checks / "quick-repeatability.json").write_text(json.dumps(repeat_doc("cpu-test-2c", 0.92, 1.01)))
    baselines = root / "baselines" / "cpu-test-2c"  # other JSON below the folder is not a self-check
    baselines.mkdir(parents=True)
    (baselines / "structure.json").write_text(json.dumps({"models": {}}))
    return root


def test_found_checks_become_rows_with_their_figures(results):
    frame = selfcheck.table(selfcheck.find([results]))
    assert list(frame["verdict"]) == ["FAIL", "FAIL"]
    repeat, timer = frame.iloc[0], frame.iloc[1]
    assert repeat["file"].endswith("quick-repeatability.json")
    assert "0.920 (p10..p90 0.820..1.020)" in repeat["figures"]
    assert "calibration-normalised 1.010 (p10..p90 0.800..1.200): PASS" in repeat["figures"]
    assert timer["figures"].startswith(f"{fixtures.EVIL} 224x224: timer 0.900")
    assert timer["commits"] == "abcdef1234" and "3 rounds x 4.0 s" in timer["check"]


def test_machines_page_shows_them_escaped(results, tmp_path):
    index = render_report([results], tmp_path / "site")
    page = (index.parent / "machines.html").read_text()
    assert page.count('id="selfchecks"') == 1 and "selfchecks.csv" in page  # ids stay unique
    assert fixtures.EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt; 224x224: timer 0.900" in page
    assert (index.parent / "selfchecks.csv").read_text().count("FAIL") == 2


def test_no_checks_says_so(tmp_path):
    fixtures.write(tmp_path / "run.jsonl")
    index = render_report([tmp_path / "run.jsonl"], tmp_path / "site")
    assert "No self-check files" in (index.parent / "machines.html").read_text()
    assert not (index.parent / "selfchecks.csv").exists()


@pytest.mark.parametrize(
    "text, message", [("{not json", "unreadable self-check"), ('{"mode": "vibes"}', "not a self-check"),
                      ('{"mode": "compare_runs"}', "malformed compare_runs")]
)  # fmt: skip
def test_a_bad_check_file_is_named(results, text, message):
    bad = results / "selfcheck" / "cpu-test-2c" / "broken.json"
    bad.write_text(text)
    with pytest.raises(UsageError, match=message) as caught:
        selfcheck.table(selfcheck.find([results]))
    assert "broken.json" in str(caught.value)
