import pytest
import torch

from bench.measure import roofline as rl
from bench.measure.roofline import measure_peaks, peak_keys, roofline

PEAKS = {"tflops": {"fp32": 50.0, "tf32": 400.0, "fp16": 800.0}, "gbps": 4000.0}


def test_achieved_rate_is_two_macs_over_the_median():
    # 5e9 MACs for the whole batch in 2 ms: 1e10 FLOPs / 2e-3 s = 5e12 FLOP/s.
    result = roofline(5_000_000_000, 2.0, 1, PEAKS, "fp32")
    assert result["achieved_tflops"] == pytest.approx(5.0)
    assert result["peak_tflops"] == 50.0 and result["peak_key"] == "fp32"
    assert result["fraction"] == pytest.approx(0.1)
    assert result["peak_gbps"] == 4000.0


def test_macs_already_cover_the_batch():
    # The same batch-level MACs and median give the same rate whatever the batch: no second factor.
    assert roofline(10**12, 100.0, 8, PEAKS, "fp32") == roofline(10**12, 100.0, 1, PEAKS, "fp32")
    assert roofline(10**12, 100.0, 8, PEAKS, "fp32")["achieved_tflops"] == pytest.approx(20.0)


def test_tf32_cells_are_compared_with_the_tf32_peak():
    result = roofline(5_000_000_000, 2.0, 4, PEAKS, "fp32", tf32=True)
    assert result["peak_key"] == "tf32" and result["fraction"] == pytest.approx(5.0 / 400)
    assert roofline(5_000_000_000, 2.0, 1, PEAKS, "fp16", tf32=True)["peak_key"] == "fp16"


def test_no_fraction_above_one_the_peak_is_too_low():
    # 5e11 MACs in 10 ms: 100 TFLOP/s, above the 50 TFLOP/s fp32 peak measured
    result = roofline(5 * 10**11, 10.0, 1, PEAKS, "fp32")
    assert result["achieved_tflops"] == pytest.approx(100.0) and result["fraction"] is None
    assert result["fraction_note"] == "peak too low: achieved 100 TFLOP/s above the measured peak 50"
    assert roofline(5 * 10**11, 20.0, 1, PEAKS, "fp32")["fraction"] == pytest.approx(1.0)  # exactly at it


def test_no_fraction_against_a_peak_measured_with_other_threads():
    peaks = {**PEAKS, "method": {"threads": 2}}
    assert roofline(10**9, 1.0, 1, peaks, "fp32", threads=2)["fraction"] == pytest.approx(0.04)
    other = roofline(10**9, 1.0, 1, peaks, "fp32", threads=1)
    assert (
        other["fraction"] is None
        and other["fraction_note"] == "peak measured with 2 threads, the cell ran with 1"
    )
    assert roofline(10**9, 1.0, 1, PEAKS, "fp32", threads=1)["fraction"] == pytest.approx(
        0.04
    )  # not recorded


def test_the_peak_is_the_best_repeat_not_the_median(monkeypatch):
    clock = iter([0, 8_000_000, 0, 2_000_000, 0, 6_000_000])  # three timed calls: 8, 2 and 6 ms
    monkeypatch.setattr(rl.time, "perf_counter_ns", lambda: next(clock))
    calls = []
    assert rl._time_ms(lambda: calls.append(1), torch.device("cpu"), 3) == 2.0
    assert len(calls) == rl.WARMUP + 3


def test_missing_inputs_give_none_not_an_error():
    assert roofline(None, 2.0, 1, PEAKS, "fp32") is None
    assert roofline(10, None, 1, PEAKS, "fp32") is None
    no_peak = roofline(10**9, 1.0, 1, PEAKS, "bf16")
    assert no_peak["achieved_tflops"] == pytest.approx(2.0) and no_peak["fraction"] is None
    assert roofline(10**9, 1.0, 1, None, "fp32")["peak_gbps"] is None


def test_peak_keys_add_tf32_on_cuda_only():
    assert peak_keys("cuda", ["fp32", "fp16"]) == ["fp32", "tf32", "fp16"]
    assert peak_keys("cpu", ["fp32", "bf16", "fp32"]) == ["fp32", "bf16"]
    with pytest.raises(ValueError, match="fp8"):
        peak_keys("cpu", ["fp8"])


def test_cpu_peaks_are_positive():
    threads = torch.get_num_threads()
    peaks = measure_peaks("cpu", ["fp32", "bf16"], threads=1, matmul_n=128, copy_mb=8, repeats=3)
    assert set(peaks["tflops"]) == {"fp32", "bf16"}
    assert all(v > 0 for v in peaks["tflops"].values()) and peaks["gbps"] > 0
    assert peaks["method"]["threads"] == 1 and peaks["method"]["timer"] == "perf_counter_ns"
    assert peaks["method"]["skipped"] == [] and peaks["method"]["errors"] == {}
    assert torch.get_num_threads() == threads  # restored


def test_rates_follow_from_the_best_timed_repeat(monkeypatch):
    monkeypatch.setattr(rl, "_time_ms", lambda fn, device, repeats: 4.0)  # every call "takes" 4 ms
    peaks = measure_peaks("cpu", ["fp32"], matmul_n=64, copy_mb=2, repeats=1)
    assert peaks["tflops"]["fp32"] == pytest.approx(2 * 64**3 / 4e-3 / 1e12)
    assert peaks["gbps"] == pytest.approx(2 * 2 * 2**20 / 4e-3 / 1e9)


def test_the_budget_and_failures_leave_gaps_not_errors(monkeypatch):
    peaks = measure_peaks("cpu", ["fp32", "bf16"], budget_s=0, matmul_n=64, copy_mb=2, repeats=1)
    assert peaks["method"]["skipped"] == ["bf16", "copy"]  # the first measurement always runs
    assert peaks["tflops"]["fp32"] > 0 and peaks["tflops"]["bf16"] is None and peaks["gbps"] is None

    def broken(*args):
        raise RuntimeError("no kernel\nfor this")

    monkeypatch.setattr(rl, "matmul_tflops", broken)
    peaks = measure_peaks("cpu", ["fp32"], matmul_n=64, copy_mb=2, repeats=1)
    assert peaks["tflops"] == {"fp32": None} and peaks["gbps"] > 0
    assert peaks["method"]["errors"] == {"fp32": "RuntimeError: no kernel"}


@pytest.mark.cuda
def test_cuda_peaks_are_measured_per_precision_and_tf32_is_faster():
    tf32 = torch.backends.cuda.matmul.allow_tf32
    peaks = measure_peaks("cuda", ["fp32", "bf16"], matmul_n=4096, copy_mb=512)
    assert set(peaks["tflops"]) == {"fp32", "tf32", "bf16"}
    assert all(v > 0 for v in peaks["tflops"].values()) and peaks["gbps"] > 0
    assert peaks["tflops"]["tf32"] > peaks["tflops"]["fp32"]  # tensor cores
    assert peaks["method"]["timer"] == "cuda_event"
    assert torch.backends.cuda.matmul.allow_tf32 == tf32  # restored


def test_cuda_timing_uses_events_with_a_faked_cuda(monkeypatch):
    elapsed = iter([3.0, 1.0, 2.0])
    calls = []

    class Event:
        def __init__(self, enable_timing=False):
            assert enable_timing

        def record(self):
            calls.append("record")

        def synchronize(self):
            calls.append("event_sync")

        def elapsed_time(self, end):
            return next(elapsed)

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    ran = []
    assert rl._time_ms(lambda: ran.append(1), torch.device("cuda"), repeats=3) == 1.0  # the best repeat
    assert len(ran) == rl.WARMUP + 3
    assert calls == ["sync"] + ["record", "record", "event_sync"] * 3


def test_cuda_calibration_measures_fp32_with_tf32_off_and_on(monkeypatch):
    seen = []

    def fake_matmul(device, key, n, repeats):
        seen.append((device.type, key, n, repeats))
        return {"fp32": 60.0, "tf32": 450.0, "fp16": 900.0}[key]

    monkeypatch.setattr(rl, "matmul_tflops", fake_matmul)
    monkeypatch.setattr(rl, "copy_gbps", lambda device, mb, repeats: seen.append(("copy", mb)) or 4000.0)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    peaks = measure_peaks("cuda", ["fp32", "fp16"])
    assert seen == [
        ("cuda", "fp32", 8192, 10),
        ("cuda", "tf32", 8192, 10),
        ("cuda", "fp16", 8192, 10),
        ("copy", 2048),
    ]
    assert peaks["tflops"] == {"fp32": 60.0, "tf32": 450.0, "fp16": 900.0} and peaks["gbps"] == 4000.0
    assert peaks["method"]["timer"] == "cuda_event" and peaks["method"]["threads"] is None


def test_tf32_switch_is_restored():
    old = torch.backends.cuda.matmul.allow_tf32
    with rl._tf32(not old):
        assert torch.backends.cuda.matmul.allow_tf32 is (not old)
    assert torch.backends.cuda.matmul.allow_tf32 is old
