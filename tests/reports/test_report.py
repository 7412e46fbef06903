import json

import pytest

from bench.records import SCHEMA_VERSION
from reports.render import build_page, render_report
from reports.tables import latest_per_cell, leaderboard, pareto_mask

ENV = {
    "machine": "cpu-test-2c",
    "timestamp": "2026-01-01T00:00:00+00:00",
    "git_commit": "abc",
    "git_dirty": False,
}


def record(model, latency=10.0, macs=1e9, status="ok", error=None, timestamp=None, group="realtime"):
    ok = status == "ok"
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "group": group,
        "input_hw": [360, 480],
        "batch": 1,
        "device": "cpu",
        "precision": "fp32",
        "status": status,
        "error": error,
        "params": 1_000_000 if ok else None,
        "macs": int(macs) if ok else None,
        "latency_ms": {"median": latency, "p10": latency * 0.9, "p90": latency * 1.1, "n": 10}
        if ok
        else None,
        "fps": 1000 / latency if ok else None,
        "peak_mem_mb": 12.5 if ok else None,
        "env": {**ENV, "timestamp": timestamp or ENV["timestamp"]},
        "source_file": "fixture.jsonl",
    }


def fixture_records():
    return [
        record("bisenetv2", 20.0, 25e9),
        record("pphumanseg_lite", 5.0, 0.15e9, group="portrait"),
        record("deeplabv3_r50", 900.0, 100e9, group="semantic"),
        record("mobilenetv2", 30.0, 0.3e9, group="backbone"),  # dominated by pphumanseg_lite
        record("<script>alert(1)</script>", status="error", error="<b>boom</b> & more"),
    ]


def test_pareto_mask_hand_cases():
    assert pareto_mask([1, 2, 3], [3, 2, 1]) == [True, True, True]
    assert pareto_mask([1, 2, 3], [1, 2, 3]) == [True, False, False]
    assert pareto_mask([1, 1], [2, 2]) == [True, True]  # ties dominate nobody
    assert pareto_mask([1, 1, 2], [2, 3, 1]) == [True, False, True]


def test_latest_record_per_cell_wins():
    old = record("bisenetv2", 50.0, timestamp="2026-01-01T00:00:00+00:00")
    new = record("bisenetv2", 20.0, timestamp="2026-02-01T00:00:00+00:00")
    assert latest_per_cell([new, old]) == [new]
    assert latest_per_cell([old, new]) == [new]


def test_leaderboard_puts_paper_numbers_beside_measured():
    board = leaderboard(fixture_records()).set_index("model")
    assert board.loc["mobilenetv2", "paper_params_m"] == 3.47
    assert "tensorflow/models" in board.loc["mobilenetv2", "paper_params_note"]
    assert board.loc["mobilenetv2", "gmacs"] == pytest.approx(0.3)
    assert (
        board.loc["mobilenetv2", "paper_cost_g"] == 0.3
        and board.loc["mobilenetv2", "paper_cost_at"] == "224x224"
    )
    assert board.loc["<script>alert(1)</script>", "status"] == "error"


def test_report_contains_every_model_and_escapes_html():
    page = build_page(fixture_records())
    for name in ("bisenetv2", "pphumanseg_lite", "deeplabv3_r50", "mobilenetv2"):
        assert f">{name}</td>" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>boom</b>" not in page and "&lt;b&gt;boom&lt;/b&gt; &amp; more" in page
    assert page.count("<svg") == 1
    assert "<link" not in page and "<script" not in page and " src=" not in page  # self-contained


def test_report_is_deterministic(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(
        "".join(
            json.dumps({k: v for k, v in r.items() if k != "source_file"}) + "\n" for r in fixture_records()
        )
    )
    index = render_report([path], tmp_path / "a")
    assert index.stat().st_mode & 0o777 == 0o644
    first = index.read_bytes()
    second = render_report([path], tmp_path / "b").read_bytes()
    assert first == second
