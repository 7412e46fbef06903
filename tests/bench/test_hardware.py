import sys
import types

import pytest
import torch

from bench.measure.hardware import HardwareMonitor, decode_throttle_reasons, gpu_state, throttling
from tests.bench.fake_nvml import FakeNVML


@pytest.fixture
def nvml(monkeypatch):
    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_reason_bits_decode_to_names():
    assert decode_throttle_reasons(0) == []
    assert decode_throttle_reasons(0x1 | 0x4) == ["gpu_idle", "sw_power_cap"]
    assert decode_throttle_reasons(0x40 | 0x800) == ["hw_thermal_slowdown", "unknown_0x800"]
    assert throttling(["gpu_idle", "applications_clocks_setting", "sync_boost"]) == []
    seen = ["gpu_idle", "sw_thermal_slowdown", "unknown_0x800"]
    assert throttling(seen) == ["sw_thermal_slowdown", "unknown_0x800"]


def test_state_reads_every_field(nvml):
    nvml.state.update(reasons=0x4, violation_ns={0: 2_500_000, 1: 0})
    state = gpu_state(0)
    assert state == {
        "sm_clock_mhz": 1980,
        "mem_clock_mhz": 3201,
        "temperature_c": 41,
        "power_w": 98.5,
        "throttle_reasons": ["sw_power_cap"],
        "energy_mj": 5_000_000,
        "violation_ms": {"power": 2.5, "thermal": 0.0},
    }
    assert nvml.inits == nvml.shutdowns == 1
    assert nvml.handles == [("index", 0)]  # torch has no CUDA here: NVML's numbering


def test_an_unsupported_query_leaves_only_its_field_empty(nvml):
    nvml.unsupported = {"nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetViolationStatus"}
    state = gpu_state(0)
    assert state["energy_mj"] is None and state["violation_ms"] == {"power": None, "thermal": None}
    assert state["sm_clock_mhz"] == 1980


def test_older_nvml_with_the_throttle_name(nvml):
    nvml.nvmlDeviceGetCurrentClocksEventReasons = None  # as absent: getattr finds no function
    nvml.nvmlDeviceGetCurrentClocksThrottleReasons = lambda handle: 0x20
    assert gpu_state(0)["throttle_reasons"] == ["sw_thermal_slowdown"]


def test_the_gpu_torch_names_is_found_by_uuid(nvml, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    props = types.SimpleNamespace(uuid="1234-abcd")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    gpu_state(1)
    assert nvml.handles == [("uuid", "GPU-1234-abcd")]


def test_a_throttle_after_the_cell_marks_it(nvml):
    with HardwareMonitor(0) as hw:
        nvml.state.update(reasons=0x4 | 0x40, temp_c=87)  # at the power cap and hot by the end
    result = hw.result(images=10)
    assert result["throttled"] is True
    assert result["throttle_reasons"] == ["hw_thermal_slowdown", "sw_power_cap"]
    assert result["before"]["throttle_reasons"] == ["gpu_idle"]
    assert result["after"]["temperature_c"] == 87


def test_idle_and_application_clocks_are_not_throttling(nvml):
    with HardwareMonitor(0) as hw:
        nvml.state.update(reasons=0x2)
    result = hw.result(images=10)
    assert result["throttled"] is False and result["throttle_reasons"] == []
    assert result["throttle_ms"] == {"power": 0.0, "thermal": 0.0}


def test_a_throttle_between_the_samples_is_caught_by_the_violation_counter(nvml):
    nvml.state["violation_ns"] = {0: 7_000_000, 1: 3_000_000}
    with HardwareMonitor(0) as hw:
        nvml.state["violation_ns"] = {0: 7_000_000, 1: 4_500_000}  # 1.5 ms thermal; reasons idle again
    result = hw.result(images=1)
    assert result["throttled"] is True
    assert result["throttle_reasons"] == ["thermal_violation"]
    assert result["throttle_ms"] == {"power": 0.0, "thermal": pytest.approx(1.5)}


def test_energy_per_image_is_the_counter_difference(nvml):
    nvml.state["energy_mj"] = 1_000_000
    with HardwareMonitor(0) as hw:
        nvml.state["energy_mj"] = 1_250_000  # 250 J
    assert hw.result(images=50)["energy_j_per_image"] == pytest.approx(5.0)
    assert hw.result(images=0)["energy_j_per_image"] is None


def test_no_energy_counter_gives_no_energy(nvml):
    nvml.unsupported = {"nvmlDeviceGetTotalEnergyConsumption"}
    with HardwareMonitor(0) as hw:
        pass
    result = hw.result(images=8)
    assert result["energy_j_per_image"] is None and result["throttled"] is False


def test_without_nvml_everything_is_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert gpu_state(0) is None
    with HardwareMonitor(0) as hw:
        pass
    assert hw.result(images=4) is None


def test_a_failing_driver_or_missing_gpu_gives_none(nvml):
    nvml.fail_init = True
    assert gpu_state(0) is None
    nvml.fail_init = False
    nvml.unsupported = {"nvmlDeviceGetHandleByIndex"}
    assert gpu_state(3) is None
    assert nvml.inits == nvml.shutdowns == 1  # the handle failed after init: still shut down
