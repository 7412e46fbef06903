import sys

import pytest
import torch

from bench.measure.memory import PeakMemory, reset_peak_rss
from tests.bench.fake_nvml import FakeNVML


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
    assert big.details == {
        "cpu_peak_rss_mb": round(big.peak_mb, 2),
        "cuda_max_allocated_mb": None,
        "cuda_max_reserved_mb": None,
        "nvml_used_mb": None,
    }


@pytest.mark.cuda
def test_cuda_peak_is_max_memory_allocated_above_baseline():
    with PeakMemory("cuda") as mem:
        t = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
        del t
    assert mem.method == "cuda_max_memory_allocated"
    assert 255 <= mem.peak_mb <= 300
    assert mem.details["cuda_max_reserved_mb"] >= 255
    if mem.details["nvml_used_mb"] is not None:  # the cached 256 MiB block is still held at exit
        assert mem.details["nvml_used_mb"] >= 200


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CUDA allocator that reports what the test sets; the calls made to it are listed."""
    mib = 2**20
    fake = {"allocated": 100 * mib, "peak": 0, "reserved": 128 * mib, "max_reserved": 0, "calls": []}
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "synchronize", lambda device=None: fake["calls"].append("sync"))
    monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda device=None: fake["calls"].append("reset"))
    monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: fake["allocated"])
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: fake["peak"])
    monkeypatch.setattr(cuda, "memory_reserved", lambda device=None: fake["reserved"])
    monkeypatch.setattr(cuda, "max_memory_reserved", lambda device=None: fake["max_reserved"])
    return fake


def test_cuda_path_with_a_faked_allocator_and_nvml(fake_cuda, monkeypatch):
    nvml = FakeNVML(used_bytes=1500 * 2**20)  # context and other processes already there
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with PeakMemory("cuda:0") as mem:
        fake_cuda["peak"] = 612 * 2**20  # the block's peak, including the 100 MiB already there
        fake_cuda["max_reserved"] = 1152 * 2**20  # 128 MiB at entry
        nvml.state["used_bytes"] = 2700 * 2**20
    assert fake_cuda["calls"] == ["sync", "reset", "sync"]
    assert mem.peak_mb == 512 and mem.method == "cuda_max_memory_allocated"
    assert mem.details == {
        "cpu_peak_rss_mb": None,
        "cuda_max_allocated_mb": 512,
        "cuda_max_reserved_mb": 1024,
        "nvml_used_mb": 1200,
    }
    assert nvml.inits == nvml.shutdowns == 2  # one reading at each end


def test_nvml_missing_or_failing_leaves_only_its_figure_empty(fake_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with PeakMemory("cuda") as mem:
        fake_cuda["peak"] = 200 * 2**20
    assert mem.peak_mb == 100 and mem.details["nvml_used_mb"] is None
    assert mem.details["cuda_max_allocated_mb"] == 100

    nvml = FakeNVML()
    nvml.unsupported = {"nvmlDeviceGetMemoryInfo"}
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with PeakMemory("cuda") as mem:
        fake_cuda["peak"] = 300 * 2**20
    assert mem.peak_mb == 200 and mem.details["nvml_used_mb"] is None


def test_a_failing_reserved_counter_does_not_lose_the_peak(fake_cuda, monkeypatch):
    def broken(device=None):
        raise RuntimeError("no reserved stats")

    monkeypatch.setattr(torch.cuda, "max_memory_reserved", broken)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with PeakMemory("cuda") as mem:
        fake_cuda["peak"] = 150 * 2**20
    assert mem.peak_mb == 50 and mem.details["cuda_max_reserved_mb"] is None
