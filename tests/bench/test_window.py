"""The GPU window's cells, GPUs, timing policy and CPUs (bench.window)."""

import pytest

import zoo
from bench import window
from bench.conditions import REFERENCE_MODEL
from bench.errors import UsageError
from bench.spec import paper_precision


@pytest.fixture(scope="module")
def cells():
    return window.window_cells()


def _by_phase(cells, phase):
    return [c.cell for c in cells if c.phase == phase]


def test_eager_phase_is_every_model_at_its_card_size_fp32_then_fp16(cells):
    eager = _by_phase(cells, "eager")
    own = [c for c in eager if c.execution.input_hw == zoo.default_input_hw(c.model)]
    expected = {(m, zoo.default_input_hw(m), p) for m in zoo.survey_models() for p in ("fp32", "fp16")}
    assert {(c.model, c.execution.input_hw, c.execution.precision) for c in own} == expected
    for c in eager:
        e = c.execution
        assert (e.device, e.batch, e.backend, e.cudnn_benchmark, e.tf32) == ("cuda", 1, "eager", False, False)
    precisions = [c.execution.precision for c in own]
    assert precisions == sorted(precisions, key=("fp32", "fp16").index)  # every fp32 cell before any fp16
    groups = [zoo.model_group(c.model) for c in own if c.execution.precision == "fp32"]
    assert groups == sorted(groups, key=window.GROUP_ORDER.index)


def test_graph_and_compile_phases_are_the_fast_models_in_their_papers_precision(cells):
    fast = {m for g in ("realtime", "portrait") for m in zoo.survey_models(g)}
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
        (m, b) for m in zoo.survey_models("realtime") for b in (8, 32)
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


def test_the_interference_check_retimes_launch_bound_cells_of_the_window(cells):
    again = window.interference_cells(cells)
    assert [window.short_label(c.cell) for c in again] == [
        "bisenetv2 512x1024 b1 fp32 eager",
        "sinet 224x224 b1 fp32 eager",
        "mobilenetv3_small 224x224 b1 fp32 eager",
    ]
    assert window.interference_cells(window.window_cells(["enet"], ("eager",))) == []


def test_heavy_cells_are_the_semantic_ones(cells):
    heavy = {c.cell.model for c in cells if window.is_heavy(c.cell)}
    assert heavy == set(zoo.survey_models("semantic"))


def test_the_timing_policy_is_short_and_converts_no_set_up_into_sampling():
    policy = window.WINDOW_TIMING
    assert policy.setup_ratio == 0.0 and policy.for_setup(100.0) == policy
    assert policy.warmup_max_s + policy.max_time_s <= 1.5  # at most 1.5 s of a process's exclusive turn
    assert policy.min_samples >= 6  # the smallest n whose order-statistic interval reaches 95%
    assert window.WINDOW_ROUNDS.min_rounds == window.WINDOW_ROUNDS.max_rounds == 2


@pytest.mark.parametrize(
    ("available", "siblings", "timer"),
    [
        (set(range(16)), {0: {0, 8}}, {0, 8}),  # a physical core with its hyper-thread
        (set(range(16)), {0: {0}}, {0, 1}),  # no hyper-threads: two cores
        ({4, 5, 6, 7, 8}, {4: {4}}, {4, 5}),
        ({0, 1}, {}, {0, 1}),  # too few to spare: everything everywhere
    ],
)
def test_timer_cpus_are_a_core_of_their_own(monkeypatch, available, siblings, timer):
    monkeypatch.setattr(window, "_siblings", lambda cpu: siblings.get(cpu, {cpu}))
    mine, others = window.timer_cpus(available)
    assert mine == timer
    assert others == (available - timer if len(available) >= 4 else available)
