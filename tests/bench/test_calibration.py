"""The calibration workload: fixed (the same numbers on every build), and timed like a cell."""

import torch

from bench.measure import calibration
from bench.measure.calibration import WORKLOAD, build_workload, time_calibration
from bench.measure.latency import TimingPolicy

FAST = TimingPolicy(
    warmup_iters=1, warmup_s=0.0, min_samples=5, min_time_s=0.0, max_samples=10, max_time_s=0.5
)


def test_the_workload_is_fixed_whatever_the_global_seed():
    torch.manual_seed(1)
    first = build_workload()
    torch.manual_seed(2)
    second = build_workload()
    with torch.inference_mode():
        assert torch.equal(first[0](*first[1:]), second[0](*second[1:]))
    assert tuple(first[1].shape) == (1, 32, 64, 64) and tuple(first[2].shape) == (256, 256)


def test_time_calibration_reports_median_interval_and_version():
    before = torch.get_num_threads()
    result = time_calibration("cpu", threads=1, policy=FAST)
    assert result["workload"] == WORKLOAD and result["workload"].startswith("segbench-calibration-v")
    low, high = result["ci95"]
    assert 0 < low <= result["median_ms"] <= high
    assert 5 <= result["n"] <= 10 and result["threads"] == 1 and result["device"] == "cpu"
    assert torch.get_num_threads() == before  # the caller's setting is restored


def test_time_calibration_uses_the_devices_timer(monkeypatch):
    calls = []

    def fake_timer(device):
        calls.append(torch.device(device).type)
        return lambda fn: (fn(), 2.0)[1]

    monkeypatch.setattr(calibration, "call_timer", fake_timer)
    result = time_calibration("cpu", policy=FAST)
    assert calls == ["cpu"] and result["median_ms"] == 2.0 and result["ci95"] == [2.0, 2.0]
