import pytest
import torch
from torch import nn

from bench.measure import latency
from bench.measure.latency import TimingPolicy, sample_latency


class FakeClock:
    """Time advances only when a timed call runs."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def timer(self, call_s):
        def time_call(fn):
            fn()
            self.now += call_s
            return call_s * 1000

        return time_call


def test_stops_at_min_samples_once_min_time_is_reached():
    clock = FakeClock()
    policy = TimingPolicy(warmup_iters=2, warmup_s=0.0, min_samples=5, min_time_s=0.1, max_time_s=10)
    samples, warmup = sample_latency(lambda: None, policy, clock.timer(0.5), clock)
    assert warmup["warmup_iters"] == 2
    assert len(samples) == 5 and samples == [500.0] * 5


def test_keeps_sampling_until_min_time():
    clock = FakeClock()
    policy = TimingPolicy(warmup_iters=0, warmup_s=0.0, min_samples=3, min_time_s=1.0, max_time_s=10)
    samples, _ = sample_latency(lambda: None, policy, clock.timer(0.125), clock)
    assert len(samples) == 8


def test_warmup_runs_for_its_time_and_max_time_caps_sampling():
    clock = FakeClock()
    policy = TimingPolicy(warmup_iters=1, warmup_s=1.0, min_samples=1000, min_time_s=100, max_time_s=2.0)
    samples, warmup = sample_latency(lambda: None, policy, clock.timer(0.25), clock)
    assert warmup["warmup_iters"] == 4
    assert len(samples) == 8


def test_never_fewer_than_three_samples():
    clock = FakeClock()
    policy = TimingPolicy(warmup_iters=0, warmup_s=0, min_samples=1, min_time_s=0, max_time_s=0.1)
    samples, _ = sample_latency(lambda: None, policy, clock.timer(5.0), clock)
    assert len(samples) == 3


def test_real_tiny_model_gives_sane_statistics():
    from bench.measure.stats import summarize

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1)).eval()
    x = torch.randn(1, 3, 64, 64)
    policy = TimingPolicy(warmup_iters=2, warmup_s=0.05, min_samples=20, min_time_s=0.05, max_time_s=5)
    with torch.inference_mode():
        samples, _ = sample_latency(lambda: model(x), policy)
    s = summarize(samples)
    assert s["n"] >= 20
    assert 0 < s["min"] <= s["p10"] <= s["median"] <= s["p90"] <= s["max"] < 1000
    assert s["std"] >= 0


def test_cuda_timer_records_events_around_the_call_and_waits_for_the_end(monkeypatch):
    log = []
    names = iter(["start", "end"])

    class FakeEvent:
        def __init__(self, enable_timing):
            assert enable_timing
            self.name = next(names)

        def record(self):
            log.append(f"record {self.name}")

        def synchronize(self):
            log.append(f"synchronize {self.name}")

        def elapsed_time(self, other):
            log.append("elapsed")
            return 7.5

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    ms = latency.cuda_call_ms(lambda: log.append("forward"))
    assert ms == 7.5
    assert log == ["record start", "forward", "record end", "synchronize end", "elapsed"]


def test_timer_choice_by_device():
    assert latency.call_timer("cpu") is latency.cpu_call_ms
    assert latency.call_timer("cuda") is latency.cuda_call_ms
    assert latency.timer_name("cuda:0") == "cuda_event"


@pytest.mark.cuda
def test_cuda_timer_on_a_real_gpu():
    a = torch.randn(2048, 2048, device="cuda")
    ms = latency.cuda_call_ms(lambda: a @ a)
    assert 0 < ms < 1000
