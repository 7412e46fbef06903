"""The GPU window on a real GPU (skipped without one): a one-model window end to end (eager, CUDA graph and
compile, one process timed at a time), and the bare CUDA-event loop of the timer self-check."""

import json
import subprocess
import sys

import pytest
import torch

from bench.pack import pack_folder
from bench.records import BenchRecord
from bench.store import read_records
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.cuda


def test_a_one_model_window_measures_writes_and_fits(tmp_path):
    out = tmp_path / "window"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "gpu",
            "--out",
            str(out),
            "--models",
            "sinet",
            "--phases",
            "eager,cuda_graph,compile",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "window.json").read_text())
    assert {s["outcome"] for s in manifest["steps"]} == {"ok"}
    records = read_records(out / manifest["records"])
    assert [r.execution.backend for r in records] == ["eager", "eager", "cuda_graph", "compile"]
    assert all(isinstance(r, BenchRecord) and r.ok and r.latency.median > 0 for r in records)
    assert all(r.latency.processes == 2 for r in records)
    assert records[0].env.gpu_name and records[0].env.calibration["peaks"]["tflops"]["fp16"] > 0
    assert records[2].get("agreement") is not None  # the CUDA graph's output against eager fp32
    compiled = records[3].get("conditions")["window"]
    assert records[3].get("compile_s") > 0 and compiled["cold_cache"] and "compile_gpu_wait_s" in compiled
    assert records[0].get("macs") is not None  # from the committed structure record, checked here
    timed = sorted(
        (t["granted"], t["released"])
        for r in records
        for p in r.get("conditions")["processes"]
        for t in p["gpu_turns"]
        if t["kind"] == "exclusive"
    )
    assert all(a[1] <= b[0] for a, b in zip(timed, timed[1:], strict=False))  # one timed at a time
    assert pack_folder(out) == []


def test_the_bare_cuda_event_loop_times_a_forward():
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from timer_agreement import event_loop_ms

    x = torch.randn(1024, 1024, device="cuda")
    result = event_loop_ms(lambda: x @ x, iters=20, reps=3)
    assert result["median"] > 0 and result["iters"] == 20 and result["reps"] == 3
