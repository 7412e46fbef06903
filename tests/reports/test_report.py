import csv
import io
import math
from dataclasses import replace

import pytest

from bench.records import from_dict
from reports.ledger import claim_in_gmacs, ledger
from reports.render import build_site, render_report, slug
from reports.tables import (
    REFERENCE_MODEL,
    latest_per_cell,
    leaderboard,
    miou_points,
    model_history,
    pareto_mask,
)
from tests.reports import fixtures
from tests.reports.fixtures import EVIL, bench


@pytest.fixture(scope="module")
def recs():
    return fixtures.rows()


@pytest.fixture(scope="module")
def site():
    return build_site([replace(from_dict(r), source="fixture.jsonl") for r in fixtures.records()])


def test_pareto_mask_hand_cases():
    assert pareto_mask([1, 2, 3], [3, 2, 1]) == [True, True, True]
    assert pareto_mask([1, 2, 3], [1, 2, 3]) == [True, False, False]
    assert pareto_mask([1, 1], [2, 2]) == [True, True]  # ties dominate nobody
    assert pareto_mask([1, 1, 2], [2, 3, 1]) == [True, False, True]


def test_latest_record_per_cell_wins():
    old, new = fixtures.rows(
        [
            bench("bisenetv2", 50.0, timestamp="2026-01-01T00:00:00+00:00"),
            bench("bisenetv2", 20.0, timestamp="2026-02-01T00:00:00+00:00"),
        ]
    )
    assert latest_per_cell([new, old]) == [new]
    assert latest_per_cell([old, new]) == [new]


def test_leaderboard_rows_and_columns(recs):
    board = leaderboard(recs)
    assert len(board) == 9  # 6 cells on the CPU machine, 3 on the GPU machine; the old bisenetv2 is history
    cpu = board[board["machine"] == "cpu-test-2c"].set_index("model")
    assert cpu.loc["bisenetv2", "latency_p50_ms"] == 20.0  # the newest record, not the 22 ms one
    assert cpu.loc["bisenetv2", "gmacs"] == pytest.approx(25.0)
    assert cpu.loc["bisenetv2", "gflops"] == pytest.approx(50.0)  # FLOPs = 2 x MACs
    assert cpu.loc["bisenetv2", "paper_params_m"] == 3.359
    assert cpu.loc["bisenetv2", "paper_miou"] == 72.6
    assert cpu.loc["bisenetv2", "miou"] == 70.1 and cpu.loc["bisenetv2", "miou_dataset"] == "Cityscapes val"
    assert cpu.loc["bisenetv2", "miou_weights"] == "official checkpoint"
    assert cpu.loc["fastscnn", "miou_dataset"] == "CamVid test"
    assert (
        math.isnan(cpu.loc["enet", "miou"]) and cpu.loc["enet", "paper_miou"] != cpu.loc["enet", "paper_miou"]
    )
    # speed relative to the reference model on the same machine and conditions
    assert REFERENCE_MODEL == "bisenetv2"
    assert cpu.loc["fastscnn", "speed_vs_ref"] == pytest.approx(4.0)
    assert cpu.loc["enet", "speed_vs_ref"] == pytest.approx(2.5)
    assert math.isnan(cpu.loc["mobilenetv2", "speed_vs_ref"])  # bisenetv2 not measured at 224x224
    assert cpu.loc[EVIL, "status"] == "error" and cpu.loc[EVIL, "error"] == "<b>boom</b> & more"
    gpu = board[board["machine"] == "gpu-test"].set_index("model")
    assert gpu.loc["fastscnn", "speed_vs_ref"] == pytest.approx(4.0)
    assert gpu.loc["enet", "status"] == "oom"
    assert gpu.loc["bisenetv2", "hardware"] == "NVIDIA Test GPU"
    assert cpu.loc["deeplabv3_r50", "conditions"] == "eager"  # schema-1 record upgraded by the store


def test_frontier_on_fixture_results(recs):
    board = leaderboard(recs)
    cpu = board[(board["machine"] == "cpu-test-2c") & (board["status"] == "ok")]
    front = dict(zip(cpu["model"], pareto_mask(list(cpu["latency_p50_ms"]), list(cpu["gmacs"])), strict=True))
    assert front == {
        "bisenetv2": False, "deeplabv3_r50": False, "enet": False, "fastscnn": True, "mobilenetv2": True,
    }  # fmt: skip
    points = miou_points(board).set_index(["machine", "model"])
    assert points.loc[("cpu-test-2c", "bisenetv2"), "miou_kind"] == "measured"
    assert points.loc[("cpu-test-2c", "deeplabv3_r50"), "miou_kind"] == "paper"
    cpu_points = points.loc["cpu-test-2c"]
    mask = pareto_mask(list(cpu_points["latency_p50_ms"]), [-m for m in cpu_points["miou_value"]])
    assert dict(zip(cpu_points.index, mask, strict=True))["fastscnn"] is True


def test_ledger_rows(recs):
    book = ledger(recs)
    row = book[(book["model"] == "bisenetv2") & (book["metric"] == "params")].iloc[0]
    assert row["ours"] == pytest.approx(1.0) and row["delta_pct"] == pytest.approx((1 / 3.359 - 1) * 100)
    fps = book[(book["model"] == "bisenetv2") & (book["metric"] == "fps")].iloc[0]
    assert fps["ours"] == pytest.approx(250.0)  # the GPU record is the closest condition to a GPU claim
    assert "precision: ours fp16 vs paper fp32" in fps["differs"] and "GTX 1080 Ti" in fps["differs"]
    assert fps["ours_vs_ref"] == pytest.approx(1.0) and fps["paper_vs_ref"] == pytest.approx(1.0)
    miou = book[(book["model"] == "bisenetv2") & (book["metric"] == "miou")].iloc[0]
    assert miou["ours"] == 70.1 and "split: ours val vs paper test" in miou["differs"]
    fast = book[(book["model"] == "fastscnn") & (book["metric"] == "fps")].iloc[0]
    assert fast["ours_vs_ref"] == pytest.approx(4.0) and math.isnan(fast["paper_vs_ref"])
    assert EVIL not in set(book["model"])  # no card: nothing to reproduce


def test_flops_claims_convert_to_gmacs():
    from zoo.card import Reported

    assert claim_in_gmacs(Reported("flops", 10.0, "s", convention="2 x multiply-adds"))[0] == 5.0
    assert claim_in_gmacs(Reported("flops", 10.0, "s", convention="multiply-adds"))[0] == 10.0
    value, note = claim_in_gmacs(Reported("flops", 1.0, "s", convention="multiply-adds / 2^30"))
    assert value == pytest.approx(1.073741824) and "2^30" in note
    assert "unknown" in claim_in_gmacs(Reported("flops", 1.0, "s", convention="not stated"))[1]


def test_history_across_commits(recs):
    history = model_history(recs, "bisenetv2")
    cpu = history[history["machine"] == "cpu-test-2c"]
    assert list(cpu["commit"]) == ["old0001", "abc1234"]
    assert cpu["latency_change_pct"].iloc[1] == pytest.approx((20 / 22 - 1) * 100)


def test_escaping_everywhere(site):
    evil_page = f"models/{slug(EVIL)}.html"
    assert evil_page in site and "/" not in slug(EVIL) and "<" not in slug(EVIL)
    for name, text in site.items():
        if not name.endswith(".html"):
            continue  # CSV files hold the raw text (checked in test_csv_export_matches_table)
        assert "<script>alert" not in text, name
        assert "<b>boom" not in text and "SegBench <i>" not in text, name
        assert text.count("<script") == 1, name  # our own sort/filter script, nothing else
        assert "<link" not in text and " src=" not in text and "@import" not in text, name  # offline
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in site["index.html"]
    assert "&lt;b&gt;boom&lt;/b&gt; &amp; more" in site["index.html"]
    assert "trained by SegBench &lt;i&gt;" in site["index.html"]


def test_pages_and_links(site):
    index = site["index.html"]
    for group in ("backbone", "realtime", "semantic"):
        assert f'href="leaderboard-{group}.csv"' in index
    # CPU: mIoU (Cityscapes) and MACs (realtime) vs latency; GPU: MACs (realtime); params vs mIoU.
    # Sets of one model are named, not plotted.
    assert index.count("<svg") == 4
    assert "Not plotted (fewer than 2 models): mIoU on CamVid, MACs of backbone, MACs of semantic." in index
    assert 'href="models/bisenetv2.html"' in index
    assert '<form id="filters" class="filters" hidden>' in index  # without JS: no dead controls, all rows
    assert 'title="FLOPs = 2 x MACs">GFLOPs<' in index and "status-fail" in index and ">oom<" in index
    model = site["models/bisenetv2.html"]
    for part in ("BiSeNet V2", "history", "old0001", "1980 → 1755", "99.9", "<svg", "bisenetv2-flops.csv"):
        assert part in model, part
    assert "gpu-test" in site["machines.html"] and "fixture.jsonl" in site["machines.html"]
    assert 'href="ledger.csv"' in site["ledger.html"]


def test_csv_export_matches_table(site):
    rows = list(csv.DictReader(io.StringIO(site["leaderboard-realtime.csv"])))
    assert {r["model"] for r in rows} == {"bisenetv2", "fastscnn", "enet", EVIL}
    evil = next(r for r in rows if r["model"] == EVIL)
    assert evil["status"] == "error" and evil["error"] == "<b>boom</b> & more"  # CSV holds the raw text
    fast = next(r for r in rows if r["model"] == "fastscnn" and r["device"] == "cpu")
    assert float(fast["latency_p50_ms"]) == 5.0 and float(fast["gflops"]) == pytest.approx(2.0)
    ledger_rows = list(csv.DictReader(io.StringIO(site["ledger.csv"])))
    assert any(r["model"] == "bisenetv2" and r["metric"] == "flops" for r in ledger_rows)
    history = list(csv.DictReader(io.StringIO(site["models/bisenetv2-history.csv"])))
    assert len(history) == 3


def test_report_is_deterministic_and_atomic(tmp_path):
    path = fixtures.write(tmp_path / "r.jsonl")
    index = render_report([path], tmp_path / "a")
    assert index == tmp_path / "a" / "index.html"
    assert index.stat().st_mode & 0o777 == 0o644
    second = render_report([path], tmp_path / "b")
    first_files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    second_files = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert first_files == second_files and not [p for p in first_files if p.name.endswith(".tmp")]
    for rel in first_files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert second.read_bytes() == index.read_bytes()


def test_folder_skips_foreign_jsonl_but_named_file_must_be_results(tmp_path):
    from bench.errors import UsageError
    from reports.load import load

    fixtures.write(tmp_path / "r.jsonl")
    (tmp_path / "train.log.jsonl").write_text('{"iteration": 1, "loss": 2.5}\n')
    records, skipped = load([tmp_path])
    assert len(records) == len(fixtures.records()) and skipped == [(tmp_path / "train.log.jsonl").as_posix()]
    with pytest.raises(UsageError, match="not a SegBench record"):
        load([tmp_path / "train.log.jsonl"])
    with pytest.raises(UsageError, match="does not exist"):
        load([tmp_path / "missing.jsonl"])
