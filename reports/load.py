"""Read results files (or folders of them) into one list of records.

A file named on the command line must be a results file. Inside a folder, a *.jsonl file whose first line is
a JSON object without `schema_version` is another tool's log (a training log, say), not results: it is
skipped and named on the machines page, rather than failing the whole report. Any other bad line is still
an error (`bench.store.read_records`).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import UsageError
from bench.store import read_records


def _foreign(path: Path) -> bool:
    """Whether the file's first line is a JSON object that is not a SegBench record."""
    try:
        with open(path, encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        obj = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # let read_records report what is wrong with it
    return isinstance(obj, dict) and "schema_version" not in obj


def results_files(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """(results files, skipped foreign *.jsonl files found in folders)."""
    files: list[Path] = []
    skipped: list[Path] = []
    for path in inputs:
        path = Path(path)
        if path.is_dir():
            for found in sorted(path.rglob("*.jsonl")):
                (skipped if _foreign(found) else files).append(found)
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"results file {path} does not exist")
    if not files:
        raise UsageError(f"no results files (*.jsonl) in {', '.join(map(str, inputs))}")
    return files, skipped


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
