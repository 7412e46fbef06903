"""Cost against input size: power-law fits per model and metric, and crossovers per group. Pure functions:
typed records (bench.records, as reports.load gives them) in, numbers out.

A curve is one model under one condition on one machine (every cell axis but the input size, the threads,
the machine), made of the ok records of one sweep (one results file): the sweep that measured the curve at
the most input sizes, the newest of those, its newest record at each size. Points of several sweeps would
put the machine's drift between them (11% run to run on a shared 2-core VM) and any change of the network
into the curve's shape; a quick sweep run after a scaling sweep would replace its smallest size. Each metric
y (median latency in ms, peak memory in MB, MACs) is fitted as y = a * pixels^b by least squares of log y on
log pixels: the exponent b says how the cost grows with the input (1: in proportion to the pixels), and r2
(on the log scale) how well one power law describes the curve; with two sizes any line fits, so r2 is None
there.

A crossover of models A and B of one group, on one machine under one condition, their curves from one
sweep (curves of different sweeps are not compared), lies between two input sizes both were measured at
where their order by median latency flips: A slower than B at the smaller size, faster at the larger (so A
"becomes faster than B" from that size on). The size given is where the two
curves, each a straight line in log latency against log pixels between the two sizes, cross. `clear` says
whether at both sizes the two medians' intervals (`latency_ms.ci95`) do not overlap; otherwise the flip may
be noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import combinations
from pathlib import PurePath

import pandas as pd

from bench.conditions import AXIS_NAMES
from bench.records import BenchRecord, Record

METRICS = {"latency_ms": "median latency (ms)", "peak_mem_mb": "peak memory (MB)", "macs": "MACs"}


@dataclass(frozen=True)
class Point:
    input_hw: tuple[int, int]
    value: float
    low: float | None = None  # the value's interval, where it has one (latency)
    high: float | None = None

    @property
    def pixels(self) -> int:
        return self.input_hw[0] * self.input_hw[1]


@dataclass(frozen=True)
class Curve:
    model: str
    group: str
    machine: str | None
    condition: str  # the cell's label without its input size, e.g. "b1 cpu/fp32"
    metric: str
    points: tuple[Point, ...]  # by pixel count
    sweep: str = ""  # the results file its points come from ("" for records not read from a file)


@dataclass(frozen=True)
class PowerLaw:
    exponent: float
    coefficient: float  # a in y = a * pixels^b
    r2: float | None
    n: int


def fit_power_law(pixels: list[float], values: list[float]) -> PowerLaw | None:
    """y = a * x^b by least squares on the log scale; None with fewer than two distinct sizes or a value
    that is not positive."""
    if len(pixels) != len(values) or len(set(pixels)) < 2 or min(values) <= 0 or min(pixels) <= 0:
        return None
    xs, ys = [math.log(p) for p in pixels], [math.log(v) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    r2 = None
    if len(xs) > 2:
        total = sum((y - my) ** 2 for y in ys)
        residual = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
        r2 = 1.0 - residual / total if total > 0 else 1.0
    return PowerLaw(exponent=b, coefficient=math.exp(a), r2=r2, n=len(xs))


def _value(record: BenchRecord, metric: str) -> tuple[float | None, float | None, float | None]:
    if metric == "latency_ms":
        latency = record.latency
        if latency is None:
            return None, None, None
        low, high = latency.ci95 or (None, None)
        return latency.median, low, high
    return record.get(metric), None, None


def _sweep(record: BenchRecord) -> str:
    return record.source


def _condition(record: BenchRecord) -> tuple[tuple, str]:
    execution, threads = record.execution, record.threads
    key = (*(getattr(execution, name) for name in AXIS_NAMES), threads)
    label = execution.label().split(" ", 1)[1] + (f" {threads} threads" if threads else "")
    return key, label  # the label's first word is the input size, which varies along a curve


def one_sweep(
    members: list,
    sweep: Callable[[object], str],
    when: Callable[[object], str],
    size: Callable[[object], tuple],
) -> list:
    """Of the members of one curve (records, or rows of reports.tables.model_history), those of the sweep
    that measured it at the most sizes, the newest of those, and of it the newest member at each size."""
    by_sweep: dict[str, list] = {}
    for member in members:
        by_sweep.setdefault(sweep(member), []).append(member)
    chosen = max(by_sweep.values(), key=lambda ms: (len({size(m) for m in ms}), max(map(when, ms))))
    newest: dict[tuple, object] = {}
    for member in chosen:
        if size(member) not in newest or when(member) >= when(newest[size(member)]):
            newest[size(member)] = member
    return list(newest.values())


def curves(records: Iterable[Record], metrics: Iterable[str] = tuple(METRICS)) -> list[Curve]:
    """Every curve of the ok bench records (history included: each curve takes one sweep's, see the module
    docstring) with at least two input sizes, per metric."""
    by_curve: dict[tuple, list[BenchRecord]] = {}
    for record in records:
        if isinstance(record, BenchRecord) and record.ok:
            key, _ = _condition(record)
            by_curve.setdefault((record.model, record.machine, key), []).append(record)
    out = []
    for (model, machine, _), members in by_curve.items():
        members = one_sweep(members, _sweep, lambda r: r.timestamp, lambda r: tuple(r.execution.input_hw))
        label = _condition(members[0])[1]
        for metric in metrics:
            points = []
            for record in members:
                value, low, high = _value(record, metric)
                if value is not None and value > 0:
                    points.append(Point(tuple(record.execution.input_hw), float(value), low, high))
            points.sort(key=lambda p: (p.pixels, p.input_hw))
            if len({p.pixels for p in points}) >= 2:
                out.append(
                    Curve(model, members[0].group, machine, label, metric, tuple(points), _sweep(members[0]))
                )
    return sorted(out, key=lambda c: (c.group, c.model, str(c.machine), c.condition, c.metric))


def _hw(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"


def scaling_fits(records: Iterable[Record], model: str | None = None) -> pd.DataFrame:
    """One row per curve (of `model` only, when given): its metric's power-law exponent and fit quality.

    Columns: model, group, machine, condition, metric, exponent, r2, points, from_input, to_input, sweep (the
    results file's name)."""
    table = []
    for curve in curves(records):
        if model is not None and curve.model != model:
            continue
        fit = fit_power_law([p.pixels for p in curve.points], [p.value for p in curve.points])
        if fit is None:
            continue
        table.append(
            {
                "model": curve.model,
                "group": curve.group,
                "machine": curve.machine,
                "condition": curve.condition,
                "metric": curve.metric,
                "exponent": fit.exponent,
                "r2": fit.r2,
                "points": fit.n,
                "from_input": _hw(curve.points[0].input_hw),
                "to_input": _hw(curve.points[-1].input_hw),
                "sweep": PurePath(curve.sweep).name,
            }
        )
    return pd.DataFrame(table)


def exponent_ranges(fits: pd.DataFrame, metric: str = "latency_ms") -> pd.DataFrame:
    """Per group, machine and condition: the smallest, median and largest exponent of `metric` over models,
    and which models they are. Columns: group, machine, condition, models, min, median, max, min_model,
    max_model."""
    if fits.empty:
        return pd.DataFrame()
    table = []
    mine = fits[fits["metric"] == metric]
    for (group, machine, condition), part in mine.groupby(["group", "machine", "condition"], sort=True):
        part = part.sort_values(["exponent", "model"])
        table.append(
            {
                "group": group,
                "machine": machine,
                "condition": condition,
                "models": len(part),
                "min": part["exponent"].iloc[0],
                "median": part["exponent"].median(),
                "max": part["exponent"].iloc[-1],
                "min_model": part["model"].iloc[0],
                "max_model": part["model"].iloc[-1],
            }
        )
    return pd.DataFrame(table)


def _crossing(lo_a: Point, hi_a: Point, lo_b: Point, hi_b: Point) -> float:
    """Pixels where the log-log segments of A and B between two sizes cross (their log difference is 0)."""
    x0, x1 = math.log(lo_a.pixels), math.log(hi_a.pixels)
    d0 = math.log(lo_a.value) - math.log(lo_b.value)
    d1 = math.log(hi_a.value) - math.log(hi_b.value)
    return math.exp(x0 + (x1 - x0) * d0 / (d0 - d1))


def _apart(a: Point, b: Point) -> bool:
    if None in (a.low, a.high, b.low, b.high):
        return False
    return a.high < b.low or b.high < a.low


def crossovers(records: Iterable[Record], group: str | None = None) -> pd.DataFrame:
    """Where one model becomes faster than another as the input grows (see the module docstring), per
    group (only `group`, when given), machine and condition.

    Columns: group, machine, condition, faster_above (A), faster_below (B), between (the two measured
    sizes), pixels (the crossing), about (a size of that many pixels at the larger size's aspect ratio),
    clear, sweep (the results file's name)."""
    by_set: dict[tuple, list[Curve]] = {}
    for curve in curves(records, metrics=("latency_ms",)):
        if group is None or curve.group == group:
            by_set.setdefault((curve.group, curve.machine, curve.condition, curve.sweep), []).append(curve)
    table = []
    for (grp, machine, condition, _), members in sorted(
        by_set.items(), key=lambda kv: tuple(map(str, kv[0]))
    ):
        for one, other in combinations(sorted(members, key=lambda c: c.model), 2):
            at_one = {p.input_hw: p for p in one.points}
            shared = [(at_one[p.input_hw], p) for p in other.points if p.input_hw in at_one]
            for (lo_a, lo_b), (hi_a, hi_b) in zip(shared, shared[1:], strict=False):
                before, after = lo_a.value - lo_b.value, hi_a.value - hi_b.value
                if before * after >= 0:
                    continue  # no flip between these two sizes
                a, b = (one, other) if before > 0 else (other, one)  # a: slower below, faster above
                pixels = _crossing(lo_a, hi_a, lo_b, hi_b)
                h, w = hi_a.input_hw
                scale = math.sqrt(pixels / (h * w))
                table.append(
                    {
                        "group": grp,
                        "machine": machine,
                        "condition": condition,
                        "faster_above": a.model,
                        "faster_below": b.model,
                        "between": f"{_hw(lo_a.input_hw)} and {_hw(hi_a.input_hw)}",
                        "pixels": round(pixels),
                        "about": f"{round(h * scale)}x{round(w * scale)}",
                        "clear": _apart(lo_a, lo_b) and _apart(hi_a, hi_b),
                        "sweep": PurePath(one.sweep).name,
                    }
                )
    return pd.DataFrame(table)
