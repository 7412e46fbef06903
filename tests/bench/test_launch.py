"""Scaling a sweep out: `--shard auto` from a Slurm array or a Kubernetes Indexed Job, and the submitit
launcher (`segbench run --launcher local|slurm --shards N`), end to end with submitit's local executor."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from bench.cli import build_parser, main
from bench.errors import UsageError
from bench.launch import parse_params, shard_argv
from bench.spec import parse_shard
from tests.conftest import REPO_ROOT

PLUGIN = "tests.bench.faulty_models"


def slurm(task, count, first, step=None, last=None):
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count)}
    env["SLURM_ARRAY_TASK_MIN"] = str(first)
    if step is not None:
        env["SLURM_ARRAY_TASK_STEP"] = str(step)
    if last is not None:
        env["SLURM_ARRAY_TASK_MAX"] = str(last)
    return env


@pytest.mark.parametrize(
    "environ, shard",
    [
        (slurm(0, 4, 0, 1, 3), (1, 4)),  # --array=0-3
        (slurm(3, 4, 0, 1, 3), (4, 4)),
        (slurm(1, 4, 1, 1, 4), (1, 4)),  # --array=1-4
        (slurm(4, 4, 1, 1, 4), (4, 4)),
        (slurm(7, 4, 5), (3, 4)),  # --array=5-8, older Slurm without STEP and MAX
        (slurm(14, 4, 10, 2, 16), (3, 4)),  # --array=10-16:2
        ({"JOB_COMPLETION_INDEX": "0", "SEGBENCH_SHARD_COUNT": "3"}, (1, 3)),
        ({"JOB_COMPLETION_INDEX": "2", "SEGBENCH_SHARD_COUNT": "3"}, (3, 3)),
    ],
)
def test_shard_auto_reads_the_job_array(environ, shard):
    assert parse_shard("auto", {**environ, "UNRELATED": "1"}) == shard
    assert parse_shard(" auto ", environ) == shard


@pytest.mark.parametrize(
    "environ, message",
    [
        ({}, "no Slurm job array (SLURM_ARRAY_TASK_ID) or Kubernetes Indexed Job"),
        (
            {**slurm(0, 2, 0), "JOB_COMPLETION_INDEX": "0"},
            "both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX",
        ),
        ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0"}, "SLURM_ARRAY_TASK_COUNT is not set"),
        ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}, "SLURM_ARRAY_TASK_MIN is not set"),
        ({**slurm(0, 2, 0), "SLURM_ARRAY_TASK_ID": "x"}, "SLURM_ARRAY_TASK_ID is 'x'"),
        (slurm(2, 2, 0), "SLURM_ARRAY_TASK_ID 2 is not a task of the array of 2 from 0"),
        (slurm(0, 2, 1), "SLURM_ARRAY_TASK_ID 0 is not a task"),
        (slurm(11, 4, 10, 2, 16), "SLURM_ARRAY_TASK_ID 11 is not a task"),
        (slurm(4, 3, 1, 1, 9), "is not one range"),  # --array=1,4,9
        ({"JOB_COMPLETION_INDEX": "0"}, "SEGBENCH_SHARD_COUNT is not set"),
        ({"JOB_COMPLETION_INDEX": "3", "SEGBENCH_SHARD_COUNT": "3"}, "is not below SEGBENCH_SHARD_COUNT 3"),
        ({"JOB_COMPLETION_INDEX": "-1", "SEGBENCH_SHARD_COUNT": "3"}, "JOB_COMPLETION_INDEX is '-1'"),
    ],
)
def test_shard_auto_refuses_a_missing_or_inconsistent_environment(environ, message):
    with pytest.raises(UsageError, match=None) as error:
        parse_shard("auto", environ)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_shard_auto_on_the_command_line_without_a_job_array_is_one_line_and_exit_2(
    capsys, tmp_path, monkeypatch
):
    for name in [n for n in os.environ if n.startswith("SLURM_") or n == "JOB_COMPLETION_INDEX"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--models", "bisenetv2", "--shard", "auto"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segbench: error: --shard auto: no Slurm job array") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_launcher_params_are_typed():
    assert parse_params(["slurm_partition=gpu", "timeout_min=60", "mem_gb=7.5", "stderr_to_stdout=true"]) == {
        "slurm_partition": "gpu",
        "timeout_min": 60,
        "mem_gb": 7.5,
        "stderr_to_stdout": True,
    }
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        parse_params(["partition"])


def test_each_job_runs_the_parents_sweep_options_with_its_shard(tmp_path):
    argv = [
        "run",
        "--profile",
        "paper",
        "--models",
        "a,b",
        "--resolutions",
        "8x8,16x16",
        "--precision",
        "fp32,bf16",
        "--channels-last",
        "on,off",
        "--threads",
        "3",
        "--timeout",
        "12.5",
        "--plugins",
        "x.y",
        "--launcher",
        "local",
        "--shards",
        "3",
        "--launcher-param",
        "timeout_min=5",
    ]
    parent = build_parser().parse_args(argv)
    job = build_parser().parse_args(shard_argv(parent, 2, 3, tmp_path / "s.jsonl"))
    same = ("profile", "models", "resolutions", "device", "precision", "channels_last", "threads", "timeout")
    assert all(getattr(job, name) == getattr(parent, name) for name in (*same, "plugins"))
    assert (job.shard, job.out, job.no_progress) == ("2/3", tmp_path / "s.jsonl", True)
    assert job.launcher is None and job.shards is None and job.batch is None


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--shards", "2"], "--shards needs --launcher"),
        (["--launcher", "local"], "needs --shards N"),
        (["--launcher", "pbs", "--shards", "2"], "unknown launcher 'pbs'"),
        (["--launcher", "local", "--shards", "3"], "--shards 3: the sweep has only 2 cells"),
        (["--launcher", "local", "--shards", "2", "--shard", "1/2"], "--shard with --launcher"),
        (
            ["--launcher", "local", "--shards", "2", "--launcher-param", "nope=1"],
            "--launcher local: Parameter",
        ),
        (["--launcher", "local", "--shards", "2", "--launcher-param", "x"], "malformed --launcher-param"),
    ],
)
def test_bad_launcher_input_is_one_line_exit_2_and_nothing_written(
    capsys, tmp_path, monkeypatch, extra, message
):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--models", "bisenetv2", "--resolutions", "8x8,16x16", "--launch-dir", str(tmp_path / "l")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("segbench: error:") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("srun") is not None, reason="checks the message on a machine without Slurm")
def test_the_slurm_launcher_without_slurm_is_one_line(capsys, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.chdir(tmp_path)
    argv = [
        "run",
        "--models",
        "bisenetv2",
        "--resolutions",
        "8x8,16x16",
        "--launcher",
        "slurm",
        "--shards",
        "2",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("segbench: error: --launcher slurm:") and "srun" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_launcher_without_submitit_names_the_extra(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    monkeypatch.chdir(tmp_path)
    argv = [
        "run",
        "--models",
        "bisenetv2",
        "--resolutions",
        "8x8,16x16",
        "--launcher",
        "local",
        "--shards",
        "2",
    ]
    assert main(argv) == 2
    assert "needs submitit: pip install 'segbench[slurm]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def segbench(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "bench", *args, "--plugins", PLUGIN, "--no-progress"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_shard_auto_runs_the_slurm_tasks_shard(tmp_path):
    # Task 6 of an array submitted as --array=5-6: the second of two shards, i.e. the second cell of three.
    out = tmp_path / "shard.jsonl"
    result = segbench(
        "run",
        "--models",
        "fault_tiny",
        "--resolutions",
        "8x8,16x16,24x24",
        "--shard",
        "auto",
        "--out",
        str(out),
        env=slurm(6, 2, 5, 1, 6),
    )
    assert result.returncode == 0, result.stderr
    assert [(r["input_hw"], r["shard"]) for r in read(out)] == [([16, 16], "2/2")]


@pytest.mark.slow
def test_the_local_launcher_runs_two_shards_end_to_end_and_merges_them(tmp_path):
    pytest.importorskip("submitit")
    folder, merged = tmp_path / "launch", tmp_path / "merged.jsonl"
    result = segbench(
        "run", "--models", "fault_tiny", "--resolutions", "8x8,16x16,24x24", "--launcher", "local",
        "--shards", "2", "--launch-dir", str(folder), "--out", str(merged),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(merged)
    shards = [read(folder / f"shard{i}of2.jsonl") for i in (1, 2)]
    # Which cells each shard measured. A shard writes a cell when it is done, so a cell given a third worker
    # process (its interval not within target after two: likelier with two shards on two cores) comes last.
    assert [sorted(r["input_hw"][0] for r in s) for s in shards] == [[8, 24], [16]]
    records = read(merged)
    assert sorted((r["input_hw"][0], r["shard"]) for r in records) == [(8, "1/2"), (16, "2/2"), (24, "1/2")]
    assert all(r["status"] == "ok" and r["model"] == "fault_tiny" for r in records)
    assert len(list((folder / "jobs").glob("*_log.err"))) == 2  # each task's log is kept


class FakeJob:
    def __init__(self, job_id, error=None):
        self.job_id, self.error = job_id, error
        self.paths = type("Paths", (), {"stderr": f"jobs/{job_id}_0_log.err"})()

    def result(self):
        if self.error:
            raise RuntimeError(f"{self.error}\nTraceback ...")
        return "done"


class FakeExecutor:
    """Runs nothing: writes each shard's file as its job would, or fails the jobs named in `failing`."""

    def __init__(self, failing=()):
        self.failing = failing

    def map_array(self, fn, argvs):
        from bench.records import from_dict
        from bench.store import append_record
        from tests.bench.test_frame import bench

        jobs = []
        for index, argv in enumerate(argvs, 1):
            out = argv[argv.index("--out") + 1]
            if index in self.failing:
                jobs.append(FakeJob(str(index), error="segbench run ... exited with status 2"))
                continue
            append_record(out, from_dict(bench(model=f"m{index}", shard=argv[argv.index("--shard") + 1])))
            jobs.append(FakeJob(str(index)))
        return jobs


def launch_with(monkeypatch, tmp_path, executor, *extra):
    import bench.launch

    def make(launcher, folder, params):
        executor.params = params
        return executor

    monkeypatch.setattr(bench.launch, "_executor", make)
    monkeypatch.chdir(tmp_path)
    argv = [
        "run",
        "--models",
        "bisenetv2",
        "--resolutions",
        "8x8,16x16",
        "--launcher",
        "slurm",
        "--shards",
        "2",
    ]
    return main([*argv, "--launch-dir", "l", *extra])


def test_the_merged_sweep_is_filed_under_the_machine_its_records_name(capsys, tmp_path, monkeypatch):
    assert launch_with(monkeypatch, tmp_path, FakeExecutor()) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("results/box/") and out.endswith("-quick-cpu.jsonl")
    assert [(r["model"], r["shard"]) for r in read(tmp_path / out)] == [("m1", "1/2"), ("m2", "2/2")]


def test_a_failed_job_is_named_with_its_log_and_nothing_is_merged(capsys, tmp_path, monkeypatch):
    assert launch_with(monkeypatch, tmp_path, FakeExecutor(failing=(2,)), "--out", "m.jsonl") == 1
    err = capsys.readouterr().err
    assert "shard 2/2 (job 2) failed, see jobs/2_0_log.err: segbench run ... exited with status 2" in err
    assert "Traceback" not in err and "segbench merge" in err
    assert not (tmp_path / "m.jsonl").exists() and (tmp_path / "l" / "shard1of2.jsonl").exists()


def test_submission_parameters_default_to_the_sweep_and_yield_to_the_users(capsys, tmp_path, monkeypatch):
    executor = FakeExecutor()
    extra = ["--device", "cuda", "--timeout", "30", "--launcher-param", "slurm_partition=gpu"]
    assert launch_with(monkeypatch, tmp_path, executor, *extra) == 0
    # one cell per shard: (30 s + a minute to start) + ten minutes for the run = 12 min
    assert executor.params == {
        "name": "segbench",
        "timeout_min": 12,
        "slurm_array_parallelism": 2,
        "gpus_per_node": 1,
        "slurm_partition": "gpu",
    }
    executor = FakeExecutor()
    assert (
        launch_with(monkeypatch, tmp_path, executor, "--launcher-param", "timeout_min=5", "--launch-dir", "m")
        == 0
    )
    assert executor.params["timeout_min"] == 5 and "gpus_per_node" not in executor.params
