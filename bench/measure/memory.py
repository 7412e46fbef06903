"""Peak memory of one forward pass.

CPU: the worker process's peak resident set (VmHWM) above its baseline. The kernel's high-water mark is reset
through /proc/self/clear_refs, so the peak covers exactly the measured region. CUDA: the caching allocator's
`max_memory_allocated` above its baseline.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Current resident set size of this process."""
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    """High-water mark of the resident set size since start or since the last reset."""
    kb = _status_kb("VmHWM")
    if kb is None:  # not Linux: ru_maxrss is in KiB on Linux, bytes on macOS; never reset
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux >= 4.0). False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Context manager: `peak_mb` is the peak memory inside the block above the level at its start.

    The CPU baseline is taken at entry, so allocations made inside the block (the model's weights, the input,
    activations) all count.
    """

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.peak_mb: float | None = None
        self.method = "cuda_max_memory_allocated" if self.device.type == "cuda" else "rss_hwm"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            if not reset_peak_rss():
                self.method = "ru_maxrss_unreset"  # peak since process start: an upper bound
            self._base = rss_mb()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = peak_rss_mb()
        self.peak_mb = max(0.0, peak - self._base)
