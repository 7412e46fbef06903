"""GPU hardware state from NVML (the `pynvml` module of nvidia-ml-py), sampled before and after a CUDA cell.

A GPU that is hot or at its power limit lowers its clocks, and the same model then runs slower: a latency is
only comparable with the clocks it ran at. So each CUDA cell records the SM and memory clocks, temperature,
power draw and the driver's clock-event ("throttle") reasons before and after it, and is marked `throttled`
when a real throttle reason shows. Where the device has an energy counter, the energy used between the two
samples gives joules per image.

Everything here is tolerant: no NVML (a CPU machine, no driver) gives None, a query the device does not
support gives None for that field, and nothing raises; a cell's timing must never be lost to its provenance.
"""

from __future__ import annotations

import contextlib

import torch

# NVML's clock-event reason bits (nvml.h, nvmlClocksEventReason*; formerly nvmlClocksThrottleReason*).
THROTTLE_REASON_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}

# Reasons that do not mean the GPU slowed itself down under load: an idle GPU drops its clocks, and
# application clocks, sync boost (clocks matched across GPUs of a group) and the display clock are settings.
# Every other reason (power cap, thermal or hardware slowdown, power brake, board limit, reliability, and
# any bit NVML adds later, named "unknown_0x...") counts as throttling: a false alarm costs a look, a missed
# throttle costs a wrong number.
NOT_THROTTLING = frozenset({"gpu_idle", "applications_clocks_setting", "sync_boost", "display_clock_setting"})

# NVML's cumulative "violation" counters: time (ns) the clocks were held below the requested ones, per cause.
# Unlike the reasons, which are a snapshot at the sample, they cover the whole time between two samples.
VIOLATION_POLICIES = {"power": 0, "thermal": 1}  # NVML_PERF_POLICY_POWER, NVML_PERF_POLICY_THERMAL


def decode_throttle_reasons(mask: int) -> list[str]:
    """Names of the bits set in an NVML clock-event reason mask, in bit order."""
    names = []
    bit = 1
    while bit <= mask:
        if mask & bit:
            names.append(THROTTLE_REASON_BITS.get(bit, f"unknown_{bit:#x}"))
        bit <<= 1
    return names


def throttling(reasons: list[str] | None) -> list[str]:
    """The reasons among `reasons` that mean real throttling (see NOT_THROTTLING)."""
    return [r for r in reasons or () if r not in NOT_THROTTLING]


def nvml_init():
    """The initialised pynvml module, or None without NVML. Pair each success with `nvml_shutdown`."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - no library, no driver: not a CUDA machine
        return None


def nvml_shutdown(nvml) -> None:
    with contextlib.suppress(Exception):  # nothing useful to do about it
        nvml.nvmlShutdown()


def nvml_handle(nvml, index: int):
    """NVML's handle of the GPU torch calls cuda:`index`.

    CUDA and NVML may number GPUs differently (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER), so the handle is
    found by UUID when torch can name it, and by index otherwise.
    """
    try:
        if torch.cuda.is_available():
            uuid = str(torch.cuda.get_device_properties(index).uuid)
            uuid = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
            return nvml.nvmlDeviceGetHandleByUUID(uuid)
    except Exception:  # noqa: BLE001 - fall back to the index
        pass
    return nvml.nvmlDeviceGetHandleByIndex(index)


def _query(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - not supported on this device or driver
        return None


def _reasons_mask(nvml, handle) -> int:
    get = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)  # newer name, same bits
    if get is None:
        get = nvml.nvmlDeviceGetCurrentClocksThrottleReasons
    return int(get(handle))


def _violation_ms(nvml, handle, policy: int) -> float:
    return nvml.nvmlDeviceGetViolationStatus(handle, policy).violationTime / 1e6


def gpu_state(index: int = 0) -> dict | None:
    """A snapshot of cuda:`index`: clocks, temperature, power, throttle reasons and the cumulative counters.

    Fields: sm_clock_mhz, mem_clock_mhz, temperature_c, power_w (NVML's power reading, on most GPUs an
    average over about the last second), throttle_reasons (all reasons set, decoded; see NOT_THROTTLING for
    which are real throttling), energy_mj (the device's total energy counter since the driver loaded),
    violation_ms {power, thermal} (cumulative time held below requested clocks). A field the device does not
    support is None. None when NVML or the GPU is not there.
    """
    nvml = nvml_init()
    if nvml is None:
        return None
    try:
        handle = nvml_handle(nvml, index)
        clock_sm = getattr(nvml, "NVML_CLOCK_SM", 1)
        clock_mem = getattr(nvml, "NVML_CLOCK_MEM", 2)
        sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
        return {
            "sm_clock_mhz": _query(lambda: int(nvml.nvmlDeviceGetClockInfo(handle, clock_sm))),
            "mem_clock_mhz": _query(lambda: int(nvml.nvmlDeviceGetClockInfo(handle, clock_mem))),
            "temperature_c": _query(lambda: int(nvml.nvmlDeviceGetTemperature(handle, sensor))),
            "power_w": _query(lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000),
            "throttle_reasons": _query(lambda: decode_throttle_reasons(_reasons_mask(nvml, handle))),
            "energy_mj": _query(lambda: int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))),
            "violation_ms": {
                cause: _query(lambda p=policy: _violation_ms(nvml, handle, p))
                for cause, policy in VIOLATION_POLICIES.items()
            },
        }
    except Exception:  # noqa: BLE001 - no such GPU, or NVML failed: no state rather than no cell
        return None
    finally:
        nvml_shutdown(nvml)


def _delta(before: dict | None, after: dict | None, *keys: str) -> float | None:
    """after[keys] - before[keys], None when either side lacks it or the counter went backwards."""
    a, b = after, before
    for key in keys:
        a = a.get(key) if isinstance(a, dict) else None
        b = b.get(key) if isinstance(b, dict) else None
    if a is None or b is None or a < b:
        return None
    return a - b


class HardwareMonitor:
    """Context manager around one CUDA cell: `gpu_state` at entry and at exit, summarised by `result`.

    with HardwareMonitor(index) as hw:
        ...  # every forward of the cell
    record["hardware"] = hw.result(images=batch * forwards)
    """

    def __init__(self, index: int = 0):
        self.index = index
        self.before: dict | None = None
        self.after: dict | None = None

    def __enter__(self) -> HardwareMonitor:
        self.before = gpu_state(self.index)
        return self

    def __exit__(self, *exc) -> None:
        self.after = gpu_state(self.index)

    def result(self, images: int) -> dict | None:
        """The record's `hardware` field; None without NVML.

        `images` is the number of images processed inside the block (batch x every forward, warm-up
        included), since the energy counter covers all of them, and the idle gaps between forwards too.

        - throttle_reasons: the real throttle reasons at either sample, plus "power_violation" or
          "thermal_violation" when NVML's violation counters grew during the block (they catch a throttle
          that came and went between the two samples).
        - throttled: whether throttle_reasons is non-empty.
        - throttle_ms: {power, thermal} time held below requested clocks during the block (None unsupported).
        - energy_j_per_image: energy counter difference / images, None where the device has no counter.
        """
        if self.before is None and self.after is None:
            return None
        reasons = set()
        for state in (self.before, self.after):
            reasons.update(throttling((state or {}).get("throttle_reasons")))
        throttle_ms = {c: _delta(self.before, self.after, "violation_ms", c) for c in VIOLATION_POLICIES}
        reasons.update(f"{cause}_violation" for cause, ms in throttle_ms.items() if ms)
        energy_mj = _delta(self.before, self.after, "energy_mj")
        return {
            "before": self.before,
            "after": self.after,
            "throttled": bool(reasons),
            "throttle_reasons": sorted(reasons),
            "throttle_ms": throttle_ms,
            "energy_j_per_image": energy_mj / 1e3 / images if energy_mj is not None and images > 0 else None,
        }
