"""Peak memory of one forward pass, by each method that applies, since the methods disagree (METHODS.md #10).

CPU: the worker process's peak resident set (VmHWM) above its baseline. The kernel's high-water mark is reset
through /proc/self/clear_refs, so the peak covers exactly the measured region. CUDA: the caching allocator's
`max_memory_allocated` above its baseline is the headline (`peak_mb`: what the tensors needed); beside it
`max_memory_reserved` (what the allocator held from the driver, cached blocks included) and the device memory
used as NVML reports it (what nvidia-smi shows), see `PeakMemory.details`.
"""

from __future__ import annotations

import resource
from pathlib import Path

import torch

from bench.measure.hardware import nvml_handle, nvml_init, nvml_shutdown

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


def nvml_used_mb(index: int) -> float | None:
    """Device memory in use on cuda:`index` as NVML counts it (every process, CUDA contexts included)."""
    nvml = nvml_init()
    if nvml is None:
        return None
    try:
        return nvml.nvmlDeviceGetMemoryInfo(nvml_handle(nvml, index)).used / 2**20
    except Exception:  # noqa: BLE001 - provenance, never worth losing the measurement
        return None
    finally:
        nvml_shutdown(nvml)


def _cuda_index(device: torch.device) -> int:
    if device.index is not None:
        return device.index
    try:
        return torch.cuda.current_device()
    except Exception:  # noqa: BLE001 - no CUDA runtime (a faked allocator in tests)
        return 0


class PeakMemory:
    """Context manager: `peak_mb` is the peak memory inside the block above the level at its start.

    The CPU baseline is taken at entry, so allocations made inside the block (the model's weights, the input,
    activations) all count. `method` names what `peak_mb` is; `details` has every method that applies:

    - cpu_peak_rss_mb (CPU device): peak resident set above the level at entry (= peak_mb).
    - cuda_max_allocated_mb (CUDA): `torch.cuda.max_memory_allocated` above the level at entry (= peak_mb).
    - cuda_max_reserved_mb (CUDA): `torch.cuda.max_memory_reserved` above the level at entry; includes the
      allocator's cache and fragmentation.
    - nvml_used_mb (CUDA): device memory used as NVML reports it at the end of the block minus at its start.
      Unlike the two above it also counts cuDNN/cuBLAS workspaces, kernel modules loaded on first use and
      memory the allocator keeps cached (not its peak: what is held at exit), and *other processes* on the
      same GPU; the CUDA context itself is created before the start reading, so it is not in the difference.

    Fields that do not apply, or could not be read, are None; reading them never fails the block.
    """

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.peak_mb: float | None = None
        self.method = "cuda_max_memory_allocated" if self.device.type == "cuda" else "rss_hwm"
        self.details: dict[str, float | None] = dict.fromkeys(
            ("cpu_peak_rss_mb", "cuda_max_allocated_mb", "cuda_max_reserved_mb", "nvml_used_mb")
        )

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # also creates the CUDA context, before NVML's first reading
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20
            self._base_reserved = _optional(lambda: torch.cuda.memory_reserved(self.device) / 2**20)
            self._index = _cuda_index(self.device)
            self._base_nvml = nvml_used_mb(self._index)
        else:
            if not reset_peak_rss():
                self.method = "ru_maxrss_unreset"  # peak since process start: an upper bound
            self._base = rss_mb()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            reserved = _optional(lambda: torch.cuda.max_memory_reserved(self.device) / 2**20)
            nvml = nvml_used_mb(self._index)
            self.peak_mb = max(0.0, peak - self._base)
            self.details["cuda_max_allocated_mb"] = round(self.peak_mb, 2)
            self.details["cuda_max_reserved_mb"] = _above(reserved, self._base_reserved)
            self.details["nvml_used_mb"] = _above(nvml, self._base_nvml, floor=False)
        else:
            self.peak_mb = max(0.0, peak_rss_mb() - self._base)
            self.details["cpu_peak_rss_mb"] = round(self.peak_mb, 2)


def _optional(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a secondary figure; the headline peak does not depend on it
        return None


def _above(value: float | None, base: float | None, floor: bool = True) -> float | None:
    """value - base rounded to 0.01 MiB; None if either is unknown. NVML's difference may be negative (another
    process freed memory meanwhile) and is kept as is (floor=False) rather than hidden."""
    if value is None or base is None:
        return None
    diff = value - base
    return round(max(0.0, diff) if floor else diff, 2)
