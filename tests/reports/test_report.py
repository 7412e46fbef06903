import csv
import io
import json
import math

import pandas as pd
import pytest

from bench.conditions import Execution
from bench.records import latest_per_cell
from reports.details import hardware_state, roofline_fraction
from reports.ledger import ledger, summary, trained_here
from reports.render import build_site, render_report, slug
from reports.tables import (
    REFERENCE_MODEL,
    conditions_text,
    interval_text,
    leaderboard,
    model_history,
    pareto_mask,
    pareto_sections,
)
from tests.reports import fixtures
from tests.reports.fixtures import EVIL, bench, evaluation


@pytest.fixture(scope="module")
def recs():
    return fixtures.rows()


@pytest.fixture(scope="module")
def site(recs):
    return build_site(recs)


@pytest.fixture(scope="module")
def book(recs):
    return ledger(recs)


def claim(book, model, metric, value=None):
    rows = book[(book["model"] == model) & (book["metric"] == metric)]
    if value is not None:
        rows = rows[rows["paper"] == value]
    assert len(rows) == 1, rows
    return rows.iloc[0]


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
    assert len(board) == 12  # 9 cells on the CPU machine, 3 on the GPU machine; the old bisenetv2 is history
    cpu = board[(board["machine"] == "cpu-test-2c") & (board["input"] != "1024x2048")].set_index("model")
    assert cpu.loc["bisenetv2", "latency_p50_ms"] == 20.0  # the newest record, not the 22 ms one
    assert cpu.loc["bisenetv2", "gmacs"] == pytest.approx(25.0)
    assert cpu.loc["bisenetv2", "gflops"] == pytest.approx(50.0)  # FLOPs = 2 x MACs
    assert math.isnan(cpu.loc["bisenetv2", "paper_params_m"])  # the card's params are another variant's
    assert cpu.loc["bisenetv2", "paper_miou"] == 72.6
    assert cpu.loc["bisenetv2", "miou"] == 70.1 and cpu.loc["bisenetv2", "miou_dataset"] == "Cityscapes val"
    assert cpu.loc["bisenetv2", "miou_weights"] == "official checkpoint"
    assert cpu.loc["fastscnn", "miou_dataset"] == "CamVid test"
    assert (
        math.isnan(cpu.loc["enet", "miou"]) and cpu.loc["enet", "paper_miou"] != cpu.loc["enet", "paper_miou"]
    )
    # a ResNet-101 figure on the ResNet-50 entry is never attached to its row
    assert math.isnan(cpu.loc["deeplabv3_r50", "paper_miou"])
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


def test_every_latency_carries_its_interval_and_n_and_a_missed_target_is_flagged(recs):
    board = leaderboard(recs)
    cpu = board[(board["machine"] == "cpu-test-2c") & (board["input"] == "360x480")].set_index("model")
    assert cpu.loc["bisenetv2", "latency"] == "20.0 ± 1.5 ms, n=12"  # 19.0..21.5: rounded to the interval
    assert cpu.loc["bisenetv2", "latency_flag"] == "missed its interval target, stopped by time budget"
    assert (
        cpu.loc["fastscnn", "latency"] == "5.00 ms, n=10, no interval"
        and cpu.loc["fastscnn", "latency_flag"] == ""
    )
    big = board[board["input"] == "1024x2048"].set_index("model")
    assert big.loc["hrnetv2_w18_small", "latency"] == "2,000 ± 12 ms, n=10"
    page = build_site(recs)["index.html"]
    assert "⚑ 20.0 ± 1.5 ms, n=12" in page and 'title="missed its interval target' in page


@pytest.mark.parametrize(
    "value, interval, n, text",
    [
        (1100.4, (840.0, 1360.0), 3, "1,100 ± 260 ms, n=3"),
        (5.1234, (5.09, 5.154), 400, "5.123 ± 0.033 ms, n=400"),
        (36.0, (35.2, 36.3), 9, "36.00 ± 0.80 ms, n=9"),
        (12.0, (12.0, 12.0), 5, "12.00 ± 0 ms, n=5"),
    ],
)
def test_interval_text_rounds_to_what_the_interval_supports(value, interval, n, text):
    assert interval_text(value, interval, n, "ms") == text


def test_conditions_text_names_each_axis_that_is_on_by_its_label():
    cpu = Execution(input_hw=(8, 8), channels_last=True)
    assert conditions_text(cpu) == "eager, channels_last"
    cuda = Execution(
        input_hw=(8, 8),
        device="cuda",
        backend="compile",
        compile_mode="max-autotune",
        cudnn_benchmark=True,
        tf32=False,
        cudnn_deterministic=True,
    )
    assert conditions_text(cuda) == "compile(max-autotune), cudnn.benchmark, cudnn.deterministic"


def test_self_checks_sit_beside_each_machines_rows(recs):
    checks = [
        ("a.json", {"mode": "timer_agreement", "pass": False, "env": {"machine": "cpu-test-2c"}}),
        ("b.json", {"mode": "compare_runs", "pass": True, "machines": ["cpu-test-2c"]}),
    ]
    board = leaderboard(recs, checks).set_index("machine")
    assert set(board.loc["cpu-test-2c", "self_checks"]) == {"repeatability PASS; timer agreement FAIL"}
    assert set(board.loc["gpu-test", "self_checks"]) == {"none found"}


# ------------------------------------------------------------------------------------------ Pareto sets


def test_no_pareto_set_mixes_conditions(recs):
    sections = pareto_sections(recs)
    sets = [s for section in sections for s in section["sets"]]
    assert sets
    for p in sets:
        rows = p.rows
        assert rows["speed"].map(lambda c: c is None).all() or rows["speed"].nunique() == 1, p.title
        assert rows["accuracy"].map(str).nunique() == 1, p.title  # one kind of accuracy (or MACs)
        assert rows["kind"].nunique() == 1, p.title  # measured and paper accuracy never share a frontier
        assert rows["model"].is_unique, p.title
        speeds = {c for c in rows["speed"] if c is not None}
        assert len({c.execution.input_hw for c in speeds}) <= 1 and len({c.machine for c in speeds}) <= 1


def test_mixed_resolutions_are_never_one_frontier(recs):
    sections = {s["title"]: s for s in pareto_sections(recs)}
    titles = sorted(sections)
    cpu = [t for t in titles if t.startswith("cpu-test-2c")]
    assert [t.split(" · ")[1].split()[0] for t in cpu] == ["1024x2048", "224x224", "256x512", "360x480"]
    at_256 = next(sections[t] for t in cpu if "256x512" in t)
    # hrnetv2_w18_small at 256x512 no longer anchors a Cityscapes mIoU frontier of 1024x2048 claims
    assert not any("mIoU" in p.title for p in at_256["sets"])
    assert [p.title for p in at_256["sets"]] == ["MACs vs latency · semantic"]
    big = next(sections[t] for t in cpu if "1024x2048" in t)
    paper = next(p for p in big["sets"] if p.title.startswith("paper mIoU"))
    assert paper.title == "paper mIoU (Cityscapes val, whole) vs latency"
    assert set(paper.rows["model"]) == {"hrnetv2_w18_small", "ocrnet_r101"}
    assert set(paper.rows["kind"]) == {"paper"}  # drawn hollow, labelled the paper's
    assert dict(zip(paper.rows["model"], paper.rows["y"], strict=True)) == {
        "hrnetv2_w18_small": 70.3, "ocrnet_r101": 79.63,
    }  # fmt: skip


def test_measured_accuracy_beside_latency_at_its_own_input(recs):
    more = fixtures.rows(
        [evaluation("enet", 40.0, dataset="camvid", split="test", source="trained here", at=(360, 480)),
         evaluation("fastscnn", 50.0, dataset="camvid", split="test", source="trained here", at=(360, 480))]
    )  # fmt: skip
    sections = {s["title"]: s for s in pareto_sections([*recs, *more])}
    at_360 = next(s for t, s in sections.items() if t.startswith("cpu-test-2c · 360x480"))
    measured = next(p for p in at_360["sets"] if p.title.startswith("measured mIoU"))
    assert measured.title == "measured mIoU (CamVid test, whole, weights trained here) vs latency"
    assert set(measured.rows["model"]) == {"enet", "fastscnn"} and set(measured.rows["kind"]) == {"measured"}
    # the 1024x2048 Cityscapes multi-scale evaluation has no latency at that input on this machine's
    # 360x480 section, and a single model's set is named, not drawn
    assert "measured mIoU (CamVid test, whole, weights authors)" in " ".join(
        sum((s["left_out"] for s in sections.values()), [])
    )


# ------------------------------------------------------------------------------------------- the ledger


def test_every_claim_gets_exactly_one_verdict(book):
    from bench.comparability import VERDICTS
    from reports.tables import all_cards

    assert len(book) == sum(len(c.reported) for c in all_cards().values())
    assert set(book["verdict"]) <= set(VERDICTS)
    counts = summary(book).set_index("metric")
    assert counts.loc["all", "claims"] == len(book)
    assert (counts[list(VERDICTS)].sum(axis=1) == counts["claims"]).all()


def test_ledger_verdicts_on_the_fixture_defects(book):
    # a TensorRT GPU FPS claim: our CPU and our (other) GPU records are not comparable, never a percentage
    fps = claim(book, "bisenetv2", "fps")
    assert fps["verdict"] == "not comparable" and pd.isna(fps["delta"]) and fps["delta_text"] == ""
    assert "backend: ours eager vs paper tensorrt 5.1.5" in fps["differs"]
    assert "device model: ours Test CPU vs paper GTX 1080 Ti" in fps["differs"]  # the nearest: the CPU
    assert fps["command"] == "" and "no tensorrt 5.1.5 backend" in fps["note"]
    # a cross-dataset and a multi-scale evaluation do not answer a single-scale Cityscapes val claim
    miou = claim(book, "hrnetv2_w18_small", "miou")
    assert miou["verdict"] == "not comparable" and pd.isna(miou["delta"])
    assert miou["differs"] == "protocol: ours msflip(scales=0.75,1,1.25, flip) vs paper whole"
    assert miou["command"].startswith(
        "segbench eval --model hrnetv2_w18_small --dataset cityscapes --split val"
    )
    # a 1024x2048 FLOPs claim: MACs counted at 256x512 only, never scaled
    flops = claim(book, "hrnetv2_w18_small", "flops")
    assert flops["verdict"] == "not comparable" and pd.isna(flops["delta"])
    assert flops["command"] == "segbench structure --models hrnetv2_w18_small --resolutions 1024x2048"
    assert flops["paper_unit_text"] == "G; compared as 33.3934 GMACs"  # 31.1 x 2^30 multiply-adds
    # ... and one counted at its own input is compared: 21.15 G multiply-adds against our 21.0
    bisenet = claim(book, "bisenetv2", "flops")
    assert bisenet["verdict"] == "reproduced" and bisenet["delta_text"] == "-0.71%"
    assert bisenet["ours_text"] == "21.0000 GMACs (exact count)"
    # ResNet-101 claims on the ResNet-50 entry: listed apart, never compared
    r50 = book[(book["model"] == "deeplabv3_r50") & (book["metric"] == "miou")]
    assert len(r50) == 7 and set(r50["verdict"]) == {"not comparable"} and (r50["variant"] != "").all()
    assert r50["ours"].isna().all()
    # params: the structure record's count, against the card's, at the card's precision
    params = claim(book, "hrnetv2_w18_small", "params")
    assert params["verdict"] == "reproduced" and params["ours_text"] == "1,540,820 params (exact count)"
    enet = claim(book, "enet", "params")  # 1,000,000 (fixture) against 0.37 M
    assert enet["verdict"] == "differs" and enet["delta_text"] == "+630,000 params (+170.27%)"
    assert claim(book, "mobilenetv2", "top1")["verdict"] == "not measured"


def test_trained_here_is_its_own_section(tmp_path):
    results = tmp_path / "results"
    (results / "eval" / "m").mkdir(parents=True)
    (results / "trained").mkdir()
    (results / "trained" / "enet_camvid.pt.json").write_text(
        json.dumps(
            {
                "iterations_done": 320,
                "iterations_planned": 320,
                "elapsed_s": 2444,
                "device": "cpu",
                "threads": 1,
                "split": "trainval",
                "recipe": {
                    "batch_size": 8,
                    "crop_hw": [256, 256],
                    "optimizer": "adam",
                    "lr": 0.0005,
                    "schedule": "constant",
                    "source": "ENet paper",
                },
            }
        )  # fmt: skip
    )
    record = {**evaluation("enet", 17.66, dataset="camvid", split="test", source="trained here")}
    record["weights"] = {"source": "trained here", "path": "/elsewhere/enet_camvid.pt"}
    fixtures.write(results / "eval" / "m" / "e.jsonl", [record])
    from reports.load import load

    records, _ = load([results])
    frame = trained_here(records)
    assert len(frame) == 1 and frame.iloc[0]["miou"] == 17.66
    assert (
        frame.iloc[0]["budget"]
        == "320 of 320 iterations x batch 8, crop 256x256; 2444 s wall on cpu, 1 thread(s); split trainval"
    )
    assert frame.iloc[0]["recipe"] == "adam lr 0.0005, constant (ENet paper)"
    book = ledger(records)
    assert set(book[book["model"] == "enet"]["verdict"]) == {"not measured", "not comparable"}  # no paper


def test_roofline_fractions_above_one_are_never_shown():
    assert roofline_fraction({"fraction": 0.4, "achieved_tflops": 0.1, "peak_tflops": 0.25}) == (0.4, "")
    fraction, note = roofline_fraction({"fraction": 3.03, "achieved_tflops": 0.58, "peak_tflops": 0.19})
    assert (
        fraction is None and note == "n/a: peak too low (achieved 0.58 TFLOP/s above the measured peak 0.19)"
    )
    fraction, note = roofline_fraction({"fraction": None, "fraction_note": "peak measured with 2 threads"})
    assert fraction is None and note == "n/a: peak measured with 2 threads"
    recs = fixtures.rows(
        [bench("bisenetv2", 1.0, roofline={"achieved_tflops": 0.5, "peak_tflops": 0.2, "fraction": 2.5})]
    )
    row = hardware_state(recs, "bisenetv2").iloc[0]
    assert row["roofline_fraction"] is None and row["roofline_note"].startswith("n/a: peak too low")


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
    # CPU 1024x2048: paper mIoU (Cityscapes val, whole) and MACs (semantic) vs latency; CPU 256x512 and
    # 360x480: MACs (semantic; realtime); GPU: MACs (realtime); paper mIoU vs params. Sets of one model are
    # named, not plotted.
    assert index.count("<svg") == 6
    assert index.count("<h3>") == 6 and "<h3>gpu-test · 360x480 b1 cuda/fp16 · NVIDIA Test GPU" in index
    assert "Not plotted (fewer than 2 models): MACs of backbone." in index
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
