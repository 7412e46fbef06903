"""Read results files (or folders of them) into one list of records."""

from __future__ import annotations

from pathlib import Path

from bench.errors import UsageError
from bench.store import read_records


def results_files(inputs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files.extend(sorted(path.rglob("*.jsonl")))
        elif path.exists():
            files.append(path)
        else:
            raise UsageError(f"results file {path} does not exist")
    if not files:
        raise UsageError(f"no results files (*.jsonl) in {', '.join(map(str, inputs))}")
    return files


def load_records(inputs: list[Path]) -> list[dict]:
    records = []
    for path in results_files(inputs):
        for record in read_records(path):
            record["source_file"] = str(path)
            records.append(record)
    return records
