"""The GPU window's cells, estimates, budget and plan (bench.window), and `segbench gpu --plan` on the CPU."""

import json

import pytest
import torch

import zoo
from bench import window
from bench.cli import main
from bench.conditions import REFERENCE_MODEL
from bench.errors import UsageError
from bench.records import SCHEMA_VERSION, from_dict
from bench.spec import paper_precision
from bench.store import Layout, append_record

H100 = window.gpu_spec("h100-sxm")


@pytest.fixture(scope="module")
def cells():
    return window.window_cells()


def _by_phase(cells, phase):
    return [c.cell for c in cells if c.phase == phase]


def test_eager_phase_is_every_model_at_its_card_size_fp32_then_fp16(cells):
    eager = _by_phase(cells, "eager")
    own = [c for c in eager if c.execution.input_hw == zoo.default_input_hw(c.model)]
    expected = {(m, zoo.default_input_hw(m), p) for m in zoo.list_models() for p in ("fp32", "fp16")}
    assert {(c.model, c.execution.input_hw, c.execution.precision) for c in own} == expected
    for c in eager:
        e = c.execution
        assert (e.device, e.batch, e.backend, e.cudnn_benchmark, e.tf32) == ("cuda", 1, "eager", False, False)
    precisions = [c.execution.precision for c in own]
    assert precisions == sorted(precisions, key=("fp32", "fp16").index)  # every fp32 cell before any fp16
    groups = [zoo.model_group(c.model) for c in own if c.execution.precision == "fp32"]
    assert groups == sorted(groups, key=window.GROUP_ORDER.index)


def test_graph_and_compile_phases_are_the_fast_models_in_their_papers_precision(cells):
    fast = {m for g in ("realtime", "portrait") for m in zoo.list_models(g)}
    for phase, backend in (("cuda_graph", "cuda_graph"), ("compile", "compile")):
        own = [c for c in _by_phase(cells, phase) if c.execution.input_hw == zoo.default_input_hw(c.model)]
        assert {c.model for c in own} == fast
        for c in own:
            assert c.execution.backend == backend and c.execution.batch == 1
            assert c.execution.precision == paper_precision(c.model)
    assert all(c.execution.compile_mode == "default" for c in _by_phase(cells, "compile"))


def test_throughput_phase_is_the_realtime_models_at_512x1024_batch_8_and_32(cells):
    throughput = _by_phase(cells, "throughput")
    assert {(c.model, c.execution.batch) for c in throughput} == {
        (m, b) for m in zoo.list_models("realtime") for b in (8, 32)
    }
    assert {(c.execution.input_hw, c.execution.precision) for c in throughput} == {((512, 1024), "fp16")}


def test_the_reference_model_follows_each_phase_and_no_cell_is_listed_twice(cells):
    keys = [c.cell.key for c in cells]
    assert len(keys) == len(set(keys))
    for phase in window.CELL_PHASES:
        own = _by_phase(cells, phase)
        executions = {c.execution.key for c in own}
        assert executions == {c.execution.key for c in own if c.model == REFERENCE_MODEL}
        extra = [
            i for i, c in enumerate(own) if c.model == REFERENCE_MODEL and c.execution.input_hw != (512, 1024)
        ]
        assert extra == list(range(len(own) - len(extra), len(own)))  # appended after the phase's own cells


def test_a_model_subset_has_no_reference_cells_and_external_models_are_refused():
    cells = window.window_cells(["sinet"], ("eager", "compile"))
    assert [(c.phase, c.cell.model, c.cell.execution.precision) for c in cells] == [
        ("eager", "sinet", "fp32"),
        ("eager", "sinet", "fp16"),
        ("compile", "sinet", "fp32"),
    ]
    assert window.window_cells(["mobilenetv2"], ("compile",)) == []  # a backbone has no compile cell


def test_datasheet_peaks_name_their_source_and_match_nvml_names():
    for spec in window.GPUS.values():
        assert set(spec.tflops) == {"fp32", "tf32", "fp16", "bf16"} and spec.gbps > 0
        assert "NVIDIA" in spec.source and "datasheet" in spec.source
        assert spec.tflops["fp16"] > spec.tflops["tf32"] > spec.tflops["fp32"]
    assert window.gpu_for_name("NVIDIA H100 80GB HBM3").key == "h100-sxm"
    assert window.gpu_for_name("NVIDIA H100 PCIe").key == "h100-pcie"
    assert window.gpu_for_name("NVIDIA H200").key == "h200"
    assert window.gpu_for_name("NVIDIA H200 NVL") is None  # another variant, other peaks
    assert window.gpu_for_name("Tesla T4") is None and window.gpu_for_name(None) is None
    with pytest.raises(UsageError, match="unknown GPU 'a100'"):
        window.gpu_spec("a100")


def test_latency_estimate_is_twice_the_macs_at_the_assumed_share_of_the_peak():
    eff = window.ASSUMED["efficiency"]
    assert window.estimate_latency_ms(1e12, "fp32", "eager", H100) == pytest.approx(
        2e12 / (67.0e12 * eff["fp32"]) * 1e3
    )
    assert window.estimate_latency_ms(1e12, "fp16", "eager", H100) == pytest.approx(
        2e12 / (989.5e12 * eff["fp16"]) * 1e3
    )
    assert window.estimate_latency_ms(1e12, "fp32", "eager", H100, tf32=True) == pytest.approx(
        2e12 / (494.5e12 * eff["tf32"]) * 1e3
    )
    assert window.estimate_latency_ms(1e6, "fp32", "eager", H100) == window.ASSUMED["floor_ms"]["eager"]
    assert (
        window.estimate_latency_ms(1e6, "fp16", "cuda_graph", H100)
        == window.ASSUMED["floor_ms"]["cuda_graph"]
    )


def test_timed_seconds_follow_the_policy():
    policy = window.WINDOW_TIMING
    fast = window.timed_calls_s(0.1, policy)  # 0.1 ms: the minimum times rule
    assert fast == pytest.approx(policy.warmup_s + policy.min_time_s)
    slow = window.timed_calls_s(1000.0, policy)  # 1 s per call: warm-up capped, sampling takes 3 calls
    assert slow == pytest.approx(policy.warmup_max_s + 3.0)


def _results(tmp_path, macs=1_000_000, hw=(64, 96)):
    baseline = {"input_hw": list(hw), "models": {"sinet": {"macs": macs, "params": 100, "params_total": 120}}}
    path = tmp_path / "baselines" / "structure.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(baseline))
    return tmp_path


def test_facts_scale_the_baseline_by_pixels_and_batch(tmp_path):
    facts = window.StructureFacts(_results(tmp_path))
    f = facts.of("sinet", (128, 192), 8)
    assert f.macs == 1_000_000 * 4 * 8 and f.params == 120 and f.source.startswith("baseline 64x96")
    with pytest.raises(UsageError, match="not in the structural baseline"):
        facts.of("bisenetv2", (64, 96), 1)


def test_facts_prefer_a_structure_record_at_the_cells_input(tmp_path):
    root = _results(tmp_path)
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": "structure",
        "model": "sinet",
        "input_hw": [224, 224],
        "batch": 1,
        "digest": "0123456789abcdef",
        "status": "ok",
        "error": None,
        "macs": 555_000_000,
        "params": 90,
        "env": {"machine": "m", "timestamp": "2026-12-01T00:00:00+00:00"},
    }
    append_record(Layout(root).structure("sinet"), from_dict(record))
    facts = window.StructureFacts(root)
    assert facts.of("sinet", (224, 224), 1).macs == 555_000_000
    assert facts.of("sinet", (224, 224), 1).source == "structure record 224x224"
    assert facts.of("sinet", (128, 192), 1).source.startswith("baseline")  # no record at that input


def test_a_cell_estimate_adds_the_assumed_costs(tmp_path):
    facts = window.StructureFacts(_results(tmp_path))
    (cell,) = [
        c.cell for c in window.window_cells(["sinet"], ("eager",)) if c.cell.execution.precision == "fp32"
    ]
    est = window.estimate_cell(cell, facts, H100)
    a = window.ASSUMED
    build = a["build_s"] + a["build_s_per_param"] * 120
    floor = a["floor_ms"]["eager"] / 1e3
    expected = (
        a["worker_start_s"]
        + build
        + floor
        + a["calibration_s"]
        + window.timed_calls_s(a["floor_ms"]["eager"], window.WINDOW_TIMING)
        + a["count_s"]
        + a["count_s_per_param"] * 120
        + 2 * floor  # the reference cell (eager fp32) needs no agreement build
    )
    assert est.seconds == pytest.approx(expected)
    compiled = [c.cell for c in window.window_cells(["sinet"], ("compile",))][0]
    assert window.estimate_cell(compiled, facts, H100).seconds > est.seconds + a["compile_s"] - 1


def test_budget_keeps_each_later_phases_reserve():
    budget = window.Budget(480.0)
    reserves = {p.name: p.reserve_s for p in window.PHASES}
    assert budget.phase_end("compile") == 480.0 - window.PACK_RESERVE_S
    assert budget.phase_end("throughput") == 470.0 - reserves["compile"]
    later = reserves["compile"] + reserves["throughput"] + reserves["cuda_graph"]
    assert budget.phase_end("eager") == 470.0 - later
    cap = budget.cap("eager")
    end = budget.phase_end("eager")
    assert budget.admit("eager", 0.0, 5.0) == cap  # plenty left: the phase's cap
    assert budget.admit("eager", end - 20.0, 5.0) == pytest.approx(20.0)  # less than the cap left
    assert budget.admit("eager", end - 4.0, 5.0) is None  # does not fit: skipped for time


def test_a_reserve_is_at_most_the_phases_work_and_phases_without_work_keep_nothing():
    budget = window.Budget(480.0, {"calibration": 10.0, "eager": 300.0, "compile": 20.0})
    assert budget.reserve == {
        "calibration": 10.0,
        "selfcheck": 0.0,
        "eager": 200.0,
        "cuda_graph": 0.0,
        "throughput": 0.0,
        "compile": 20.0,
    }
    assert budget.active == ("calibration", "eager", "compile")
    assert budget.phase_end("eager") == 450.0 and budget.phase_end("calibration") == 250.0


def test_a_short_deadline_grants_reserves_in_run_order():
    budget = window.Budget(60.0, {"calibration": 10.0, "selfcheck": 40.0, "eager": 100.0})
    assert budget.reserve["calibration"] == 10.0 and budget.reserve["selfcheck"] == 40.0
    assert budget.reserve["eager"] == 0.0  # nothing left of the 50 s
    assert budget.phase_end("calibration") == 10.0 and budget.phase_end("eager") == 50.0
    with pytest.raises(UsageError, match="not more than"):
        window.Budget(10.0)


def _step(seconds):
    cell = window.window_cells(["sinet"], ("eager",))[0].cell
    return window.Step("eager", cell, window.Estimate(1.0, seconds, 1e9, "test"))


def test_plan_skips_what_does_not_fit_and_lets_a_cheaper_later_cell_run():
    rows, budget = window.plan([_step(20.0), _step(30.0), _step(4.0)], deadline_s=40.0, start_s=0.0)
    assert budget.phase_end("eager") == 30.0  # 40 s less the 10 s kept for writing
    assert [r.start_s for r in rows] == [0.0, None, 20.0]
    text = window.format_plan(rows, budget, H100)
    assert "whole list: 3 cells" in text and "within 40 s: 2 cells" in text and "1 skipped for time" in text
    assert H100.source in text


def test_segbench_gpu_plan_prints_cells_and_totals(capsys):
    assert main(["gpu", "--plan", "--models", "sinet,bisenetv2", "--phases", "eager,compile"]) == 0
    out = capsys.readouterr().out
    assert "sinet 224x224 b1 fp16 eager" in out and "bisenetv2 512x1024 b1 fp32 compile" in out
    assert "whole list: 6 cells" in out and "NVIDIA H100 SXM5 80GB" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--phases", "eager,warp"], "unknown phase"),
        (["--models", "smp:Unet:resnet34"], ""),  # not a zoo model (or smp missing): either way refused
        (["--models", "nope"], "nope"),
        (["--deadline", "5"], "--deadline must be more than"),
        (["--gpu", "a100"], "unknown GPU"),
    ],
)
def test_bad_window_options_are_one_line_and_exit_2(argv, message, capsys):
    assert main(["gpu", "--plan", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segbench: error:") and message in err and "\n" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_window_without_cuda_is_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["gpu", "--out", str(tmp_path / "w"), "--models", "sinet"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_plan_leaves_out_cells_measured_before_on_the_same_gpu(tmp_path, capsys):
    from bench.measure.stats import summarize
    from bench.run import Outcome, make_record

    env = {"machine": "nvidia-h100-80gb-hbm3", "timestamp": "2026-12-07T00:00:00+00:00"}
    fp32, fp16 = (c.cell for c in window.window_cells(["sinet"], ("eager",)))
    ok = Outcome("ok", None, {"latency_ms": summarize([1.0, 1.1, 0.9, 1.0]), "params": 1})
    append_record(tmp_path / "a.jsonl", make_record(fp32, ok, env, 1.0))
    append_record(tmp_path / "a.jsonl", make_record(fp16, Outcome("error", "boom", {}), env, 1.0))  # not ok
    other = {**env, "machine": "nvidia-a100-sxm4-80gb"}
    append_record(tmp_path / "b.jsonl", make_record(fp16, ok, other, 1.0))  # another GPU
    argv = ["gpu", "--plan", "--models", "sinet", "--phases", "eager", "--skip-measured", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "whole list: 1 cells" in out and "1 cells left out as measured before" in out
    assert "sinet 224x224 b1 fp16 eager" in out and "sinet 224x224 b1 fp32 eager" not in out
