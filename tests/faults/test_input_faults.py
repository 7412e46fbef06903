"""Issue 17, items 8, 9 and 10: bad numbers for every numeric option of every subcommand, checkpoints and
evaluations that make no sense, and plugins that raise. Each is one line and exit 2 before anything is
written (the working folder stays as it was), or, for weights whose scores are not finite, an error
record and no ok one: the eval's results file gains exactly that record."""

import os

import pytest
import torch

from tests.faults.helpers import EVAL_MODEL, cli, eval_argv, make_camvid, records, snapshot

# ------------------------------------------------------------------------ item 8: every numeric option

MANY = str((os.cpu_count() or 1) * 1000)  # threads no machine this runs on has
TRAIN = ["train", "--model", "enet", "--dataset", "camvid", "--data-root", "d", "--out", "o.pt"]
EVAL = ["eval", "--model", "enet", "--dataset", "camvid", "--data-root", "d"]
RUN = ["run", "--models", "enet", "--out", "r.jsonl"]

NUMERIC_OPTIONS = [
    (RUN, "--timeout", "0"),
    (RUN, "--timeout", "-5"),
    (RUN, "--timeout", "nan"),
    (RUN, "--timeout", "inf"),
    (RUN, "--threads", "0"),
    (RUN, "--threads", MANY),
    (RUN, "--batch", "-1"),
    (RUN, "--resolutions", "0x64"),
    (["compare", "a.jsonl", "b.jsonl"], "--latency-threshold", "nan"),
    (["compare", "a.jsonl", "b.jsonl"], "--latency-threshold", "-0.1"),
    (["compare", "a.jsonl", "b.jsonl"], "--miou-tol", "-1"),
    (["structure", "--models", "enet"], "--batch", "0"),
    (EVAL, "--limit", "-1"),
    (EVAL, "--limit", "0"),
    (EVAL, "--threads", MANY),
    (EVAL, "--scales", "0,1"),
    (EVAL, "--crop", "0x64"),
    (TRAIN, "--lr", "nan"),
    (TRAIN, "--iterations", "0"),
    (TRAIN, "--time-limit", "-1"),
    (TRAIN, "--seed", "-1"),
    (TRAIN, "--save-every", "0"),
    (TRAIN, "--threads", MANY),
    (["gpu", "--plan"], "--deadline", "nan"),
    (["gpu", "--plan"], "--deadline", "-60"),
    (["gpu", "--plan"], "--deadline", "0"),
]


@pytest.mark.parametrize(
    "argv, option, value",
    NUMERIC_OPTIONS,
    ids=[
        f"{argv[0]} {option} {value if value != MANY else 'MANY'}" for argv, option, value in NUMERIC_OPTIONS
    ],
)
def test_a_numeric_option_out_of_its_range_is_one_line_and_nothing_written(
    tmp_path, monkeypatch, argv, option, value
):
    monkeypatch.chdir(tmp_path)  # the default results and report folders would be made here
    cli(*argv, option, value).one_line_error(option if option != "--resolutions" else value)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- item 9: eval's nonsense


def _weights(change):
    import zoo

    state = zoo.create_model(EVAL_MODEL, num_classes=11).state_dict()
    first = next(k for k, v in state.items() if v.is_floating_point())
    return change(state, first), first


def _floats(state, change):
    return {n: change(v) if v.is_floating_point() else v for n, v in state.items()}


CHECKPOINTS = {
    "integer tensors": (lambda s, k: _floats(s, lambda v: v.to(torch.int32)), "dtype mismatch"),
    "a bool tensor": (lambda s, k: {**s, k: s[k] > 0}, "dtype mismatch"),
    "a complex tensor": (lambda s, k: {**s, k: s[k].to(torch.complex64)}, "dtype mismatch"),
    "all-NaN weights": (lambda s, k: _floats(s, lambda v: v * float("nan")), "non-finite values"),
    "an infinite weight": (lambda s, k: {**s, k: s[k] + float("inf")}, "non-finite values"),
    "integer keys": (lambda s, k: dict(enumerate(s.values())), "keys that are not names"),
    "a float8 NaN": (lambda s, k: {**s, k: (s[k] * float("nan")).to(torch.float8_e4m3fn)}, "non-finite"),
    "a sparse tensor": (lambda s, k: {**s, k: s[k].to_sparse()}, "sparse"),
    "a meta tensor": (lambda s, k: {**s, k: torch.empty_like(s[k], device="meta")}, "meta"),
}


@pytest.fixture(scope="module")
def camvid(tmp_path_factory):
    return make_camvid(tmp_path_factory.mktemp("data") / "camvid")


@pytest.mark.parametrize("change, message", CHECKPOINTS.values(), ids=list(CHECKPOINTS))
def test_a_checkpoint_that_is_no_model_weights_is_one_line_naming_what(tmp_path, camvid, change, message):
    state, _ = _weights(change)
    checkpoint = tmp_path / "weights.pt"
    torch.save(state, checkpoint)
    before = snapshot(tmp_path)
    cli(*eval_argv(camvid, tmp_path / "e.jsonl", "--checkpoint", checkpoint)).one_line_error(message)
    assert snapshot(tmp_path) == before  # no record, ok or otherwise


def test_weights_whose_scores_are_not_finite_give_an_error_record_never_an_ok_one(tmp_path, camvid):
    # Every weight finite, yet every score NaN: a negative BatchNorm variance (the square root of it).
    state, _ = _weights(
        lambda s, k: {n: -v.abs() - 1 if n.endswith("running_var") else v for n, v in s.items()}
    )
    checkpoint = tmp_path / "weights.pt"
    torch.save(state, checkpoint)
    out = tmp_path / "e.jsonl"
    result = cli(*eval_argv(camvid, out, "--checkpoint", checkpoint))
    assert result.code == 1 and "not finite" in result.err, result.err
    (record,) = records(out)
    assert record["status"] == "error" and record["miou"] is None and "not finite" in record["error"]


EVAL_INPUT = [
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--weights-source", "authors"], "needs --checkpoint"),  # random weights recorded as the authors'
    (["--weights-source", "mine"], "unknown weights source"),
    (["--protocol", "msflip", "--scales", "1e-9"], "msflip scales"),  # an image of 0x0 pixels
    (["--protocol", "slide", "--crop", "8x8", "--stride", "16x16"], "must not exceed the crop"),  # holes
]


@pytest.mark.parametrize("args, message", EVAL_INPUT, ids=[" ".join(a) for a, _ in EVAL_INPUT])
def test_eval_options_that_make_no_sense_are_one_line(tmp_path, camvid, args, message):
    before = snapshot(tmp_path)
    cli(*eval_argv(camvid, tmp_path / "e.jsonl", *args)).one_line_error(message)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- item 10: plugins that raise

PLUGINS = {
    "SyntaxError": ("def broken(:\n", "SyntaxError"),
    "RuntimeError": ("raise RuntimeError('registration failed')\n", "RuntimeError: registration failed"),
    "RuntimeError()": ("raise RuntimeError()\n", "RuntimeError"),  # no message at all
    "sys.exit(3)": ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    "BaseException": ("class Odd(BaseException):\n    pass\nraise Odd('odd')\n", "Odd: odd"),
    "ImportError of two lines": ("raise ImportError('first\\nsecond')\n", "first"),
}


@pytest.mark.parametrize("command", ["run", "cards"])
@pytest.mark.parametrize("source, message", PLUGINS.values(), ids=list(PLUGINS))
def test_a_plugin_that_raises_anything_is_one_line(tmp_path, monkeypatch, command, source, message):
    name = f"plugin_{abs(hash((source, command)))}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    argv = (
        ["run", "--models", "enet", "--out", "r.jsonl"] if command == "run" else ["cards", "--out", "c.json"]
    )
    cli(*argv, "--plugins", name).one_line_error(f"cannot import plugin: {name}", message)
    assert snapshot(tmp_path) == before
