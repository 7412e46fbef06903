"""Bad input: one clear line on stderr, exit status 2, no traceback, nothing written."""

import pytest
import torch

from bench.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--models", "no_such_model"], "unknown model 'no_such_model'"),
        (
            ["run", "--models", "mobilenetv2", "--resolutions", "512by1024"],
            "malformed resolution '512by1024'",
        ),
        (["run", "--models", "mobilenetv2", "--resolutions", "0x10"], "malformed resolution '0x10'"),
        (["run", "--models", "mobilenetv2", "--device", "tpu"], "unknown device 'tpu'"),
        (["run", "--models", "mobilenetv2", "--precision", "fp8"], "unknown precision 'fp8'"),
        (["run", "--profile", "nope"], "invalid choice: 'nope'"),
        (["list", "--group", "nope"], "unknown group 'nope'"),
        (["run", "--models", "mobilenetv2", "--shard", "3/2"], "malformed shard '3/2'"),
        (["run", "--models", "mobilenetv2", "--backend", "tensorrt"], "unknown backend 'tensorrt'"),
        (["run", "--models", "mobilenetv2", "--channels-last", "yes"], "malformed --channels-last 'yes'"),
        (["run", "--models", "mobilenetv2", "--batch", "0"], "malformed --batch '0'"),
        (["run", "--models", "mobilenetv2", "--tf32", "on"], "CUDA settings"),
        (["merge", "missing.jsonl", "--out", "m.jsonl"], "does not exist"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_run_input_exits_2_with_one_line_and_writes_nothing(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # the default results folder would be created here
    out = tmp_path / "out.jsonl"
    code, stdout, stderr = run_cli(capsys, *argv, *(["--out", str(out)] if argv[0] == "run" else []))
    assert code == 2
    assert stdout == ""
    assert (
        len(stderr.strip().splitlines()) == 1 and message in stderr and stderr.startswith("segbench: error:")
    )
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_bad_input(capsys, tmp_path):
    code, _, stderr = run_cli(
        capsys, "run", "--models", "mobilenetv2", "--device", "cuda", "--out", str(tmp_path / "o.jsonl")
    )
    assert code == 2 and "no CUDA device" in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unreadable_results_file(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("this is not json\n{}\n")
    report_dir = tmp_path / "report"
    code, _, stderr = run_cli(capsys, "report", str(bad), "--out", str(report_dir))
    assert (
        code == 2 and "bad.jsonl:1: not a SegBench record" in stderr and len(stderr.strip().splitlines()) == 1
    )
    assert not report_dir.exists()

    code, _, stderr = run_cli(capsys, "run", "--models", "mobilenetv2", "--out", str(bad), "--resume")
    assert code == 2 and "bad.jsonl:1" in stderr and len(stderr.strip().splitlines()) == 1
    assert bad.read_text() == "this is not json\n{}\n"


def test_missing_results_file(capsys, tmp_path):
    code, _, stderr = run_cli(capsys, "report", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r"))
    assert code == 2 and "does not exist" in stderr and len(stderr.strip().splitlines()) == 1


def test_list_prints_every_model_of_a_group(capsys):
    import zoo

    code, stdout, _ = run_cli(capsys, "list", "--group", "realtime")
    assert code == 0
    assert [line.split()[0] for line in stdout.splitlines()] == zoo.list_models("realtime")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--models", "enet", "--timeout", "0"], "--timeout: expected a positive number, got '0'"),
        (["run", "--models", "mobilenetv2", "--timeout", "-5"], "--timeout: expected a positive number"),
        (["run", "--models", "mobilenetv2", "--timeout", "nan"], "--timeout: expected a finite number"),
        (["run", "--models", "mobilenetv2", "--timeout", "inf"], "--timeout: expected a finite number"),
        (["run", "--models", "mobilenetv2", "--threads", "0"], "--threads: expected a positive integer"),
        (["run", "--models", "mobilenetv2", "--threads", "two"], "--threads: expected an integer"),
        (["compare", "a", "b", "--latency-threshold", "nan"], "--latency-threshold: expected a finite"),
        (["compare", "a", "b", "--miou-tol", "-1"], "--miou-tol: expected a non-negative number"),
        (["structure", "--models", "enet", "--batch", "0"], "--batch: expected a positive integer"),
        (["eval", "--model", "enet", "--limit", "-1"], "--limit: expected a positive integer, got '-1'"),
        (["eval", "--model", "enet", "--scales", "0,1"], "--scales: expected a positive number, got '0'"),
        (["eval", "--model", "enet", "--crop", "0x64"], "--crop: expected a positive integer"),
        (["eval", "--model", "enet", "--threads", "-2"], "--threads: expected a positive integer"),
        (["train", "--model", "enet", "--dataset", "camvid", "--data-root", "d", "--out", "o.pt",
          "--lr", "nan"], "--lr: expected a finite number"),
        (["train", "--model", "enet", "--dataset", "camvid", "--data-root", "d", "--out", "o.pt",
          "--iterations", "0"], "--iterations: expected a positive integer"),
        (["train", "--model", "enet", "--dataset", "camvid", "--data-root", "d", "--out", "o.pt",
          "--time-limit", "-1"], "--time-limit: expected a positive number"),
    ],
)  # fmt: skip
def test_every_numeric_option_refuses_nonsense_in_one_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_cli(capsys, *argv)
    assert code == 2 and stdout == "" and message in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "source, error",
    [("def broken(:\n", "SyntaxError"), ("raise RuntimeError('registration failed')\n", "RuntimeError")],
)
def test_a_plugin_that_raises_anything_is_one_line(capsys, tmp_path, monkeypatch, source, error):
    name = f"plugin_{error.lower()}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, stdout, stderr = run_cli(capsys, "run", "--models", "mobilenetv2", "--plugins", name)
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert f"cannot import plugin: {name}: {error}" in stderr and "Traceback" not in stderr


def test_an_unwritable_out_is_found_before_measuring(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, stdout, stderr = run_cli(
        capsys, "run", "--models", "mobilenetv2", "--out", str(blocker / "r.jsonl")
    )
    assert code == 2 and stdout == "" and "is a file, not a folder" in stderr
    assert len(stderr.strip().splitlines()) == 1 and "calibrat" not in stderr


def test_a_read_only_file_system_is_one_line(capsys, tmp_path, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    code, _, stderr = run_cli(capsys, "run", "--models", "mobilenetv2", "--out", str(tmp_path / "r.jsonl"))
    assert code == 2 and "cannot write to" in stderr and "Read-only file system" in stderr
    assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / "r.jsonl").exists()
