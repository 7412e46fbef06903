"""Regression rules between two result sets: exact on structure, tolerant on accuracy, noise-aware on speed.

A result set is SegBench records (JSON Lines files, or folders of them) or a pytest-benchmark JSON file
(told apart by content). Cells are matched by their records' `key` (pytest-benchmark entries by their
full name). For each cell in both sets:

- Structure: `params`, `params_total`, `macs` and `output_shape` must be equal; any change is a regression
  (update the baseline on purpose). A cell that was ok and now fails (error, oom, timeout, ...) regresses.
- Accuracy (eval records): `miou` may drop by at most `miou_tol` percentage points.
- Latency, only between records of the same machine (`env.machine`) and the same conditions (the cell key's
  axes and `conditions.threads`); anything else is "not comparable" and never flagged. A cell is slower
  when its median grew by more than `threshold` AND the two medians' 95% confidence intervals do not overlap
  (`latency_ms.ci95`, or the order-statistic interval of `latency_samples_ms` when a record lacks it),
  each widened by its machine's run-to-run spread where that machine has an interval calibration
  (bench.intervals: a sweep cannot see how its machine moves between runs).
- Calibration: when both runs carry the same calibration workload (`env["calibration"]["workload"]`, see
  `bench.measure.calibration`; a record's own `calibration`, timed beside its cell, takes precedence, as does
  a pytest-benchmark entry's `extra_info["calibration"]` over its `machine_info`), the same test is also
  applied to model / calibration medians (interval: model low / calibration high .. model high / calibration
  low, a conservative bound). A latency regression is then flagged only when the raw and the normalised tests
  agree. When they disagree the row says which moved ("machine slower": raw slower but normalised not, i.e.
  everything got slower; "normalised slower": slower only relative to the calibration, a slowdown a faster
  machine hid) and is reported, not flagged: a gate must not fire on a noisy neighbour, and the other case
  shows in the table for a person to judge.

Cells in one set only are listed as new or removed, never as regressions. Several records of one cell on
one machine (repeated sweeps in a folder): the latest (`env.timestamp`) is used.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import UsageError
from bench.intervals import calibrated
from bench.measure.stats import median_ci
from bench.records import BenchRecord, Record, StructureRecord
from bench.store import read_records, results_files

STRUCTURE_FIELDS = ("params", "params_total", "macs", "output_shape")
PYTEST_BENCHMARK = "pytest-benchmark"


@dataclass
class Entry:
    """One measured item of a result set, from a record or a pytest-benchmark entry."""

    key: tuple
    label: str
    kind: str  # "bench", "eval" or PYTEST_BENCHMARK
    machine: str | None
    threads: int | None
    status: str
    fields: dict  # the record's own fields (structure, miou, error)
    latency: dict | None  # {median, ci95: [low, high], n} in ms
    calibration: dict | None  # {workload, median_ms, ci95}
    timestamp: str = ""


@dataclass
class Row:
    item: str
    metric: str
    base: str
    new: str
    change: str
    verdict: str  # regression, improved, ok, within noise, machine slower, calibration disagrees, ...
    regression: bool = False
    latency: bool = False


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)
    compared: int = 0
    settings: dict = field(default_factory=dict)

    def regressions(self, include_latency: bool = True) -> list[Row]:
        return [r for r in self.rows if r.regression and (include_latency or not r.latency)]

    def exit_code(self, latency_report_only: bool = False) -> int:
        return 1 if self.regressions(include_latency=not latency_report_only) else 0

    def summary(self, latency_report_only: bool = False) -> str:
        count = {}
        for row in self.rows:
            count[row.verdict] = count.get(row.verdict, 0) + 1
        structural = len(self.regressions(include_latency=False))
        latency = len(self.regressions()) - structural
        parts = [f"{self.compared} cells compared", f"{structural} structural/accuracy regressions"]
        parts.append(
            f"{latency} latency regressions" + (" (reported only)" if latency_report_only and latency else "")
        )
        parts += [
            f"{n} {verdict}" for verdict, n in sorted(count.items()) if verdict not in ("regression", "ok")
        ]
        return ", ".join(parts)


# ---------------------------------------------------------------------------------------------- reading


def _record_latency(record: BenchRecord) -> dict | None:
    latency = record.latency
    if not record.ok or latency is None:
        return None
    ci = latency.ci95
    if ci is None and record.samples:
        low, high, _ = median_ci(sorted(record.samples))
        ci = (low, high)
    if ci is None:  # no interval and no samples: the median alone cannot be tested against noise
        return None
    return {"median": latency.median, "ci95": list(ci), "n": latency.n}


def _positive(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value > 0


def _non_negative(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


def valid_calibration(calibration) -> dict | None:
    """A calibration result with what normalising needs (a positive median and interval: latencies are divided
    by them), else None (a failed calibration records an error)."""
    if not isinstance(calibration, dict):
        return None
    ci = calibration.get("ci95")
    if (
        _positive(calibration.get("median_ms"))
        and isinstance(ci, (list, tuple))
        and len(ci) == 2
        and all(map(_positive, ci))
        and ci[0] <= ci[1]
    ):
        return calibration
    return None


def entry_from_record(record: Record) -> Entry:
    bench = isinstance(record, BenchRecord)
    run_calibration = valid_calibration((record.env.calibration or {}).get("workload"))
    return Entry(
        key=record.key,
        label=record.label(),
        kind=record.kind,
        machine=record.machine,
        threads=record.threads if bench else None,
        status=record.status,
        fields={**record.fields, "miou": getattr(record, "miou", None), "error": record.error},
        latency=_record_latency(record) if bench else None,
        # A calibration timed beside this cell (record["calibration"]), else the run's (env).
        calibration=valid_calibration(record.get("calibration")) or run_calibration,
        timestamp=record.timestamp,
    )


def entries_from_pytest_benchmark(document: dict, path: Path) -> list[Entry]:
    """pytest-benchmark's JSON (--benchmark-json) as entries; times are in seconds there, ms here.

    Calibration: extra_info["calibration"] of each benchmark (timed beside it), else machine_info's.
    With per-round data (pytest-benchmark stores it under stats.data when run with --benchmark-save-data)
    the median's interval is the order-statistic one; without it, the notch approximation
    median +- 1.57 IQR / sqrt(rounds) (McGill, Tukey & Larsen 1978, what box plots' notches show).
    """
    info = document.get("machine_info") or {}
    if not isinstance(info, dict):
        raise UsageError(f"{path}: malformed pytest-benchmark file: machine_info is not an object")
    machine = info.get("segbench_machine") or info.get("node")
    threads = info.get("torch_threads")
    session_calibration = valid_calibration(info.get("calibration"))
    entries = []
    for number, bench in enumerate(document["benchmarks"], start=1):
        stats, extra = _benchmark_parts(bench, f"{path}: benchmark {number}")
        # The calibration timed beside this benchmark (benchmarks/conftest.py), else the session's.
        calibration = valid_calibration(extra.get("calibration")) or session_calibration
        name = bench.get("fullname") or bench.get("name")
        median = stats["median"] * 1000
        data = stats.get("data")
        if data:
            low, high, _ = median_ci(sorted(t * 1000 for t in data))
        else:
            half = 1.57 * stats["iqr"] * 1000 / math.sqrt(stats["rounds"])
            low, high = max(median - half, 0.0), median + half
        entries.append(
            Entry(
                key=(PYTEST_BENCHMARK, name),
                label=name,
                kind=PYTEST_BENCHMARK,
                machine=machine if isinstance(machine, str) else None,
                threads=threads if type(threads) is int else None,
                status="ok",
                fields={},
                latency={"median": median, "ci95": [low, high], "n": stats.get("rounds")},
                calibration=calibration,
                timestamp=str(document.get("datetime") or ""),
            )
        )
    return entries


def _benchmark_parts(bench, where: str) -> tuple[dict, dict]:
    """(stats, extra_info) of one pytest-benchmark entry, checked: a UsageError names what is wrong (NaN,
    a string, no rounds) rather than letting it become a traceback or a '+nan%' verdict."""
    if not isinstance(bench, dict):
        raise UsageError(f"{where}: not an object")
    name, stats = bench.get("fullname") or bench.get("name"), bench.get("stats")
    extra = bench.get("extra_info") or {}
    if not isinstance(name, str) or not name:
        raise UsageError(f"{where}: no name")
    if not isinstance(stats, dict) or not isinstance(extra, dict):
        raise UsageError(f"{where} ({name}): stats and extra_info must be objects")
    checks = [("median", _positive, "a positive number of seconds")]
    if stats.get("data"):
        data = stats["data"]
        if not isinstance(data, list) or not all(map(_non_negative, data)):
            raise UsageError(f"{where} ({name}): stats.data must be a list of non-negative seconds")
    else:
        checks += [
            ("iqr", _non_negative, "a non-negative number of seconds"),
            ("rounds", lambda v: type(v) is int and v >= 1, "a positive count"),
        ]
    for key, ok, what in checks:
        value = stats.get(key)
        if not ok(value):
            raise UsageError(f"{where} ({name}): stats.{key} is {json.dumps(value)}; expected {what}")
    return stats, extra


def _is_pytest_benchmark(document) -> bool:
    return (
        isinstance(document, dict)
        and isinstance(document.get("benchmarks"), list)
        and "machine_info" in document
    )


def load_entries(path: Path, calibrations: dict | None = None) -> list[Entry]:
    """The entries of one results file, folder (its *.jsonl files) or pytest-benchmark JSON file; records'
    latency intervals calibrated across runs where `calibrations` (bench.intervals) has their machine."""
    path = Path(path)
    calibrations = calibrations or {}

    def entries(records) -> list[Entry]:
        return [
            entry_from_record(calibrated(r, calibrations))
            for r in records
            if not isinstance(r, StructureRecord)
        ]

    if path.is_dir():
        files, _ = results_files([path])
        return [entry for f in files for entry in entries(read_records(f))]
    if not path.exists():
        raise UsageError(f"results file {path} does not exist")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        document = None  # several lines: JSON Lines (read_records says what is wrong with them)
    if _is_pytest_benchmark(document):
        return entries_from_pytest_benchmark(document, path)
    if isinstance(document, dict) and "structure_version" in document:
        raise UsageError(f"{path} is a structural baseline: check it with `segbench baseline`")
    return entries(read_records(path))


def _index(entries: list[Entry]) -> dict[tuple, dict[str | None, Entry]]:
    """key -> machine -> the latest entry of that cell on that machine."""
    index: dict[tuple, dict[str | None, Entry]] = {}
    for entry in entries:
        per_machine = index.setdefault(entry.key, {})
        old = per_machine.get(entry.machine)
        if old is None or entry.timestamp >= old.timestamp:
            per_machine[entry.machine] = entry
    return index


# ------------------------------------------------------------------------------------------------ rules


def _fmt(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def judge(base_median: float, base_ci, new_median: float, new_ci, threshold: float) -> tuple[str, float]:
    """("slower" | "faster" | "within noise" | "ok", relative change) by the threshold-and-interval rule."""
    change = new_median / base_median - 1
    if change > threshold:
        return ("slower" if new_ci[0] > base_ci[1] else "within noise"), change
    if -change > threshold:
        return ("faster" if new_ci[1] < base_ci[0] else "within noise"), change
    return "ok", change


def _normalised(latency: dict, calibration: dict) -> tuple[float, list[float]]:
    cal_low, cal_high = calibration["ci95"]
    low, high = latency["ci95"]
    return latency["median"] / calibration["median_ms"], [low / cal_high, high / cal_low]


def _agreement(raw: str, norm: str) -> str:
    """The verdict of the raw and the normalised test together: a change only when both agree on it."""
    flagged = ("slower", "faster")
    if raw == norm or (raw not in flagged and norm not in flagged):
        return raw
    if raw in flagged and norm not in flagged:
        return f"machine {raw}"  # everything moved with the calibration workload: the machine did
    if raw not in flagged:
        return f"normalised {norm}"  # hidden in raw time by a machine that moved the other way
    return "calibration disagrees"


def _latency_text(latency: dict) -> str:
    low, high = latency["ci95"]
    return f"{latency['median']:.3g} ms [{low:.3g}, {high:.3g}]"


def compare_latency(base: Entry, new: Entry, threshold: float, normalize: bool | None) -> Row:
    """One latency row for two entries of the same cell on the same machine (see the module docstring).

    normalize: None = when both have the same calibration workload, True = required, False = never.
    """
    item, metric = new.label, "latency"
    if base.threads != new.threads:
        return Row(
            item,
            metric,
            f"{base.threads} threads",
            f"{new.threads} threads",
            "",
            "not comparable",
            latency=True,
        )
    raw, change = judge(
        base.latency["median"], base.latency["ci95"], new.latency["median"], new.latency["ci95"], threshold
    )
    text = f"{change:+.1%}"
    verdict = raw
    have_calibration = (
        base.calibration is not None
        and new.calibration is not None
        and base.calibration.get("workload") == new.calibration.get("workload")
    )
    if normalize and not have_calibration:
        raise UsageError(f"--normalize: {item} lacks the same calibration workload in both runs")
    if have_calibration and normalize is not False:
        b_med, b_ci = _normalised(base.latency, base.calibration)
        n_med, n_ci = _normalised(new.latency, new.calibration)
        norm, norm_change = judge(b_med, b_ci, n_med, n_ci, threshold)
        text += f" (normalised {norm_change:+.1%})"
        verdict = _agreement(raw, norm)
    final = {"slower": "regression", "faster": "improved"}.get(verdict, verdict)
    return Row(
        item,
        metric,
        _latency_text(base.latency),
        _latency_text(new.latency),
        text,
        final,
        regression=final == "regression",
        latency=True,
    )


def _compare_structure(base: Entry, new: Entry, miou_tol: float) -> list[Row]:
    item = new.label
    if base.status != new.status and "ok" in (base.status, new.status):
        error = (new.fields.get("error") or "")[:80]
        regressed = base.status == "ok"
        return [
            Row(
                item,
                "status",
                base.status,
                new.status,
                error,
                "regression" if regressed else "improved",
                regression=regressed,
            )
        ]
    if new.status != "ok" or base.kind == PYTEST_BENCHMARK:
        return []
    rows = []
    if base.kind == "eval":
        old, now = base.fields.get("miou"), new.fields.get("miou")
        if old is not None and now is not None:
            delta = now - old
            verdict = "regression" if delta < -miou_tol else "improved" if delta > miou_tol else "ok"
            rows.append(
                Row(
                    item,
                    "miou",
                    f"{old:.2f}",
                    f"{now:.2f}",
                    f"{delta:+.2f} pt",
                    verdict,
                    regression=verdict == "regression",
                )
            )
        return rows
    for name in STRUCTURE_FIELDS:
        if name not in base.fields or name not in new.fields:
            continue  # an older record without the field: nothing to hold the new one to
        old, now = base.fields[name], new.fields[name]
        if old != now:
            change = (
                f"{now / old - 1:+.2%}"
                if isinstance(old, int) and isinstance(now, int) and old
                else "changed"
            )
            rows.append(Row(item, name, _fmt(old), _fmt(now), change, "regression", regression=True))
    return rows


def compare_entries(
    base: list[Entry],
    new: list[Entry],
    threshold: float = 0.10,
    miou_tol: float = 0.5,
    normalize: bool | None = None,
) -> Comparison:
    """Apply the module's rules to two result sets."""
    if threshold <= 0 or not math.isfinite(threshold):
        raise UsageError(f"latency threshold must be a positive fraction (0.10 = 10%), got {threshold}")
    if miou_tol < 0 or not math.isfinite(miou_tol):
        raise UsageError(f"mIoU tolerance must be a non-negative number of points, got {miou_tol}")
    kinds = ({e.kind == PYTEST_BENCHMARK for e in base}, {e.kind == PYTEST_BENCHMARK for e in new})
    if len(kinds[0]) == 1 and len(kinds[1]) == 1 and kinds[0] != kinds[1]:
        raise UsageError(
            "one side holds pytest-benchmark results and the other SegBench records: nothing to compare"
        )
    old, now = _index(base), _index(new)
    result = Comparison(settings={"threshold": threshold, "miou_tol": miou_tol, "normalize": normalize})
    for key in sorted(set(old) | set(now), key=repr):
        if key not in now:
            entry = next(iter(old[key].values()))
            result.rows.append(Row(entry.label, "cell", "present", "-", "", "removed"))
            continue
        if key not in old:
            entry = next(iter(now[key].values()))
            result.rows.append(Row(entry.label, "cell", "-", "present", "", "new"))
            continue
        result.compared += 1
        latest = [max(side[key].values(), key=lambda e: e.timestamp) for side in (old, now)]
        result.rows.extend(_compare_structure(*latest, miou_tol))
        pairs = [(old[key][m], now[key][m]) for m in old[key] if m in now[key]]
        pairs = [(b, n) for b, n in pairs if b.latency and n.latency]
        if pairs:
            result.rows.extend(compare_latency(b, n, threshold, normalize) for b, n in pairs)
        elif any(e.latency for e in old[key].values()) and any(e.latency for e in now[key].values()):
            result.rows.append(
                Row(
                    latest[1].label,
                    "latency",
                    ", ".join(sorted(map(str, old[key]))),
                    ", ".join(sorted(map(str, now[key]))),
                    "different machines",
                    "not comparable",
                    latency=True,
                )
            )
    return result


def compare_paths(base: Path, new: Path, calibrations: dict | None = None, **kwargs) -> Comparison:
    """compare_entries on two result sets; `calibrations` (bench.intervals.load): the machines whose latency
    intervals are widened by their run-to-run spread."""
    sets = []
    for path in (base, new):
        entries = load_entries(path, calibrations)
        if not entries:  # comparing with nothing would pass whatever changed
            raise UsageError(f"{path} holds no records")
        sets.append(entries)
    comparison = compare_entries(*sets, **kwargs)
    comparison.settings["calibrations"] = [c.describe() for c in (calibrations or {}).values()]
    return comparison


# ---------------------------------------------------------------------------------------------- output

COLUMNS = ("item", "metric", "base", "new", "change", "verdict")


def shown_rows(comparison: Comparison) -> list[Row]:
    """Every latency row and every structural row that is not plain "ok" (unchanged structure is silent)."""
    return [r for r in comparison.rows if r.latency or r.verdict != "ok"]


def _cells(row: Row, latency_report_only: bool) -> list[str]:
    verdict = row.verdict
    if row.latency and row.regression and latency_report_only:
        verdict = "regression (reported only)"
    return [row.item, row.metric, row.base, row.new, row.change, verdict]


def format_table(comparison: Comparison, latency_report_only: bool = False) -> str:
    rows = [list(COLUMNS)] + [_cells(r, latency_report_only) for r in shown_rows(comparison)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", comparison.summary(latency_report_only)]
    calibrations = comparison.settings.get("calibrations")
    if calibrations:
        lines.append("intervals calibrated across runs: " + "; ".join(calibrations))
    return "\n".join(lines)


def format_markdown(comparison: Comparison, latency_report_only: bool = False) -> str:
    """The same table as GitHub Markdown, for a pull-request comment."""
    s = comparison.settings
    failing = comparison.exit_code(latency_report_only)
    lines = [
        f"### SegBench comparison: {'regression' if failing else 'no regression'}",
        "",
        comparison.summary(latency_report_only) + ".",
        "",
        f"Rules: params, MACs and output shapes exact; mIoU within {s.get('miou_tol')} pt; latency flagged "
        f"above +{s.get('threshold', 0):.0%} with disjoint 95% intervals, same machine and threads only"
        + (", calibration-normalised where both runs have it." if s.get("normalize") is not False else "."),
        "",
    ]
    if s.get("calibrations"):
        lines[-1:-1] = ["Intervals calibrated across runs: " + "; ".join(s["calibrations"]) + ".", ""]
    rows = shown_rows(comparison)
    if rows:
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append("|" + "---|" * len(COLUMNS))
        for row in rows:
            cells = [c.replace("|", "\\|") for c in _cells(row, latency_report_only)]
            if row.regression:
                cells[-1] = f"**{cells[-1]}**"
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
