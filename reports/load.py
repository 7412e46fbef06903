"""Read results files (or folders of them) into one list of records.

A file named on the command line must be a results file. Inside a folder, a *.jsonl file whose first line is
a JSON object without `schema_version` is another tool's log (a training log, say), not results: it is
skipped and named on the machines page, rather than failing the whole report. Any other bad line is still
an error (`bench.store.read_records`).
"""

from __future__ import annotations

from pathlib import Path

from bench.store import read_records, results_files


def load(inputs: list[Path]) -> tuple[list[dict], list[str]]:
    """(records, names of skipped files). Each record gets `source_file`, the path it was read from."""
    files, skipped = results_files(inputs)
    records = []
    for path in files:
        for record in read_records(path):
            record["source_file"] = path.as_posix()
            records.append(record)
    return records, [p.as_posix() for p in skipped]


def load_records(inputs: list[Path]) -> list[dict]:
    return load(inputs)[0]
