"""The runner under faults (issue 17: items 1 to 4 as a sweep meets them, and the smaller ones): a results
file whose last record lacks its newline, what a worker imports, a second writer of one results file, what
is left running when the runner is killed or told to stop, how a worker's death is named, retrying failed
cells, and what goes to stdout. Each case runs `segbench run` in a subprocess on the fixture models
(tests/bench/faulty_models.py), in the test's own folder, and counts the records before and after.

Every runner starts in its own session, so that every process it leaves behind can be found (by session
id) and, whatever the outcome, ended by the test."""

import json
import os
import signal

import pytest

from bench.isolation import exit_outcome
from tests.bench.faulty_models import FAIL, PIDFILE
from tests.faults.helpers import (
    assert_none_duplicated,
    bench_record,
    census,
    cli,
    eval_argv,
    finish,
    line,
    make_camvid,
    records,
    run_argv,
    session_processes,
    start,
    wait_for,
    write,
)

TINY = bench_record("fault_tiny", input_hw=[16, 16])  # the record of the cell `run` measures first below


def hanging_runner(tmp_path, out, *models):
    """A runner whose worker hangs in `fault_sleeps` (after the given models), once that worker runs."""
    pidfile = tmp_path / "worker.pid"
    resume = ("--resume",) if out.exists() else ()  # a file in place: add to it
    models = ",".join((*models, "fault_sleeps"))
    runner = start(
        run_argv(out, "--models", models, "--resolutions", "16x16", "--timeout", "600", *resume),
        cwd=tmp_path,
        env={PIDFILE: str(pidfile)},
    )

    def hanging() -> bool:
        if runner.poll() is not None:  # it ended before its worker hung: say why, rather than wait
            raise AssertionError(f"the runner exited {runner.returncode}: {runner.stderr.read()}")
        return pidfile.exists() and bool(pidfile.read_text().strip())

    wait_for(hanging, 300, "the hanging worker")
    return runner


# ------------------------------------------------------------------- item 1: a last record without newline


@pytest.mark.slow
def test_resume_keeps_a_last_record_without_newline_and_stdout_is_only_the_results_path(tmp_path):
    out = write(tmp_path / "sweep.jsonl", TINY, newline_at_end=False)  # a disk full exactly there
    before = census(out)

    result = finish(
        start(
            run_argv(out, "--models", "fault_tiny,fault_raises", "--resolutions", "16x16", "--resume"),
            tmp_path,
        )
    )

    assert result.code == 0, result.err
    after = census(out)
    assert before - after == {}  # kept, and skipped as done: never measured again
    assert sum(after.values()) == 2 and max(after.values()) == 1
    assert out.read_text().startswith(line(TINY) + "\n")
    assert result.out == f"{out}\n"  # stdout: the results path alone; the failure went to stderr
    assert "fault_raises 16x16 b1 cpu/fp32: error: RuntimeError: this model always fails" in result.err


# ------------------------------------------------------------------------------ item 2: what a worker runs


@pytest.mark.slow
def test_workers_import_nothing_from_the_current_directory(tmp_path):
    work = tmp_path / "work"
    marker = tmp_path / "imported"
    plant = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\nraise ImportError('planted')\n"
    for package in ("bench", "zoo", "numpy"):
        (work / package).mkdir(parents=True)
        (work / package / "__init__.py").write_text(plant)
    (work / "torch.py").write_text(plant)
    launcher = tmp_path / "bin" / "segbench_launcher.py"
    launcher.parent.mkdir()
    # What an installed `segbench` command is: a script that imports bench.cli and calls main.
    launcher.write_text(
        "import sys\nfrom bench.cli import main\n\nif __name__ == '__main__':\n    sys.exit(main())\n"
    )
    out = tmp_path / "sweep.jsonl"

    argv = run_argv(out, "--models", "fault_raises", "--resolutions", "16x16")
    result = finish(start(argv, cwd=work, launcher=launcher))
    assert result.code == 0, result.err
    assert not marker.exists(), f"code planted in the working directory ran: {marker.read_text()}"
    (record,) = records(out)  # the worker ran the runner's code: the model's own failure, nothing planted
    assert record["status"] == "error" and record["error"] == "RuntimeError: this model always fails"


# ------------------------------------------------------- items 4 and 3: a second writer; orphans, signals


@pytest.mark.slow
def test_a_second_writer_is_refused_and_no_process_outlives_a_runner_killed_with_sigkill(tmp_path):
    out = write(tmp_path / "sweep.jsonl", TINY)
    before = out.read_bytes()
    runner = hanging_runner(tmp_path, out)
    try:
        # Item 4: a second run, and an eval, on the same --out while the first holds it.
        second = finish(
            start(run_argv(out, "--models", "fault_tiny", "--resolutions", "16x16", "--resume"), tmp_path)
        )
        second.one_line_error(f"{out} is being written by another segbench run")
        data = make_camvid(tmp_path / "camvid")
        cli(*eval_argv(data, out, "--limit", "1")).one_line_error("being written by another segbench run")
        assert out.read_bytes() == before

        # Item 3: SIGKILL to the runner's PID alone, as a scheduler or `kill -9` sends it.
        assert len(session_processes(runner.pid)) >= 3  # runner, fork server, resource tracker, worker
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(30)
        wait_for(lambda: not session_processes(runner.pid), 30, "every helper and worker to end")
    finally:
        finish(runner, 60)
    assert out.read_bytes() == before  # none lost, none added


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_the_runner_like_ctrl_c_and_resume_reuses_its_rounds(tmp_path, signum):
    out = tmp_path / "sweep.jsonl"
    runner = hanging_runner(tmp_path, out, "fault_tiny")
    try:
        os.kill(runner.pid, signum)
        _, stderr = runner.communicate(timeout=60)  # returns once no process holds its pipes
        wait_for(lambda: not session_processes(runner.pid), 30, "every helper and worker to end")
    finally:
        finish(runner, 60)
    assert runner.returncode == 128 + signum, stderr
    assert "rerun with --resume" in stderr and "Traceback" not in stderr, stderr
    journal = records(tmp_path / "sweep.jsonl.rounds")
    assert [(e["model"], e["process"]) for e in journal] == [("fault_tiny", 1)]
    assert out.read_text() == ""  # no cell finished its rounds: nothing half-written either

    done = finish(
        start(run_argv(out, "--models", "fault_tiny", "--resolutions", "16x16", "--resume"), tmp_path)
    )
    assert done.code == 0, done.err
    (record,) = records(out)
    reused = json.loads((tmp_path / "sweep.jsonl.run.json").read_text())["runs"][-1]["reused_processes"]
    assert reused == 1, done.err
    assert record["latency_ms"]["process_medians"][0] == journal[0]["fields"]["latency_ms"]["median"]
    assert not (tmp_path / "sweep.jsonl.rounds").exists()


# -------------------------------------------------------------------------- smaller: names, retry, stdout


def test_a_death_by_signal_is_named_and_out_of_memory_only_with_evidence():
    assert exit_outcome(-signal.SIGKILL, 3, 3) == exit_outcome(-signal.SIGKILL, None, None)
    assert exit_outcome(-signal.SIGKILL, 3, 3).status == "crashed"
    assert exit_outcome(-signal.SIGKILL, 3, 3).error == "worker killed by SIGKILL"
    oom = exit_outcome(-signal.SIGKILL, 3, 4)
    assert oom.status == "oom" and oom.error.startswith("worker killed by SIGKILL (possibly out of memory")
    assert exit_outcome(-signal.SIGSEGV, 3, 4).error == "worker killed by SIGSEGV"  # OOM kills are SIGKILL
    assert exit_outcome(7, None, None).error == "worker exited with code 7"


@pytest.mark.slow
def test_workers_killed_by_signals_are_recorded_with_the_signals_name(tmp_path):
    from bench.isolation import oom_kills

    out = tmp_path / "sweep.jsonl"
    before = oom_kills()
    result = finish(
        start(run_argv(out, "--models", "fault_sigkill,fault_signal", "--resolutions", "16x16"), tmp_path)
    )
    assert result.code == 0, result.err
    if oom_kills() != before:
        pytest.skip("the kernel's OOM killer ran during the test: a SIGKILL may honestly be an OOM kill")
    found = {r["model"]: r for r in records(out)}
    assert found["fault_sigkill"]["status"] == "crashed"
    assert found["fault_sigkill"]["error"] == "worker killed by SIGKILL"
    assert found["fault_signal"]["error"] == "worker killed by SIGUSR1"
    assert_none_duplicated(out)


@pytest.mark.slow
def test_retry_failed_measures_failed_cells_again_keeping_the_old_record(tmp_path):
    out = tmp_path / "sweep.jsonl"
    argv = run_argv(out, "--models", "fault_flaky", "--resolutions", "16x16")
    result = finish(start(argv, tmp_path, env={FAIL: "1"}))
    assert result.code == 0, result.err
    assert [r["status"] for r in records(out)] == ["error"]

    result = finish(start([*argv, "--resume"], tmp_path))  # resume never retries
    assert result.code == 0 and [r["status"] for r in records(out)] == ["error"], result.err
    result = finish(start([*argv, "--retry-failed"], tmp_path))
    assert result.code == 0, result.err
    assert [r["status"] for r in records(out)] == ["error", "ok"]  # the newest wins; the old one is history

    from bench.records import latest_per_cell
    from bench.store import merge_results, read_records

    assert [r.status for r in latest_per_cell(read_records(out))] == ["ok"]
    assert merge_results([out], tmp_path / "merged.jsonl") == 2  # a file's own history merges as it is
