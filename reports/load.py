"""Read results files (or folders of them) into one list of typed records (bench.records).

A file named on the command line must be a results file. Inside a folder, a *.jsonl file whose first line is
a JSON object without `schema_version` is another tool's log (a training log, say), not results: it is
skipped and named on the machines page, rather than failing the whole report. Any other bad line is still
an error (`bench.store.read_records`). Each record carries `source`, the file it was read from.
"""

from __future__ import annotations

from pathlib import Path

from bench import store
from bench.records import Record


def load(inputs: list[Path]) -> tuple[list[Record], list[str]]:
    """(records of every kind, names of skipped files)."""
    records, skipped = store.load(inputs)
    return records, [p.as_posix() for p in skipped]


def load_records(inputs: list[Path]) -> list[Record]:
    return load(inputs)[0]
