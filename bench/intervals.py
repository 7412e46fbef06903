"""Latency intervals calibrated across runs: a machine's run-to-run spread, measured from two or more sweeps
of the same cells, and each record's interval widened by it. `segbench compare` and the report use these.

A cell's recorded interval (bench.measure.stats.across_processes) says where a repeat run's median falls if
the machine stays as it was during the sweep: it pools the spread between worker processes within one sweep.
A shared machine also moves between sweeps (other tenants, the host's clocks, a migration), and no sweep can
see that from inside. So each machine's run-to-run spread is measured: `tau_run`, the relative standard
deviation of a sweep's offset, is the smallest value at which the widened intervals of one sweep hold the
other sweep's median for `confidence` of the paired cells (every ordered pair of sweeps, each cell once per
pair). A record's calibrated interval is then, on each side of its median M with recorded half-width h,

    sqrt(h^2 + (z * sqrt(2) * tau_run * M)^2)      z: the normal quantile of (1 + confidence) / 2

(sqrt(2): the repeat sweep has its own offset). The calibration is kept per machine and device, as a
self-check file (`results/selfcheck/<machine>/interval-calibration-<device>.json`, written by
`segbench calibrate-intervals`), and applied when records are read, never written into them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.errors import UsageError
from bench.records import BenchRecord, Record

MODE = "interval_calibration"  # the self-check files' `mode` (reports.selfcheck)
MIN_CELLS = 10  # paired cells below which a run-to-run spread is not estimated
METHOD = (
    "each side of the recorded interval widened to sqrt(h^2 + (z sqrt(2) tau_run M)^2), tau_run the "
    "machine's run-to-run relative SD from repeated sweeps (bench.intervals)"
)


@dataclass(frozen=True)
class IntervalCalibration:
    """A machine's run-to-run spread on one device, fitted on `runs` (results files)."""

    machine: str
    device: str
    tau_run: float
    confidence: float
    cells: int  # paired cells
    pairs: int  # (interval of one sweep, median of another) pairs, every ordered pair of sweeps
    inside_recorded: float  # share of the pairs inside the recorded intervals
    runs: tuple[str, ...]
    commits: tuple[str, ...]
    threads: tuple
    made: str
    method: str = METHOD

    def describe(self) -> str:
        return (
            f"run-to-run spread {self.tau_run:.1%} ({self.machine}, {self.device}; from "
            f"{len(self.runs)} sweeps, {self.cells} cells, made {self.made[:10]})"
        )

    def to_dict(self) -> dict:
        return {"mode": MODE, **asdict(self), "runs": list(self.runs), "commits": list(self.commits)}

    @classmethod
    def from_dict(cls, document: dict, where: str) -> IntervalCalibration:
        try:
            values = {name: document[name] for name in cls.__dataclass_fields__ if name != "method"}
            calibration = cls(
                **{**values, "runs": tuple(values["runs"]), "commits": tuple(values["commits"]),
                   "threads": tuple(values["threads"])}, method=document.get("method", METHOD),
            )  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise UsageError(f"{where}: malformed interval calibration ({exc!r})") from None
        numbers = (calibration.tau_run, calibration.confidence)
        if not (
            all(isinstance(v, str) for v in (calibration.machine, calibration.device, calibration.made))
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers)
            and calibration.tau_run >= 0
            and 0 < calibration.confidence < 1
        ):
            raise UsageError(
                f"{where}: interval calibration needs text machine, device and made, tau_run >= 0 and "
                "0 < confidence < 1"
            )
        return calibration


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf((1 + confidence) / 2)


def needed_spread(median: float, ci95: tuple[float, float], other: float, confidence: float) -> float:
    """The smallest tau_run at which the interval (widened as in the module docstring) holds `other`."""
    distance = other - median
    half = ci95[1] - median if distance > 0 else median - ci95[0]
    if abs(distance) <= half:
        return 0.0
    return math.sqrt(distance**2 - half**2) / (_z(confidence) * math.sqrt(2.0) * median)


def widen(median: float, ci95: tuple[float, float], tau_run: float, confidence: float) -> tuple[float, float]:
    """The interval calibrated by `tau_run` (module docstring), never below zero."""
    extra = (_z(confidence) * math.sqrt(2.0) * tau_run * median) ** 2
    low = median - math.sqrt((median - ci95[0]) ** 2 + extra)
    high = median + math.sqrt((ci95[1] - median) ** 2 + extra)
    return max(0.0, low), high


def _timed(records: Iterable[Record]) -> dict[tuple, BenchRecord]:
    return {r.key: r for r in records if isinstance(r, BenchRecord) and r.ok and r.latency and r.latency.ci95}


def fit(runs: dict[str, list[Record]], confidence: float = 0.95) -> IntervalCalibration:
    """The run-to-run spread of the sweeps in `runs` (results file -> its records), which must all come from
    one machine and device: tau_run is the ceil(confidence * n)-th smallest `needed_spread` of the n pairs,
    so that at least `confidence` of them fall inside the calibrated intervals."""
    if len(runs) < 2:
        raise UsageError("calibrating intervals needs two or more sweeps of the same cells")
    timed = {name: _timed(records) for name, records in runs.items()}
    for name, cells in timed.items():
        if not cells:
            raise UsageError(f"{name}: no ok bench record with a latency interval")
    everything = [r for cells in timed.values() for r in cells.values()]
    places = sorted({(str(r.machine), r.execution.device) for r in everything})
    if len(places) != 1:
        found = ", ".join(f"{m} {d}" for m, d in places)
        raise UsageError(f"the sweeps must come from one machine and device to calibrate it; found {found}")
    needed, paired = [], set()
    for a, b in itertools.permutations(timed.values(), 2):
        for key in a.keys() & b.keys():
            latency = a[key].latency
            needed.append(needed_spread(latency.median, latency.ci95, b[key].latency.median, confidence))
            paired.add(key)
    if len(paired) < MIN_CELLS:
        raise UsageError(
            f"the sweeps share {len(paired)} measured cells; calibrating intervals needs at least {MIN_CELLS}"
        )
    needed.sort()
    machine, device = places[0]
    return IntervalCalibration(
        machine=machine,
        device=device,
        tau_run=needed[math.ceil(confidence * len(needed)) - 1],
        confidence=confidence,
        cells=len(paired),
        pairs=len(needed),
        inside_recorded=sum(n == 0.0 for n in needed) / len(needed),
        runs=tuple(runs),
        commits=tuple(sorted({str(r.env.git_commit) for r in everything})),
        threads=tuple(sorted({r.threads for r in everything}, key=str)),
        made=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def calibrated(record: Record, calibrations: dict[tuple[str, str], IntervalCalibration]) -> Record:
    """The record with its latency interval calibrated across runs, where its machine and device have a
    calibration (`latency.extra["calibration"]` then says by what, and keeps the recorded interval); any other
    record, or one already calibrated, as it is."""
    if not isinstance(record, BenchRecord) or record.latency is None or record.latency.ci95 is None:
        return record
    latency = record.latency
    calibration = calibrations.get((str(record.machine), record.execution.device))
    if calibration is None or "calibration" in latency.extra:
        return record
    low, high = widen(latency.median, latency.ci95, calibration.tau_run, calibration.confidence)
    rel = max(latency.median - low, high - latency.median) / latency.median
    target = ((record.get("conditions") or {}).get("rounds_policy") or {}).get("target_rel")
    extra = {
        **latency.extra,
        "calibration": {"tau_run": calibration.tau_run, "recorded_ci95": list(latency.ci95),
                        "recorded_ci_rel": latency.ci_rel, "fitted_on": list(calibration.runs)},
    }  # fmt: skip
    return replace(
        record,
        latency=replace(
            latency,
            ci95=(low, high),
            ci_rel=rel,
            ci_method=f"{latency.ci_method or 'recorded interval'}; calibrated across runs: {METHOD}",
            target_met=rel <= target if isinstance(target, (int, float)) else latency.target_met,
            extra=extra,
        ),
    )


def _read(paths: Iterable[Path]) -> dict[tuple[str, str], IntervalCalibration]:
    """(machine, device) -> calibration, from calibration files; two for one machine and device: the newer."""
    chosen: dict[tuple[str, str], IntervalCalibration] = {}
    for path in paths:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{path}: unreadable interval calibration ({exc})") from None
        if not isinstance(document, dict) or document.get("mode") != MODE:
            raise UsageError(f"{path}: not an interval calibration (no mode {MODE!r})")
        calibration = IntervalCalibration.from_dict(document, path.as_posix())
        key = (calibration.machine, calibration.device)
        if key not in chosen or calibration.made > chosen[key].made:
            chosen[key] = calibration
    return chosen


def load(folder: Path | None) -> dict[tuple[str, str], IntervalCalibration]:
    """The calibrations in a folder of self-checks (`results/selfcheck`); none when it does not exist."""
    if folder is None or not Path(folder).is_dir():
        return {}
    return _read(sorted(Path(folder).glob("*/interval-calibration-*.json")))


def find(inputs: Iterable[Path]) -> dict[tuple[str, str], IntervalCalibration]:
    """The calibrations below the folders in `inputs` (in their `selfcheck/<machine>/` folders, where the
    report finds its self-checks); files in `inputs` have none."""
    paths = [
        path
        for folder in (Path(p) for p in inputs)
        if folder.is_dir()
        for path in sorted(folder.rglob("interval-calibration-*.json"))
        if path.parent.parent.name == "selfcheck"
    ]
    return _read(paths)
