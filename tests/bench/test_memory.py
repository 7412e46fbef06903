import pytest
import torch

from bench.measure.memory import PeakMemory, reset_peak_rss


def test_cpu_peak_covers_a_temporary_allocation_inside_the_block():
    with PeakMemory("cpu") as small:
        torch.ones(1024)
    with PeakMemory("cpu") as big:
        t = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched so it is resident
        del t
    assert big.method == ("rss_hwm" if reset_peak_rss() else "ru_maxrss_unreset")
    if big.method == "rss_hwm":
        assert 60 <= big.peak_mb <= 200
        assert small.peak_mb < 30


@pytest.mark.cuda
def test_cuda_peak_is_max_memory_allocated_above_baseline():
    with PeakMemory("cuda") as mem:
        t = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
        del t
    assert mem.method == "cuda_max_memory_allocated"
    assert 255 <= mem.peak_mb <= 300


def test_cuda_path_with_a_faked_allocator(monkeypatch):
    allocated = {"now": 100 * 2**20, "peak": 0}
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: allocated["peak"])
    with PeakMemory("cuda") as mem:
        allocated["peak"] = 612 * 2**20  # the block's peak, including the 100 MiB already there
    assert calls == ["sync", "reset", "sync"]
    assert mem.peak_mb == 512 and mem.method == "cuda_max_memory_allocated"
