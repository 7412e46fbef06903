"""Results files: JSON Lines, one record per line, appended crash-safely.

Each record is written as one whole line and fsync'ed, so a crash can at worst leave a torn last line; the
reader skips it, and the next append first cuts it off so that it cannot corrupt the following record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.errors import UsageError
from bench.records import cell_key, check_record, upgrade


def _cut_torn_tail(path: Path) -> None:
    """Truncate a file whose last line lacks its newline (a write cut mid-line) back to its last newline."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        chunk = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            i = f.read(pos - start).rfind(b"\n")
            if i >= 0:
                f.truncate(start + i + 1)
                return
            pos = start
        f.truncate(0)


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one record as one line, durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    if path.exists():
        _cut_torn_tail(path)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records of a results file. A torn last line is skipped; any other bad line is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read results file {path}: {reason}") from None
    lines = text.split("\n")
    torn_tail = not text.endswith("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            check_record(record)
        except ValueError as exc:
            if torn_tail and number == len(lines):
                break  # the last write was interrupted: that cell was never completed
            raise UsageError(f"{path}:{number}: not a SegBench record ({exc})") from None
        records.append(upgrade(record))
    return records


def _foreign(path: Path) -> bool:
    """Whether the file's first line is a JSON object that is not a SegBench record (another tool's log)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        obj = json.loads(first)
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # let read_records report what is wrong with it
    return isinstance(obj, dict) and "schema_version" not in obj


def results_files(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """(results files, skipped files) named by `inputs`: a file must be a results file as given; a folder is
    searched for *.jsonl, skipping those that are another tool's log (a training log, say)."""
    files: list[Path] = []
    skipped: list[Path] = []
    for path in map(Path, inputs):
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


def merge_results(files: list[Path], out: Path) -> int:
    """Write the records of `files` (e.g. the shards of one sweep) to the new file `out`, atomically.

    A cell measured twice on one machine is an error (shards overlap, or two sweeps were mixed): merging
    must never pick one number silently. Returns the number of records written."""
    out = Path(out)
    if out.exists():
        raise UsageError(f"{out} exists: merge writes a new file")
    records, seen = [], {}
    for path in files:
        for record in read_records(path):
            key = (record["env"].get("machine"), *cell_key(record))
            if key in seen:
                raise UsageError(f"{path}: cell {key} is also in {seen[key]}; refusing to merge duplicates")
            seen[key] = path
            records.append(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(f".{out.name}.tmp")
    with open(temp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, out)
    return len(records)
