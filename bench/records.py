"""The results record: one JSON object per measured cell, schema-versioned.

A record holds the cell (model, input_hw, batch, device, precision), its `status` and `error`, the
measurements (params, macs, latency_ms, fps, peak_mem_mb, ...), the conditions that produced them, and `env`
(provenance). Units are in the field names: `macs` counts one per multiply-add (fvcore's convention);
FLOPs, where shown, are derived as 2 x macs.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

# Why a cell produced no measurement. "ok" is the only status with numbers.
STATUSES = ("ok", "error", "oom", "timeout", "crashed")

REQUIRED_FIELDS = (
    "schema_version",
    "model",
    "group",
    "input_hw",
    "batch",
    "device",
    "precision",
    "status",
    "error",
    "params",
    "macs",
    "latency_ms",
    "fps",
    "peak_mem_mb",
    "env",
)


def cell_key(record: dict[str, Any]) -> tuple:
    """What identifies a cell within one results file (used by --resume)."""
    return (
        record["model"],
        tuple(record["input_hw"]),
        record["batch"],
        record["device"],
        record["precision"],
    )


def check_record(record: Any) -> None:
    """Raise ValueError naming what is wrong with a record read from disk."""
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise ValueError(f"record lacks {', '.join(missing)}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"schema_version {record['schema_version']!r} is not {SCHEMA_VERSION}")
    if record["status"] not in STATUSES:
        raise ValueError(f"unknown status {record['status']!r}")
