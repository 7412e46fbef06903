import itertools
import random

import pytest
import torch
from torch import nn

from bench.measure import latency
from bench.measure.latency import STOP_REASONS, TimingPolicy, sample_latency
from bench.measure.stats import summarize


class FakeClock:
    """A synthetic sample stream: each timed call 'takes' the next duration, and time advances only then."""

    def __init__(self, durations_ms):
        self.now = 0.0
        self.durations = iter(durations_ms)
        self.calls = 0

    def __call__(self):
        return self.now

    def time_call(self, fn):
        fn()
        ms = next(self.durations)
        self.now += ms / 1000
        self.calls += 1
        return ms


def constant(ms):
    while True:
        yield ms


def noisy(ms, sigma, seed=0):
    rng = random.Random(seed)
    while True:
        yield ms * rng.lognormvariate(0, sigma)


def after(first, rest):
    yield from first
    yield from rest


def run(stream, **policy):
    clock = FakeClock(stream)
    samples, info = sample_latency(lambda: None, TimingPolicy(**policy), clock.time_call, clock)
    return samples, info, clock


NO_MIN_WARMUP = {"warmup_iters": 0, "warmup_s": 0.0}


def test_low_noise_stream_stops_on_the_ci_target_at_min_samples():
    samples, info, _ = run(noisy(10.0, 0.001), **NO_MIN_WARMUP, min_samples=20, min_time_s=0, max_time_s=60)
    assert info["stop_reason"] == "ci_target"
    assert len(samples) == 20  # the first check already meets 1%
    assert summarize(samples)["ci_rel"] <= 0.01


def test_noisy_stream_runs_out_the_time_budget():
    # sigma 0.5: the median's 95% half-width is about 1.2 / sqrt(n), so 1% would take ~15000 samples.
    samples, info, clock = run(
        noisy(10.0, 0.5), **NO_MIN_WARMUP, min_samples=20, max_time_s=5.0, max_samples=100_000
    )
    assert info["stop_reason"] == "time_budget"
    assert summarize(samples)["target_met"] is False
    sampling_s = sum(samples) / 1000
    assert 5.0 <= sampling_s < 5.0 + max(samples) / 1000  # stops at the first sample past the budget


def test_max_samples_caps_a_noisy_stream():
    samples, info, _ = run(noisy(10.0, 0.5), **NO_MIN_WARMUP, min_samples=20, max_samples=50, max_time_s=1e9)
    assert info["stop_reason"] == "max_samples" and len(samples) == 50


def test_ci_is_checked_only_every_few_samples():
    # Noisy for 30 samples, then constant: the median settles, and the stop lands on a checkpoint.
    burst = list(itertools.islice(noisy(10.0, 0.3, seed=5), 30))
    stream = after([10.0] * 10, after(burst, constant(10.0)))
    samples, info, _ = run(stream, **NO_MIN_WARMUP, min_samples=10, check_every=7, max_time_s=1e9)
    assert info["stop_reason"] == "ci_target"
    assert (len(samples) - 10) % 7 == 0 and len(samples) > 10


def test_ci_target_waits_for_min_time():
    # Constant 125 ms: the target is met at once, but only a checkpoint at >= 1 s of sampling may stop it.
    samples, info, _ = run(constant(125.0), **NO_MIN_WARMUP, min_samples=6, min_time_s=1.0, check_every=5)
    assert info["stop_reason"] == "ci_target" and len(samples) == 11  # at 6: 0.75 s; at 11: 1.375 s


def test_warmup_goes_on_until_the_slow_first_calls_are_over():
    # Eight slow calls (lazy init, kernel selection), then steady. Window 5: the last window is steady from
    # call 13 on, but the window before it still has a slow median until call 16.
    slow = [100.0, 90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0]
    samples, info, _ = run(
        after(slow, constant(10.0)),
        warmup_iters=3,
        warmup_s=0.0,
        stable_window=5,
        stable_rel=0.05,
        min_samples=6,
        min_time_s=0,
    )
    assert info["warmup_stable"] is True and info["warmup_iters"] == 16
    assert samples == [10.0] * 6  # no slow call was sampled


def test_warmup_minimums_are_kept_even_when_stable_at_once():
    _, info, _ = run(constant(125.0), warmup_iters=12, warmup_s=2.0, stable_window=3, min_samples=5)
    assert info["warmup_iters"] == 16  # 2 s of 125 ms calls outlasts the 12 calls
    assert info["warmup_s"] == pytest.approx(2.0) and info["warmup_stable"] is True


def test_warmup_that_never_settles_stops_at_its_budget_and_says_so():
    def drifting():  # 10% faster every call: never within 5% window to window
        ms = 1000.0
        while True:
            yield ms
            ms *= 0.9

    _, info, _ = run(
        after(drifting(), constant(1.0)), warmup_iters=0, warmup_s=0.0, warmup_max_s=3.0, min_samples=5
    )
    assert info["warmup_stable"] is False
    assert info["warmup_s"] >= 3.0


def test_never_fewer_than_three_samples():
    samples, info, _ = run(constant(5000.0), **NO_MIN_WARMUP, min_samples=1, max_samples=1, max_time_s=0.1)
    assert len(samples) == 3 and info["stop_reason"] == "max_samples"


def test_too_few_samples_for_a_95_percent_interval_never_meet_the_target():
    # Identical samples, so the min..max interval has zero width; but at n = 5 it covers only 94%.
    samples, info, _ = run(constant(10.0), **NO_MIN_WARMUP, min_samples=5, min_time_s=0, check_every=1)
    assert info["stop_reason"] == "ci_target" and len(samples) == 6


def test_info_fields_and_policy_dict():
    _, info, _ = run(constant(1.0), min_samples=5)
    assert set(info) == {"warmup_iters", "warmup_s", "warmup_stable", "stop_reason"}
    assert info["stop_reason"] in latency.STOP_REASONS
    d = TimingPolicy().as_dict()
    assert d["ci_target_rel"] == 0.01 and d["confidence"] == 0.95 and TimingPolicy(**d) == TimingPolicy()


@pytest.mark.parametrize(
    "bad", [{"stable_window": 0}, {"confidence": 1.0}, {"ci_target_rel": 0}, {"max_time_s": -1}]
)
def test_nonsense_policies_are_refused(bad):
    with pytest.raises(ValueError):
        TimingPolicy(**bad)


def test_real_tiny_model_gives_sane_statistics():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1)).eval()
    x = torch.randn(1, 3, 64, 64)
    policy = TimingPolicy(
        warmup_iters=2, warmup_s=0.05, warmup_max_s=0.5, min_samples=20, min_time_s=0.05, max_time_s=2
    )
    with torch.inference_mode():
        samples, info = sample_latency(lambda: model(x), policy)
    s = summarize(samples, policy.confidence, policy.ci_target_rel)
    # Which rule stops depends on how busy the machine is (a noisy one may never meet the 1% target and
    # reach max_samples or the 2 s budget instead); whichever it is, its own condition must hold.
    reason = info["stop_reason"]
    assert reason in STOP_REASONS
    if reason == "ci_target":
        assert s["n"] >= policy.min_samples and s["target_met"]
    elif reason == "max_samples":
        assert s["n"] == policy.max_samples
    else:
        # The budget ends sampling at the first call that crosses it, so every earlier call fit inside it.
        assert s["n"] < policy.max_samples and sum(samples[:-1]) / 1e3 < policy.max_time_s
    assert 0 < s["min"] <= s["p10"] <= s["median"] <= s["p90"] <= s["p99"] <= s["max"] < 1000
    assert s["ci95"][0] <= s["median"] <= s["ci95"][1]


class FakeEvent:
    """Stands in for torch.cuda.Event: logs what is called, and reports a fixed elapsed time."""

    log: list = []
    elapsed_ms = 7.5

    def __init__(self, enable_timing):
        assert enable_timing
        self.name = ("start", "end")[sum(e.startswith("new") for e in self.log) % 2]
        self.log.append(f"new {self.name}")

    def record(self):
        self.log.append(f"record {self.name}")

    def synchronize(self):
        self.log.append(f"synchronize {self.name}")

    def elapsed_time(self, other):
        self.log.append("elapsed")
        return self.elapsed_ms


def test_cuda_timer_records_events_around_the_call_and_waits_for_the_end(monkeypatch):
    monkeypatch.setattr(FakeEvent, "log", [])
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    ms = latency.cuda_call_ms(lambda: FakeEvent.log.append("forward"))
    assert ms == 7.5
    assert FakeEvent.log == [
        "new start",
        "new end",
        "record start",
        "forward",
        "record end",
        "synchronize end",
        "elapsed",
    ]


def test_sampling_with_the_cuda_timer_uses_event_times(monkeypatch):
    monkeypatch.setattr(FakeEvent, "log", [])
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    policy = TimingPolicy(warmup_iters=1, warmup_s=0, stable_window=1, min_samples=6, min_time_s=0)
    samples, info = sample_latency(lambda: None, policy, latency.call_timer("cuda"))
    assert samples == [7.5] * 6 and info["stop_reason"] == "ci_target"


def test_timer_choice_by_device():
    assert latency.call_timer("cpu") is latency.cpu_call_ms
    assert latency.call_timer("cuda") is latency.cuda_call_ms
    assert latency.timer_name("cuda:0") == "cuda_event"
    assert latency.timer_name("cpu") == "perf_counter_ns"


@pytest.mark.cuda
def test_cuda_timer_on_a_real_gpu():
    a = torch.randn(2048, 2048, device="cuda")
    ms = latency.cuda_call_ms(lambda: a @ a)
    assert 0 < ms < 1000
    policy = TimingPolicy(warmup_iters=3, warmup_s=0.1, warmup_max_s=2, min_samples=20, max_time_s=5)
    samples, info = sample_latency(lambda: a @ a, policy, latency.call_timer("cuda"))
    assert len(samples) >= 20 and all(s > 0 for s in samples) and info["stop_reason"] in latency.STOP_REASONS


def test_a_call_made_before_counts_as_the_first_warmup_call():
    # A 900 ms first forward outlasts a 0.6 s warm-up budget: no further warm-up call before sampling.
    clock = FakeClock(constant(900.0))
    policy = TimingPolicy(warmup_iters=1, warmup_s=0.2, warmup_max_s=0.6, min_samples=3, min_time_s=0)
    samples, info = sample_latency(lambda: None, policy, clock.time_call, clock, first_ms=900.0)
    assert info["warmup_iters"] == 0 and len(samples) == clock.calls
    # Without it, the same policy makes one warm-up call first.
    clock = FakeClock(constant(900.0))
    _, info = sample_latency(lambda: None, policy, clock.time_call, clock)
    assert info["warmup_iters"] == 1


def test_a_fast_model_still_warms_up_for_its_minimum_after_the_first_call():
    clock = FakeClock(constant(10.0))
    policy = TimingPolicy(warmup_iters=1, warmup_s=0.2, stable_window=3, min_samples=5, min_time_s=0)
    _, info = sample_latency(lambda: None, policy, clock.time_call, clock, first_ms=50.0)
    assert info["warmup_iters"] == 15  # 0.05 s before, then 10 ms calls until 0.2 s in all


def test_sampling_lasts_at_least_setup_ratio_times_the_set_up():
    policy = TimingPolicy(min_time_s=0.5, max_time_s=6.0, setup_ratio=4.0)
    assert policy.for_setup(1.0).min_time_s == 4.0
    assert policy.for_setup(0.05).min_time_s == 0.5  # never below the policy's own minimum
    assert policy.for_setup(3.0).min_time_s == 6.0  # never above its maximum
    assert TimingPolicy(min_time_s=0.5).for_setup(10.0).min_time_s == 0.5  # no ratio: unchanged
    samples, info, _ = run(constant(100.0), **NO_MIN_WARMUP, min_samples=6, min_time_s=0)
    assert info["stop_reason"] == "ci_target" and len(samples) == 6
    clock = FakeClock(constant(100.0))
    slow_setup = TimingPolicy(**NO_MIN_WARMUP, min_samples=6, min_time_s=0, setup_ratio=2.0).for_setup(1.0)
    samples, info = sample_latency(lambda: None, slow_setup, clock.time_call, clock)
    assert info["stop_reason"] == "ci_target" and sum(samples) >= 2000.0


@pytest.mark.parametrize("bad", [{"setup_ratio": -1.0}, {"max_time_s": float("nan")}])
def test_nonsense_setup_ratios_are_refused(bad):
    with pytest.raises(ValueError):
        TimingPolicy(**bad)
