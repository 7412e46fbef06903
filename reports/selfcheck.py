"""The self-checks of `benchmarks/timer_agreement.py` for the machines page: how far each machine's timings
can be trusted, shown beside the result files they qualify.

They are read from `selfcheck/<machine>/*.json` below the folders the report is given (the layout the
script writes under `results/`), as are the machines' interval calibrations (`segbench calibrate-intervals`,
bench.intervals), by which the report widens those machines' latency intervals. Each is one JSON object whose
`mode` says which check it is; a file there that is not valid JSON, or names no known mode, is an error
naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from bench.errors import UsageError
from bench.intervals import IntervalCalibration

MODES = ("timer_agreement", "compare_runs", "interval_calibration")


def find(inputs: list[Path]) -> list[tuple[str, dict]]:
    """(path, document) of every self-check file below the folders in `inputs`, in path order."""
    found = []
    for folder in (Path(p) for p in inputs):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.json")):
            if path.parent.parent.name != "selfcheck":
                continue
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UsageError(f"{path}: unreadable self-check file ({exc})") from exc
            if not isinstance(document, dict) or document.get("mode") not in MODES:
                raise UsageError(f"{path}: not a self-check (no mode among {', '.join(MODES)})")
            found.append((path.as_posix(), document))
    return found


def _verdict(passed) -> str:
    return "PASS" if passed else "FAIL"


def _spread(summary: dict) -> str:
    low, high = summary["ratio_p10_p90"]
    return f"{summary['median_ratio']:.3f} (p10..p90 {low:.3f}..{high:.3f})"


def _timer_row(doc: dict) -> dict:
    env = doc.get("env") or {}
    figures = []
    for m in doc["models"]:
        hw = "x".join(map(str, m["input_hw"]))
        figures += [f"{m['model']} {hw}: {ref} {c['ratio']:.3f}" for ref, c in sorted(m["checks"].items())]
    return {
        "machine": str(env.get("machine")),
        "check": f"harness vs independent timers on {doc['device']}, {doc['threads']} threads, "
        f"{doc['rounds']} rounds x {doc['budget_s']} s",
        "verdict": _verdict(doc["pass"]),
        "figures": "; ".join(figures) + " (harness median / reference's)",
        "commits": (env.get("git_commit") or "")[:10],
    }


def _repeat_row(doc: dict) -> dict:
    normalised = doc.get("calibration_normalised")
    figures = f"median per-model B/A {_spread(doc)} over {doc['models_paired']} models"
    if normalised:
        figures += f"; calibration-normalised {_spread(normalised)}: {_verdict(normalised['pass'])}"
    intervals = doc.get("interval_calibration") or {}
    if intervals.get("cells"):  # the second run's medians inside the first's 95% intervals
        figures += (
            f"; B medians inside A's 95% intervals: {intervals['share']:.0%} ({_verdict(intervals['pass'])})"
        )
    across = doc.get("interval_calibration_across_runs") or {}
    if across.get("cells"):
        figures += (
            f"; inside A's intervals calibrated across runs ({across['tau_run']:.1%}, fitted on "
            f"{across['fitted_on_these']} of these 2 files): {across['share']:.0%} "
            f"({_verdict(across['pass'])})"
        )
    return {
        "machine": ", ".join(str(m) for m in doc["machines"]),
        "check": "two sweeps of the same profile, cell by cell",
        "verdict": _verdict(doc["pass"]),
        "figures": figures,
        "commits": ", ".join(str(c or "")[:10] for c in doc["commits"]),
    }


def _calibration_row(doc: dict) -> dict:
    calibration = IntervalCalibration.from_dict(doc, "interval calibration")
    return {
        "machine": calibration.machine,
        "check": f"run-to-run spread of {len(calibration.runs)} sweeps on {calibration.device} (interval "
        "calibration: compare and the report widen this machine's intervals by it)",
        "verdict": "measured",
        "figures": f"tau_run {calibration.tau_run:.1%} over {calibration.cells} cells; "
        f"{calibration.inside_recorded:.0%} of {calibration.pairs} pairs inside the recorded "
        f"{calibration.confidence:.0%} intervals",
        "commits": ", ".join(str(c)[:10] for c in calibration.commits),
    }


ROWS = {"timer_agreement": _timer_row, "compare_runs": _repeat_row, "interval_calibration": _calibration_row}


def table(found: Iterable[tuple[str, dict]]) -> pd.DataFrame:
    """One row per self-check file: machine, what was checked, the verdict, its figures, commits, file."""
    rows = []
    for path, doc in found:
        try:
            row = ROWS[doc["mode"]](doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{path}: malformed {doc['mode']} self-check ({exc!r})") from exc
        rows.append({**row, "file": path})
    return pd.DataFrame(rows).sort_values(["machine", "file"], kind="stable") if rows else pd.DataFrame()
