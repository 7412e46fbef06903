"""The pytest-benchmark suite's fixed conditions, and the provenance `segbench compare` reads from its JSON.

Run by `nox -s regress` (compared with results/baselines/<machine>/benchmarks.json) and `nox -s baseline`
(which rewrites that file); not part of `nox -s tests` (pytest's testpaths is tests/).

Conditions: torch runs on one intra-op thread unless SEGBENCH_BENCH_THREADS says otherwise, because one
thread is the least disturbed by neighbours on a shared machine and the same on every machine. The JSON's
machine_info gets `segbench_machine` (bench.env.machine_slug: latency is compared only within one machine),
`torch_threads`, and `calibration`: the fixed calibration workload (`bench.measure.calibration`) timed at the
end of the session. Each benchmark's extra_info also gets its own `calibration` (the `calibrated` fixture):
timed between its rounds and right before and after it, which `segbench compare` prefers, since on a shared
machine the load changes within seconds (one per-session figure was seen to differ 3x from in-suite timings).
"""

import os

import pytest
import torch

THREADS = int(os.environ.get("SEGBENCH_BENCH_THREADS", "1"))


def pytest_configure(config):
    torch.set_num_threads(THREADS)


def pytest_benchmark_update_machine_info(config, machine_info):
    from bench.env import machine_slug
    from bench.measure.calibration import time_calibration

    machine_info["segbench_machine"] = machine_slug("cpu")
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["torch"] = torch.__version__
    machine_info["calibration"] = time_calibration("cpu", THREADS)


@pytest.fixture(autouse=True)
def _fixed_threads():
    """A benchmark that changed the thread count must not change the next one's condition."""
    yield
    torch.set_num_threads(THREADS)


@pytest.fixture
def calibrated(benchmark):
    """`calibrated(fn, args=(), rounds=..., warmup_rounds=...)`: benchmark.pedantic, one call per round, with
    the calibration workload timed between rounds (in pytest-benchmark's untimed `setup`) and right before and
    after, into extra_info["calibration"]. Interleaved, the calibration sees the same moments of load as the
    rounds it normalises; every benchmark here goes through this."""
    from bench.measure.calibration import (
        ADJACENT_POLICY,
        build_workload,
        calibration_samples,
        calibration_summary,
    )
    from bench.measure.latency import cpu_call_ms

    module, x, a = build_workload()

    def calibration_call():
        with torch.inference_mode():
            return module(x, a)

    def run(fn, args=(), rounds=20, warmup_rounds=3):
        samples = calibration_samples("cpu", THREADS, ADJACENT_POLICY)

        def between_rounds():
            samples.extend(cpu_call_ms(calibration_call) for _ in range(2))

        result = benchmark.pedantic(
            fn, args=args, setup=between_rounds, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1
        )
        samples.extend(calibration_samples("cpu", THREADS, ADJACENT_POLICY))
        benchmark.extra_info["calibration"] = calibration_summary(samples, THREADS, "cpu")
        return result

    return run
