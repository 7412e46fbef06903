"""What a sweep runs: cells (model x resolution x device x precision x batch), profiles, timing policies.

The only configuration is this run spec; profiles are named, embedded defaults.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import zoo
from bench.errors import UsageError
from bench.measure.latency import TimingPolicy
from bench.records import cell_key

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Cell:
    """One measurement: a model at one input size, batch, device and precision."""

    model: str
    input_hw: tuple[int, int]
    device: str = "cpu"
    precision: str = "fp32"
    batch: int = 1

    @property
    def key(self) -> tuple:
        """The same key as its record's (`bench.records.cell_key`), which --resume matches on."""
        return cell_key(
            {
                "model": self.model,
                "input_hw": self.input_hw,
                "batch": self.batch,
                "device": self.device,
                "precision": self.precision,
            }
        )

    def __str__(self) -> str:
        h, w = self.input_hw
        return f"{self.model} {h}x{w} b{self.batch} {self.device}/{self.precision}"


@dataclass(frozen=True)
class Profile:
    """A named sweep: input sizes per model group, a timing policy and a per-cell time limit."""

    name: str
    resolutions: dict[str, tuple[tuple[int, int], ...]]
    timing: TimingPolicy
    timeout_s: float
    description: str


PROFILES = {
    "quick": Profile(
        name="quick",
        description="CPU smoke sweep: every model once at a small input, short timing; the embedded default",
        # One size per group keeps the whole zoo within 10 minutes on 2 cores; `full` sweeps resolutions.
        resolutions={
            "backbone": ((224, 224),),
            "portrait": ((224, 224),),
            "realtime": ((360, 480),),  # CamVid's size, not a multiple of 32
            "semantic": ((256, 512),),  # Cityscapes' aspect ratio at a quarter of 512x1024
        },
        timing=TimingPolicy(warmup_iters=2, warmup_s=0.3, min_samples=5, min_time_s=0.5, max_time_s=3.0),
        timeout_s=300.0,
    ),
}


_RESOLUTION = re.compile(r"^(\d+)x(\d+)$")


def parse_resolution(text: str) -> tuple[int, int]:
    """'512x1024' -> (512, 1024): height x width, as in the records' `input_hw`."""
    match = _RESOLUTION.match(text.strip())
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise UsageError(
            f"malformed resolution {text!r}: expected HEIGHTxWIDTH with positive integers, e.g. 512x1024"
        )
    return int(match[1]), int(match[2])


def parse_resolutions(text: str) -> tuple[tuple[int, int], ...]:
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise UsageError(f"malformed resolution list {text!r}: expected e.g. 360x480,512x1024")
    return tuple(parse_resolution(part) for part in parts)


def check_models(names: list[str]) -> list[str]:
    known = set(zoo.list_models())
    for name in names:
        if name not in known:
            raise UsageError(f"unknown model {name!r} (`segbench list` shows the {len(known)} known models)")
    return names


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}: expected one of {', '.join(DEVICES)}")
    return device


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    return precision


def build_cells(
    profile: Profile,
    models: list[str] | None = None,
    resolutions: tuple[tuple[int, int], ...] | None = None,
    device: str = "cpu",
    precisions: tuple[str, ...] = ("fp32",),
    batch: int = 1,
) -> list[Cell]:
    """The sweep's cells in run order: model by model, each at the profile's (or the given) resolutions."""
    names = check_models(models) if models else zoo.list_models()
    cells = []
    for name in names:
        sizes = resolutions or profile.resolutions[zoo.get_card(name).group]
        for hw in sizes:
            for precision in precisions:
                cells.append(Cell(name, hw, device, precision, batch))
    return cells
