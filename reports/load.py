"""Read results files (or folders of them) into one list of typed records (bench.records).

A file named on the command line must be a results file. Inside a folder, a *.jsonl file whose first line is
a JSON object without `schema_version` is another tool's log (a training log, say), not results: it is
skipped and named on the machines page, rather than failing the whole report. Any other bad line is still
an error (`bench.store.read_records`).

Memory stays proportional to the cells, not to the bytes read: files are read one at a time, the newest
record of each cell on each machine is kept whole (the leaderboard, the ledger and the detail tables read
it), and every older bench record (history) keeps only what the history and `segbench compare`'s rules read:
`HISTORY_FIELDS`, its latency summary (the raw samples only where it has no interval) and its environment,
one object shared by the records of a run. Structure records are kept (the ledger compares MACs claims with
them). Each record carries `source`, the file it was read from.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from bench import store
from bench.records import BenchRecord, Env, Record

# What an older record of a cell keeps (see the module docstring): structure and cost for the history's
# structural marks, threads and calibration for compare's latency rule.
HISTORY_FIELDS = ("params", "params_total", "macs", "output_shape", "peak_mem_mb", "fps", "calibration")


def _trimmed_fields(record: BenchRecord) -> dict:
    """The fields an older bench record keeps (module docstring); eval records stay whole (few, and their
    cell key reads their weights)."""
    fields = {k: record.fields[k] for k in HISTORY_FIELDS if k in record.fields}
    conditions = record.fields.get("conditions")
    if isinstance(conditions, dict):  # threads (compare), backend_details (speed_condition)
        fields["conditions"] = {k: conditions[k] for k in ("threads", "backend_details") if k in conditions}
    latency = record.latency
    if latency is not None and latency.ci95 is None and "latency_samples_ms" in record.fields:
        fields["latency_samples_ms"] = record.fields["latency_samples_ms"]  # compare's interval needs them
    calibration = fields.get("calibration")
    if isinstance(calibration, dict) and isinstance(calibration.get("workload"), str):
        fields["calibration"] = {**calibration, "workload": sys.intern(calibration["workload"])}
    return fields


def load(inputs: list[Path]) -> tuple[list[Record], list[str]]:
    """(records in file order, newest per cell whole and older ones trimmed; names of skipped files)."""
    files, skipped = store.results_files(inputs)
    records: list[Record] = []
    newest: dict[tuple, int] = {}  # (machine, cell key) -> index in records of its newest record
    envs: dict[tuple, Env] = {}  # one object per run's environment
    executions: dict = {}  # one object per cell's conditions (its key is computed once)
    sources: list[str] = []

    def settled(record: Record, source: str, trim: bool) -> Record:
        """The record as kept: its run's shared environment and conditions, its file, trimmed if older."""
        env = record.env
        shared = envs.setdefault((env.machine, env.timestamp, env.git_commit, env.git_dirty), env)
        changes = {"env": shared if shared == env else env, "source": source}
        if isinstance(record, BenchRecord):
            changes["execution"] = executions.setdefault(record.execution, record.execution)
            if trim:
                changes["fields"] = _trimmed_fields(record)
        return replace(record, **changes)

    for path in files:
        source = path.as_posix()
        for record in store.read_records(path):
            key = (record.machine, *record.key)
            index = newest.get(key)
            if index is not None and record.timestamp < records[index].timestamp:
                records.append(settled(record, source, trim=True))  # older than the newest seen
                sources.append(source)
                continue
            if index is not None:  # the newest so far becomes history
                records[index] = settled(records[index], sources[index], trim=True)
            newest[key] = len(records)
            records.append(record)  # settled once the newest is known (below)
            sources.append(source)
    for index in newest.values():
        records[index] = settled(records[index], sources[index], trim=False)
    return records, [p.as_posix() for p in skipped]


def load_records(inputs: list[Path]) -> list[Record]:
    return load(inputs)[0]
