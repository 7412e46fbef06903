"""Forward latency: warm up, then time each call separately and keep every sample.

CPU calls are timed with `time.perf_counter_ns`. CUDA calls are timed with CUDA events recorded on the
current stream around the call, and the host waits for the end event before reading it, so the sample is the
device time of completed work, not the launch time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class TimingPolicy:
    """How long to warm up and how many samples to take.

    Warm-up runs at least `warmup_iters` calls and for at least `warmup_s` seconds (one-time costs: allocator
    growth, oneDNN/cuDNN kernel selection, lazy initialisation). Sampling stops once it has `min_samples`
    samples spanning at least `min_time_s`, or at `max_samples` or `max_time_s`, whichever comes first; it
    always takes at least 3 samples so that a spread exists.
    """

    warmup_iters: int = 3
    warmup_s: float = 1.0
    min_samples: int = 20
    min_time_s: float = 2.0
    max_samples: int = 1000
    max_time_s: float = 30.0

    def as_dict(self) -> dict:
        return asdict(self)


def cpu_call_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def cuda_call_ms(fn: Callable[[], object]) -> float:
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def call_timer(device: torch.device | str) -> Callable[[Callable[[], object]], float]:
    """The per-call timer for a device, and the name recorded with its samples."""
    return cuda_call_ms if torch.device(device).type == "cuda" else cpu_call_ms


def timer_name(device: torch.device | str) -> str:
    return "cuda_event" if torch.device(device).type == "cuda" else "perf_counter_ns"


def sample_latency(
    fn: Callable[[], object],
    policy: TimingPolicy,
    time_call: Callable[[Callable[[], object]], float] = cpu_call_ms,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], dict]:
    """Warm up, then return (latency samples in ms, {warmup_iters, warmup_s}) for repeated calls of `fn`."""
    t0 = clock()
    warmup_iters = 0
    while warmup_iters < policy.warmup_iters or clock() - t0 < policy.warmup_s:
        time_call(fn)
        warmup_iters += 1
    warmup_s = clock() - t0

    samples: list[float] = []
    t0 = clock()
    while True:
        samples.append(time_call(fn))
        elapsed = clock() - t0
        if len(samples) < 3:
            continue
        if len(samples) >= policy.max_samples or elapsed >= policy.max_time_s:
            break
        if len(samples) >= policy.min_samples and elapsed >= policy.min_time_s:
            break
    return samples, {"warmup_iters": warmup_iters, "warmup_s": round(warmup_s, 4)}
