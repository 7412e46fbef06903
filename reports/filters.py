"""The leaderboard's filters: what each one reads, as data attributes on every table row and plot point.

Choices (one select each): device, precision, machine, input size, group. Free: name (a part of the model's
name, any case), a latency budget (at most X ms of median latency) and a minimum accuracy (mIoU: ours where
measured, else the paper's; a row with neither is hidden while a minimum is set). The page's script
(templates/report.js) reads these attributes and keeps the state in the URL's query; without JavaScript the
filter bar stays hidden and every row and point is shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

CHOICES = ("device", "precision", "machine", "input", "group")
COLUMNS = (*CHOICES, "model")
URL_KEYS = (*CHOICES, "q", "budget", "acc")  # the query string's keys (q: name, budget: ms, acc: mIoU)


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def accuracy(row: Mapping):
    """The mIoU a minimum-accuracy filter compares: ours where measured, else the paper's, else None."""
    for key in ("miou", "paper_miou"):
        if _present(row.get(key)):
            return row[key]
    return None


def attributes(row: Mapping) -> dict[str, str | None]:
    """The data attributes of one filterable row or point (None: left out)."""
    out: dict[str, str | None] = {"data-f": "1"}
    for key in COLUMNS:
        value = row.get(key)
        out[f"data-{key}"] = str(value) if _present(value) else ""
    latency, acc = row.get("latency_p50_ms"), accuracy(row)
    out["data-lat"] = repr(float(latency)) if _present(latency) else None
    out["data-acc"] = repr(float(acc)) if acc is not None else None
    return out


def options(frame, key: str) -> list[str]:
    """The values of `key` in a leaderboard frame, for its select (input sizes by pixels, others by name)."""
    if frame.empty or key not in frame:
        return []
    if key == "input":
        order = frame.drop_duplicates("input").sort_values(["pixels", "input"])
        return [str(v) for v in order["input"]]
    return sorted({str(v) for v in frame[key] if _present(v)})
