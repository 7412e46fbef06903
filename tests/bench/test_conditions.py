"""The condition model: one declaration per axis, from which validation, options, keys and labels come."""

import pytest

from bench.cli import build_parser
from bench.conditions import (
    AXES,
    AXIS_NAMES,
    AccuracyCondition,
    EvalProtocol,
    Execution,
    option,
    parse_axis_values,
    parse_resolution,
)
from bench.errors import UsageError


def ex(**fields) -> Execution:
    return Execution((16, 20), **fields)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"backend": "cuda_graph"}, "backend cuda_graph needs --device cuda"),
        ({"cudnn_benchmark": True}, "--cudnn-benchmark: CUDA settings"),
        ({"cudnn_benchmark": False}, "--cudnn-benchmark: CUDA settings"),
        ({"tf32": False}, "--tf32: CUDA settings"),
        ({"cudnn_deterministic": True}, "--cudnn-deterministic: CUDA settings"),
        ({"device": "cuda", "backend": "onnxruntime"}, "onnxruntime runs on the CPU only"),
        ({"backend": "onnxruntime", "precision": "fp16"}, "onnxruntime runs fp32 only"),
        ({"backend": "onnxruntime", "channels_last": True}, "channels_last applies to torch backends"),
        ({"compile_mode": "default"}, "needs backend compile"),
        ({"device": "cuda", "backend": "cuda_graph", "compile_mode": "default"}, "needs backend compile"),
        ({"backend": "compile", "compile_mode": "fastest"}, "unknown compile mode 'fastest'"),
        ({"backend": "tensorrt"}, "unknown backend 'tensorrt'"),
        ({"precision": "int8"}, "unknown precision 'int8'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"batch": True}, "batch must be a positive integer"),
        ({"channels_last": "yes"}, "--channels-last must be on or off"),
    ],
)
def test_impossible_executions_are_refused_in_one_line(fields, message):
    with pytest.raises(UsageError, match=message) as info:
        ex(**fields).validate()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"precision": "bf16", "channels_last": True},
        {"backend": "compile", "compile_mode": "max-autotune"},
        {"backend": "onnxruntime"},
        {"device": "cuda", "backend": "cuda_graph", "precision": "fp16", "cudnn_benchmark": True},
        {
            "device": "cuda",
            "precision": "bf16",
            "channels_last": True,
            "tf32": True,
            "cudnn_deterministic": False,
        },
    ],
)
def test_possible_executions_pass(fields):
    execution = ex(**fields)
    assert execution.validate() is execution


def test_bad_input_size_is_refused():
    with pytest.raises(UsageError, match="input size"):
        Execution((0, 20)).validate()


def test_fields_round_trip_and_an_older_record_gets_the_defaults():
    execution = ex(device="cuda", precision="fp16", backend="compile", compile_mode="default", tf32=True)
    fields = execution.to_fields()
    assert fields["input_hw"] == [16, 20] and set(fields) == {"input_hw", *AXIS_NAMES}
    assert Execution.from_fields(fields) == execution
    assert Execution.from_fields({"input_hw": [16, 20], "batch": 2}) == ex(batch=2)


def test_key_tells_every_axis_apart():
    variants = [ex(), ex(batch=2), ex(precision="bf16"), ex(channels_last=True), ex(backend="onnxruntime")]
    variants += [ex(device="cuda", cudnn_deterministic=True), ex(device="cuda", cudnn_deterministic=False)]
    assert len({v.key for v in variants}) == len(variants)


def test_label_names_what_differs_from_the_defaults():
    assert ex().label() == "16x20 b1 cpu/fp32"
    label = ex(device="cuda", precision="fp16", backend="compile", compile_mode="max-autotune", tf32=False)
    assert label.label() == "16x20 b1 cuda/fp16 compile(max-autotune) tf32=off"
    assert ex(channels_last=True, batch=8).label() == "16x20 b8 cpu/fp32 channels_last"


def test_axis_values_parse_or_fail_clearly():
    assert parse_axis_values("tf32", "on,off") == (True, False)
    assert parse_axis_values("batch", "1,8,1") == (1, 8)
    assert parse_axis_values("precision", "fp16,bf16") == ("fp16", "bf16")
    with pytest.raises(UsageError, match="malformed --tf32 'maybe'"):
        parse_axis_values("tf32", "maybe")
    with pytest.raises(UsageError, match="malformed --batch '0'"):
        parse_axis_values("batch", "0")
    with pytest.raises(UsageError, match="unknown precision 'fp8'"):
        parse_axis_values("precision", "fp16,fp8")
    assert parse_resolution(" 512x1024 ") == (512, 1024)


def test_every_axis_is_a_run_option():
    run = next(
        a for a in build_parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith("run")
    )
    options = {o for action in run._actions for o in action.option_strings}
    assert {option(a.name) for a in AXES} <= options


def test_accuracy_conditions_name_each_difference():
    ours = AccuracyCondition("camvid", "test", EvalProtocol("whole"), "trained here")
    claim = AccuracyCondition("cityscapes", "val", EvalProtocol.make("msflip"), "authors")
    differences = " ".join(ours.differences(claim))
    for word in ("dataset", "split", "protocol", "weights"):
        assert word in differences
    same = AccuracyCondition("cityscapes", "val", EvalProtocol("whole"), "authors")
    assert same.differences(same) == []
