"""What the fault-injection suite shares: results files written and counted as plain JSON (so that a case
reads the same against any version of the code), the command line run in this process or in a subprocess of
its own session, and the bookkeeping of every process a subprocess leaves behind.

Fixture records are schema 2 (the version every reader since the typed records still reads), complete
enough for every command, and small."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

PLUGIN = "tests.bench.faulty_models"
MACHINE = "faults-box"
WORKLOAD = "segbench-calibration-v1: fixture"

_ENV = {
    "machine": MACHINE,
    "timestamp": "2026-12-01T00:00:00+00:00",
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "git_dirty": False,
    "torch": "2.0",
    "cpu": "CPU X",
    "cpu_count": 2,
    "gpu": None,
    "calibration": {"workload": {"workload": WORKLOAD, "median_ms": 2.0, "ci95": [1.9, 2.1], "n": 50}},
}


def bench_record(model: str = "fastscnn", median: float = 10.0, **fields) -> dict:
    """A schema-2 bench record of `model` at 64x64 on the CPU; `fields` replace or add top-level fields."""
    record = {
        "schema_version": 2,
        "kind": "bench",
        "model": model,
        "group": "realtime",
        "input_hw": [64, 64],
        "batch": 1,
        "device": "cpu",
        "precision": "fp32",
        "backend": "eager",
        "channels_last": False,
        "compile_mode": None,
        "cudnn_benchmark": None,
        "tf32": None,
        "status": "ok",
        "error": None,
        "params": 1000,
        "params_total": 1000,
        "macs": 20000,
        "output_shape": [1, 2, 64, 64],
        "latency_ms": {"median": median, "n": 3, "ci95": [median * 0.98, median * 1.02], "p10": median},
        "latency_samples_ms": [median * 0.98, median, median * 1.02],
        "fps": 1000.0 / median,
        "peak_mem_mb": 12.5,
        "conditions": {"threads": 2},
        "calibration": {"workload": WORKLOAD, "median_ms": 2.0, "ci95": [1.9, 2.1], "n": 50},
        "env": copy.deepcopy(_ENV),
    }
    record.update(fields)
    return record


def eval_record(model: str = "fastscnn", miou: float = 40.0, **fields) -> dict:
    """A schema-2 eval record of `model` on CamVid test, whole images."""
    record = {
        "schema_version": 2,
        "kind": "eval",
        "model": model,
        "dataset": "camvid",
        "split": "test",
        "protocol": "whole",
        "protocol_spec": {"name": "whole", "params": {}},
        "status": "ok",
        "error": None,
        "miou": miou,
        "acc": 80.0,
        "per_class_iou": {"Sky": miou},
        "weights": {"source": "trained here", "path": "w.pt", "sha256": "ab"},
        "n_images": 3,
        "cost": {"latency_ms_per_image": 5.0, "macs_multiplier": 1.0, "threads": 2},
        "env": copy.deepcopy(_ENV),
    }
    record.update(fields)
    return record


def line(record: dict) -> str:
    return json.dumps(record, sort_keys=True)


def write(path: Path, *records: dict, newline_at_end: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(map(line, records))
    path.write_text(text + ("\n" if newline_at_end and records else ""))
    return path


# ------------------------------------------------------------------------------------------ counting


def records(path: Path) -> list[dict]:
    """The JSON objects of a results file's lines (a torn last line left out), as any reader sees them."""
    if not Path(path).exists():
        return []
    found = []
    for text in Path(path).read_text(encoding="utf-8").split("\n"):
        if text.strip():
            with contextlib.suppress(ValueError):
                found.append(json.loads(text))
    return found


def cell(record: dict) -> tuple:
    """What identifies a cell (a bench cell, an evaluation) across files, read from the plain JSON."""
    axes = ("input_hw", "batch", "device", "precision", "backend", "dataset", "split", "protocol")
    return (record.get("kind", "bench"), record.get("model"), *(json.dumps(record.get(a)) for a in axes))


def census(*paths: Path) -> Counter:
    """Records per cell over `paths`: compared before and after a fault (none lost, none duplicated)."""
    return Counter(cell(r) for path in paths for r in records(path))


def assert_none_duplicated(path: Path) -> None:
    duplicated = {k: n for k, n in census(path).items() if n > 1}
    assert not duplicated, f"cells recorded twice in {path}: {duplicated}"


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (hidden ones too) with its bytes: what a failed command must leave as is."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ the CLI


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.err.strip().splitlines()

    def one_line_error(self, *fragments: str) -> str:
        """Assert the command failed as bad input: exit 2, one `segbench: error:` line holding every
        fragment, no traceback, nothing on stdout; return the line."""
        assert self.code == 2, (self.code, self.err[-2000:])
        assert "Traceback" not in self.err, self.err[-2000:]
        errors = [text for text in self.lines if text.startswith("segbench: error:")]
        assert len(errors) == 1 and errors[0] == self.lines[-1], self.lines
        for fragment in fragments:
            assert fragment in errors[0], (fragment, errors[0])
        assert self.out == "", self.out
        return errors[0]


def cli(*argv) -> Result:
    """`segbench argv` in this process (fast: torch and the models are imported once). An exception escaping
    the command (a traceback, for a user) fails the test with that exception."""
    from bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return Result(code, out.getvalue(), err.getvalue())


def file_size_limit(limit: int):
    """A preexec function: files of the child may not grow past `limit` bytes (Python ignores SIGXFSZ, so a
    write past it fails with EFBIG): a disk that fills at a chosen byte, without a file system to fill."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def start(argv, cwd: Path, env: dict | None = None, launcher: Path | None = None, preexec=None):
    """`segbench argv` in a new session (every process it starts can be found and ended); through
    `launcher` (a script path) instead of `-m bench` when given, as an installed command starts."""
    command = [sys.executable, str(launcher)] if launcher else [sys.executable, "-m", "bench"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.Popen(
        [*command, *map(str, argv)],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=preexec,
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


def finish(process, timeout_s: float = 600) -> Result:
    """Wait for a started command; whatever happens, no process of its session is left running."""
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    finally:
        end_session(process.pid)
    return Result(process.returncode, stdout, stderr)


def run_argv(out: Path, *args) -> list[str]:
    """`segbench run` of the fixture models into `out` (the structure counts beside it, under results/ of
    the working directory the test gives)."""
    return ["run", *args, "--out", out, "--plugins", PLUGIN, "--no-progress"]


def make_camvid(root: Path, n: int = 2, hw: tuple[int, int] = (24, 32)) -> Path:
    """A CamVid-layout test split of `n` random images and labels (what `segbench eval --dataset camvid`
    reads), small enough to evaluate in a second."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder in ("test", "testannot"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(root / "test" / f"{i}.png")
        Image.fromarray(rng.integers(0, 12, hw, dtype=np.uint8)).save(root / "testannot" / f"{i}.png")
    return root


EVAL_MODEL = "fastscnn"  # a small zoo model with CamVid's 11 classes


def eval_argv(data: Path, out: Path, *args) -> list:
    return ["eval", "--model", EVAL_MODEL, "--dataset", "camvid", "--data-root", data, "--out", out, *args]
