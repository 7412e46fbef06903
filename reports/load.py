"""Read results files (or folders of them) into one list of records.

A file named on the command line must be a results file. Inside a folder, a *.jsonl file whose first line is
a JSON object without `schema_version` is another tool's log (a training log, say), not results: it is
skipped and named on the machines page, rather than failing the whole report. Any other bad line is still
an error (`bench.store.read_records`).

The tables still read records as dicts: each typed record (bench.records) is given to them as its dict form
plus `source_file` (the path it was read from) and `_key` (its cell key).
"""

from __future__ import annotations

from pathlib import Path

from bench import store
from bench.records import Record


def as_row(record: Record, source_file: str) -> dict:
    """A typed record as the tables read it."""
    return {**record.to_dict(), "source_file": source_file, "_key": record.key}


def load(inputs: list[Path]) -> tuple[list[dict], list[str]]:
    """(records, names of skipped files)."""
    loaded, skipped = store.load(inputs)
    records = [as_row(record, record.source) for record in loaded if record.kind != "structure"]
    return records, [p.as_posix() for p in skipped]


def load_records(inputs: list[Path]) -> list[dict]:
    return load(inputs)[0]
