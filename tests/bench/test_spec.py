"""Sweep specs: profiles, condition axes, sharding, and refusing what cannot run."""

import pytest

import zoo
from bench import spec
from bench.conditions import Execution
from bench.errors import UsageError


def test_quick_profile_measures_every_model_once_on_cpu_and_the_reference_at_every_input():
    cells = spec.build_cells(spec.PROFILES["quick"])
    others = [c for c in cells if c.model != spec.REFERENCE_MODEL]
    assert sorted(c.model for c in others) == sorted(set(zoo.list_models()) - {spec.REFERENCE_MODEL})
    assert {c.execution.device for c in cells} == {"cpu"} and all(c.execution.is_reference for c in cells)
    reference_inputs = [c.execution.input_hw for c in cells if c.model == spec.REFERENCE_MODEL]
    assert sorted(reference_inputs) == sorted({c.execution.input_hw for c in cells})  # each once
    assert len({c.key for c in cells}) == len(cells)


def test_the_reference_is_added_per_condition_after_the_sweeps_own_cells():
    sweep = [
        spec.Cell("enet", Execution((360, 480))),
        spec.Cell("mobilenetv2", Execution((224, 224))),
        spec.Cell("mobilenetv2", Execution((224, 224), precision="bf16")),
        spec.Cell(spec.REFERENCE_MODEL, Execution((360, 480))),
        spec.Cell("sinet", Execution((224, 224))),
    ]
    cells = spec.with_reference(sweep)
    assert cells[: len(sweep)] == sweep
    assert cells[len(sweep) :] == [
        spec.Cell(spec.REFERENCE_MODEL, Execution((224, 224))),
        spec.Cell(spec.REFERENCE_MODEL, Execution((224, 224), precision="bf16")),
    ]


def test_a_chosen_model_list_gets_no_reference_cells():
    cells = spec.build_cells(spec.PROFILES["quick"], ["mobilenetv2"])
    assert [c.model for c in cells] == ["mobilenetv2"]


def test_paper_profile_uses_each_cards_input_size_and_speed_claims_precision():
    cells = spec.build_cells(spec.PROFILES["paper"], ["bisenetv2", "mobilenetv2"], device="cuda")
    assert [(c.model, c.execution.input_hw) for c in cells] == [
        ("bisenetv2", tuple(zoo.get_card("bisenetv2").input_hw)),
        ("mobilenetv2", tuple(zoo.get_card("mobilenetv2").input_hw)),
    ]
    for cell in cells:
        assert cell.execution.precision == spec.paper_precision(cell.model)
        assert cell.execution.cudnn_benchmark is False and cell.execution.tf32 is False


def test_full_profile_is_a_resolution_grid_with_both_precisions_and_a_throughput_batch_on_gpu():
    cells = spec.build_cells(spec.PROFILES["full"], ["bisenetv2"], device="cuda")
    sizes = {c.execution.input_hw for c in cells}
    assert sizes == {(512, 1024), (768, 1536), (1024, 2048)}
    assert {c.execution.precision for c in cells} == {"fp32", "fp16"} and {
        c.execution.batch for c in cells
    } == {1, 8}
    assert len(cells) == 3 * 2 * 2


def test_axes_cross_and_onnxruntime_runs_only_fp32_contiguous():
    axes = {
        "precision": ("fp32", "bf16"),
        "backend": ("eager", "onnxruntime"),
        "channels_last": (False, True),
    }
    cells = spec.build_cells(spec.PROFILES["quick"], ["mobilenetv2"], device="cpu", axes=axes)
    ort = [c for c in cells if c.execution.backend == "onnxruntime"]
    assert len(cells) == 2 * 2 + 1 and len(ort) == 1
    assert ort[0].execution.precision == "fp32" and not ort[0].execution.channels_last
    assert len({c.key for c in cells}) == len(cells)  # every condition is its own cell


def test_compile_cells_carry_their_mode():
    axes = {"backend": ("eager", "compile"), "compile_mode": ("max-autotune",)}
    cells = spec.build_cells(spec.PROFILES["quick"], ["mobilenetv2"], axes=axes)
    assert [(c.execution.backend, c.execution.compile_mode) for c in cells] == [
        ("eager", None),
        ("compile", "max-autotune"),
    ]
    assert not cells[1].execution.is_reference


@pytest.mark.parametrize(
    "device, axes, message",
    [
        ("cpu", {"backend": ("cuda_graph",)}, "cuda_graph needs --device cuda"),
        ("cpu", {"tf32": (True,)}, "CUDA settings"),
        ("cuda", {"backend": ("onnxruntime",)}, "CPU only"),
        ("cpu", {"backend": ("tensorrt",)}, "unknown backend 'tensorrt'"),
        ("cpu", {"precision": ("fp8",)}, "unknown precision 'fp8'"),
        ("cpu", {"backend": ("compile",), "compile_mode": ("fastest",)}, "unknown compile mode"),
    ],
)
def test_impossible_axes_are_refused_before_measuring(device, axes, message):
    with pytest.raises(UsageError, match=message):
        spec.build_cells(spec.PROFILES["quick"], ["mobilenetv2"], device=device, axes=axes)


def test_shards_are_disjoint_and_their_union_is_the_sweep():
    cells = spec.build_cells(spec.PROFILES["quick"])
    shards = [spec.shard_cells(cells, (i, 3)) for i in (1, 2, 3)]
    keys = [c.key for shard in shards for c in shard]
    assert len(keys) == len(set(keys)) == len(cells)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert spec.shard_cells(cells, None) == cells


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "a/b", ""])
def test_malformed_shard(text):
    with pytest.raises(UsageError, match="malformed shard"):
        spec.parse_shard(text)


def test_every_profile_measures_each_cell_in_more_than_one_process_within_a_budget():
    for profile in spec.PROFILES.values():
        assert profile.rounds.min_rounds >= 2, profile.name
    quick = spec.PROFILES["quick"]
    assert quick.rounds.budget_s <= 600 and quick.rounds.target_rel == 0.05
    assert quick.timing.setup_ratio >= 4  # each process spends at least 80% of its time sampling


@pytest.mark.parametrize(
    "bad", [{"min_rounds": 0}, {"min_rounds": 3, "max_rounds": 2}, {"target_rel": 0}, {"budget_s": -1.0}]
)
def test_nonsense_rounds_policies_are_refused(bad):
    with pytest.raises(ValueError):
        spec.RoundsPolicy(**bad)


def test_scaling_profile_sweeps_a_grid_per_group_on_cpu():
    cells = spec.build_cells(spec.PROFILES["scaling"], ["sinet", "bisenetv2", "pspnet_r50", "mobilenetv2"])
    sizes = {}
    for cell in cells:
        sizes.setdefault(cell.model, []).append(cell.execution.input_hw)
    assert sizes["sinet"] == [(192, 192), (256, 256), (384, 384), (512, 512)]
    assert sizes["bisenetv2"] == [(360, 480), (512, 1024), (768, 1536), (1024, 2048)]
    assert sizes["pspnet_r50"] == [(256, 512), (384, 768), (512, 1024)]
    assert sizes["mobilenetv2"][0] == (224, 224) and sizes["mobilenetv2"][-1] == (512, 512)


def test_scaling_profile_on_cuda_adds_each_groups_paper_sizes():
    cpu = {c.execution.input_hw for c in spec.build_cells(spec.PROFILES["scaling"], ["pspnet_r50"])}
    cuda = {
        c.execution.input_hw
        for c in spec.build_cells(spec.PROFILES["scaling"], ["pspnet_r50"], device="cuda")
    }
    semantic = set(spec.paper_sizes("semantic"))
    assert cuda == cpu | semantic
    assert (713, 713) in semantic and (1024, 2048) in semantic  # PSPNet's own size, and Cityscapes'
    assert tuple(zoo.get_card("deeplabv3_r50").input_hw) in semantic
