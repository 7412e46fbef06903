"""The runner under faults (issue 17: items 2 and 3, and the smaller ones): what a worker imports, what is
left running when the runner is killed or told to stop, how a worker's death is named, retrying failed
cells, and what goes to stdout. Each case runs `segbench run` in a subprocess, on the fixture models.

Every runner starts in its own session, so that every process it leaves behind can be found (by session
id) and, whatever the outcome, ended by the test."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.isolation import exit_outcome
from tests.bench.faulty_models import FAIL, PIDFILE
from tests.conftest import REPO_ROOT

PLUGIN = "tests.bench.faulty_models"


def run_args(out: Path, *args) -> list[str]:
    return [
        "run",
        *args,
        "--out",
        str(out),
        "--results",
        str(out.parent / "results"),
        "--plugins",
        PLUGIN,
        "--no-progress",
    ]


def start(argv, cwd=REPO_ROOT, env=None, launcher=None):
    """`segbench argv` in a new session; through `launcher` (a script path) instead of `-m bench` when
    given, as an installed `segbench` command starts: nothing of the current directory on its path."""
    command = [sys.executable, str(launcher)] if launcher else [sys.executable, "-m", "bench"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.Popen(
        [*command, *argv],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, session, ...
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def end_session(sid: int) -> None:
    for pid in session_processes(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


def finish(process, timeout_s=600):
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    finally:
        end_session(process.pid)
    return process.returncode, stdout, stderr


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------ item 2: what a worker runs


@pytest.mark.slow
def test_workers_import_nothing_from_the_current_directory(tmp_path):
    work = tmp_path / "work"
    (work / "zoo").mkdir(parents=True)
    marker = tmp_path / "imported"
    plant = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\nraise ImportError('planted')\n"
    (work / "zoo" / "__init__.py").write_text(plant)
    (work / "torch.py").write_text(plant)
    launcher = tmp_path / "bin" / "segbench_launcher.py"
    launcher.parent.mkdir()
    # What an installed `segbench` command is: a script that imports bench.cli and calls main.
    launcher.write_text(
        "import sys\nfrom bench.cli import main\n\nif __name__ == '__main__':\n    sys.exit(main())\n"
    )
    out = tmp_path / "sweep.jsonl"

    code, stdout, stderr = finish(
        start(run_args(out, "--models", "fault_tiny", "--resolutions", "16x16"), cwd=work, launcher=launcher)
    )
    assert code == 0, stderr
    assert not marker.exists(), f"code planted in the working directory ran: {marker.read_text()}"
    (record,) = read(out)
    assert record["status"] == "ok" and record["latency_ms"]["processes"] >= 2


# ------------------------------------------------------------------------------ item 3: orphans, signals


@pytest.mark.slow
def test_no_process_outlives_a_runner_killed_with_sigkill(tmp_path):
    pidfile = tmp_path / "worker.pid"
    out = tmp_path / "sweep.jsonl"
    runner = start(
        run_args(out, "--models", "fault_sleeps", "--resolutions", "16x16", "--timeout", "600"),
        env={PIDFILE: str(pidfile)},
    )
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 300, "the hanging worker")
        assert len(session_processes(runner.pid)) >= 3  # runner, fork server, resource tracker, worker
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(30)
        wait_for(lambda: not session_processes(runner.pid), 30, "every helper and worker to end")
    finally:
        end_session(runner.pid)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_the_runner_like_ctrl_c_and_resume_reuses_its_rounds(tmp_path, signum):
    pidfile = tmp_path / "worker.pid"
    out = tmp_path / "sweep.jsonl"
    runner = start(
        run_args(out, "--models", "fault_tiny,fault_sleeps", "--resolutions", "16x16", "--timeout", "600"),
        env={PIDFILE: str(pidfile)},
    )
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 300, "the hanging worker")
        os.kill(runner.pid, signum)
        _, stderr = runner.communicate(timeout=60)  # returns once no process holds its pipes
        wait_for(lambda: not session_processes(runner.pid), 30, "every helper and worker to end")
    finally:
        end_session(runner.pid)
    assert runner.returncode == 128 + signum, stderr
    assert "rerun with --resume" in stderr and "Traceback" not in stderr, stderr
    journal = [json.loads(line) for line in (tmp_path / "sweep.jsonl.rounds").read_text().splitlines()]
    assert [(e["model"], e["process"]) for e in journal] == [("fault_tiny", 1)]
    assert out.read_text() == ""  # no cell finished its rounds: nothing half-written either

    code, _, stderr = finish(
        start(run_args(out, "--models", "fault_tiny", "--resolutions", "16x16", "--resume"))
    )
    assert code == 0, stderr
    (record,) = read(out)
    reused = json.loads((tmp_path / "sweep.jsonl.run.json").read_text())["runs"][-1]["reused_processes"]
    assert reused == 1, stderr
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
    code, _, stderr = finish(
        start(run_args(out, "--models", "fault_sigkill,fault_signal", "--resolutions", "16x16"))
    )
    assert code == 0, stderr
    if oom_kills() != before:
        pytest.skip("the kernel's OOM killer ran during the test: a SIGKILL may honestly be an OOM kill")
    records = {r["model"]: r for r in read(out)}
    assert records["fault_sigkill"]["status"] == "crashed"
    assert records["fault_sigkill"]["error"] == "worker killed by SIGKILL"
    assert records["fault_signal"]["error"] == "worker killed by SIGUSR1"


@pytest.mark.slow
def test_retry_failed_measures_failed_cells_again_keeping_the_old_record(tmp_path):
    out = tmp_path / "sweep.jsonl"
    cells = ("--models", "fault_flaky", "--resolutions", "16x16")
    code, _, stderr = finish(start(run_args(out, *cells), env={FAIL: "1"}))
    assert code == 0, stderr
    assert [r["status"] for r in read(out)] == ["error"]

    code, _, stderr = finish(start(run_args(out, *cells, "--resume")))  # resume never retries
    assert code == 0 and [r["status"] for r in read(out)] == ["error"]
    code, _, stderr = finish(start(run_args(out, *cells, "--retry-failed")))
    assert code == 0, stderr
    assert [r["status"] for r in read(out)] == ["error", "ok"]  # the newest wins; the old one is history

    from bench.records import latest_per_cell
    from bench.store import merge_results, read_records

    assert [r.status for r in latest_per_cell(read_records(out))] == ["ok"]
    assert merge_results([out], tmp_path / "merged.jsonl") == 2  # a file's own history merges as it is


@pytest.mark.slow
def test_stdout_carries_only_the_results_path_and_failures_go_to_stderr(tmp_path):
    out = tmp_path / "sweep.jsonl"
    code, stdout, stderr = finish(start(run_args(out, "--models", "fault_raises", "--resolutions", "16x16")))
    assert code == 0, stderr
    assert stdout == f"{out}\n"
    assert "fault_raises 16x16 b1 cpu/fp32: error: RuntimeError: this model always fails" in stderr
