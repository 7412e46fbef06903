"""Forward latency: warm up until stable, then time each call separately until the median is well known.

CPU calls are timed with `time.perf_counter_ns`. CUDA calls are timed with CUDA events recorded on the
current stream around the call, and the host waits for the end event before reading it, so the sample is the
device time of completed work, not the launch time.

The protocol (`TimingPolicy`, `sample_latency`):

1. Warm-up. One-time costs (allocator growth, oneDNN/cuDNN kernel selection, lazy initialisation, caches,
   clocks ramping up) make the first calls slow, and not only the first one. So after a minimum
   (`warmup_iters` calls and `warmup_s` seconds) the warm-up goes on until the median of the last
   `stable_window` call times is within `stable_rel` of the median of the window before it, or until
   `warmup_max_s` seconds of warm-up have passed (then `warmup_stable` is False in the info). A call made
   before (the worker's first forward, which measures peak memory) counts as the first warm-up call
   (`first_ms`), so a model whose one call outlasts the warm-up budget is not called again before sampling.
2. Sampling. Every call is one sample; all are kept. Sampling stops at the first of:
   - "ci_target": at least `min_samples` samples over at least `min_time_s`, and the `confidence` interval
     of the median (bench.measure.stats) is within `ci_target_rel` of the median. It is checked at
     `min_samples` and then every `check_every` samples, which keeps the check's cost (a sort) negligible.
     `for_setup` raises `min_time_s` to `setup_ratio` times the process's set-up time (capped at
     `max_time_s`), so that getting ready (process start, model build, first forward) takes at most
     1 / (1 + setup_ratio) of a worker process's time: a process that converges quickly still spends most
     of its time measuring (bench.run's sweep efficiency);
   - "max_samples": `max_samples` samples;
   - "time_budget": `max_time_s` seconds of sampling (the per-cell time budget).
   It always takes at least 3 samples so that a spread exists.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from bench.measure.stats import summarize

STOP_REASONS = ("ci_target", "time_budget", "max_samples")


@dataclass(frozen=True)
class TimingPolicy:
    """How long to warm up and when to stop sampling (see the module docstring for the protocol)."""

    warmup_iters: int = 3
    warmup_s: float = 1.0
    stable_window: int = 5
    stable_rel: float = 0.05
    warmup_max_s: float = 10.0
    min_samples: int = 20
    min_time_s: float = 1.0
    max_samples: int = 1000
    max_time_s: float = 30.0
    ci_target_rel: float = 0.01
    confidence: float = 0.95
    check_every: int = 5
    setup_ratio: float = 0.0

    def __post_init__(self):
        if min(self.warmup_iters, self.min_samples, self.max_samples) < 0:
            raise ValueError(f"iteration counts must not be negative: {self}")
        times = (self.warmup_s, self.warmup_max_s, self.min_time_s, self.max_time_s, self.stable_rel)
        if min(*times, self.setup_ratio) < 0 or not all(map(math.isfinite, (*times, self.setup_ratio))):
            raise ValueError(f"times and tolerances must not be negative: {self}")
        if self.stable_window < 1 or self.check_every < 1:
            raise ValueError(f"stable_window and check_every must be at least 1: {self}")
        if not 0.0 < self.confidence < 1.0 or self.ci_target_rel <= 0:
            raise ValueError(f"confidence must be in (0, 1) and ci_target_rel positive: {self}")

    def as_dict(self) -> dict:
        return asdict(self)

    def for_setup(self, setup_s: float) -> TimingPolicy:
        """This policy for a process that took `setup_s` seconds to get ready: `min_time_s` at least
        `setup_ratio` x `setup_s`, never above `max_time_s` (see the module docstring)."""
        floor = min(self.setup_ratio * max(setup_s, 0.0), self.max_time_s)
        return replace(self, min_time_s=max(self.min_time_s, floor))


def cpu_call_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def cuda_call_ms(fn: Callable[[], object]) -> float:
    import torch  # here, not at the top: the timing policy is read by code that never imports torch

    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def _device_type(device) -> str:
    return device.type if hasattr(device, "type") else str(device).split(":")[0]


def call_timer(device) -> Callable[[Callable[[], object]], float]:
    """The per-call timer for a device, and the name recorded with its samples."""
    return cuda_call_ms if _device_type(device) == "cuda" else cpu_call_ms


def timer_name(device) -> str:
    return "cuda_event" if _device_type(device) == "cuda" else "perf_counter_ns"


def is_stable(times_ms: list[float], window: int, rel: float) -> bool:
    """Whether the median of the last `window` times is within `rel` of the median of the window before."""
    if len(times_ms) < 2 * window:
        return False
    last = statistics.median(times_ms[-window:])
    previous = statistics.median(times_ms[-2 * window : -window])
    return abs(last - previous) <= rel * previous


def warm_up(
    fn: Callable[[], object],
    policy: TimingPolicy,
    time_call: Callable[[Callable[[], object]], float],
    clock: Callable[[], float],
    first_ms: float | None = None,
) -> dict:
    """Call `fn` until its time is stable or the warm-up budget is spent; `first_ms`: the time of a call
    made before, counted as the first warm-up call (its time included in the budgets).

    Returns {warmup_iters (calls made here), warmup_s (their time), warmup_stable}.
    """
    t0 = clock()
    times = [] if first_ms is None else [first_ms]
    before_s = 0.0 if first_ms is None else first_ms / 1000.0
    stable = False
    while True:
        elapsed = before_s + clock() - t0
        if len(times) >= policy.warmup_iters and elapsed >= policy.warmup_s:
            stable = is_stable(times, policy.stable_window, policy.stable_rel)
            if stable or elapsed >= policy.warmup_max_s:
                break
        times.append(time_call(fn))
    made = len(times) - (first_ms is not None)
    return {"warmup_iters": made, "warmup_s": round(clock() - t0, 4), "warmup_stable": stable}


def stop_reason(samples: list[float], elapsed_s: float, policy: TimingPolicy) -> str | None:
    """Why sampling should stop now, or None to go on (the rule in the module docstring)."""
    n = len(samples)
    first = max(policy.min_samples, 3)  # the first checkpoint; never fewer than 3 samples
    if n < 3:
        return None
    checkpoint = n >= first and (n - first) % policy.check_every == 0
    if (
        checkpoint
        and elapsed_s >= policy.min_time_s
        and summarize(samples, policy.confidence, policy.ci_target_rel)["target_met"]
    ):
        return "ci_target"
    if n >= policy.max_samples:
        return "max_samples"
    if elapsed_s >= policy.max_time_s:
        return "time_budget"
    return None


def sample_latency(
    fn: Callable[[], object],
    policy: TimingPolicy,
    time_call: Callable[[Callable[[], object]], float] = cpu_call_ms,
    clock: Callable[[], float] = time.perf_counter,
    first_ms: float | None = None,
) -> tuple[list[float], dict]:
    """Warm up, then sample; return (latency samples in ms, info).

    info = {warmup_iters, warmup_s, warmup_stable, stop_reason} (stop_reason is one of STOP_REASONS).
    `time_call(fn)` times one call in ms; `clock()` (seconds) measures the warm-up and sampling budgets;
    `first_ms`: a call already made, counted as the first warm-up call.
    """
    info = warm_up(fn, policy, time_call, clock, first_ms)
    samples: list[float] = []
    t0 = clock()
    while True:
        samples.append(time_call(fn))
        reason = stop_reason(samples, clock() - t0, policy)
        if reason:
            return samples, {**info, "stop_reason": reason}
