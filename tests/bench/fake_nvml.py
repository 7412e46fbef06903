"""A stand-in for the pynvml module (nvidia-ml-py), for testing NVML code paths on a machine without a GPU.

Install it with `monkeypatch.setitem(sys.modules, "pynvml", FakeNVML())`; change `fake.state` to change what
the "GPU" reports; name a function in `fake.unsupported` to make it raise as NVML does for an unsupported
query.
"""

from __future__ import annotations

import types


class NVMLError(Exception):
    pass


class FakeNVML(types.ModuleType):
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, **state):
        super().__init__("pynvml")
        self.state = {
            "sm_mhz": 1980,
            "mem_mhz": 3201,
            "temp_c": 41,
            "power_mw": 98_500,
            "reasons": 0x1,  # idle
            "energy_mj": 5_000_000,
            "violation_ns": {0: 0, 1: 0},
            "used_bytes": 1024 * 2**20,
            **state,
        }
        self.unsupported: set[str] = set()
        self.fail_init = False
        self.inits = self.shutdowns = 0
        self.handles: list = []

    def _check(self, name):
        if name in self.unsupported:
            raise NVMLError(f"{name}: Not Supported")

    def nvmlInit(self):
        if self.fail_init:
            raise NVMLError("Driver Not Loaded")
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, index):
        self._check("nvmlDeviceGetHandleByIndex")
        self.handles.append(("index", index))
        return ("handle", index)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self._check("nvmlDeviceGetHandleByUUID")
        self.handles.append(("uuid", uuid))
        return ("handle", uuid)

    def nvmlDeviceGetClockInfo(self, handle, kind):
        self._check("nvmlDeviceGetClockInfo")
        return {1: self.state["sm_mhz"], 2: self.state["mem_mhz"]}[kind]

    def nvmlDeviceGetTemperature(self, handle, sensor):
        self._check("nvmlDeviceGetTemperature")
        assert sensor == 0
        return self.state["temp_c"]

    def nvmlDeviceGetPowerUsage(self, handle):
        self._check("nvmlDeviceGetPowerUsage")
        return self.state["power_mw"]

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        self._check("nvmlDeviceGetCurrentClocksEventReasons")
        return self.state["reasons"]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        self._check("nvmlDeviceGetTotalEnergyConsumption")
        return self.state["energy_mj"]

    def nvmlDeviceGetViolationStatus(self, handle, policy):
        self._check("nvmlDeviceGetViolationStatus")
        return types.SimpleNamespace(referenceTime=0, violationTime=self.state["violation_ns"][policy])

    def nvmlDeviceGetMemoryInfo(self, handle):
        self._check("nvmlDeviceGetMemoryInfo")
        return types.SimpleNamespace(used=self.state["used_bytes"], total=141 * 2**30, free=0)
