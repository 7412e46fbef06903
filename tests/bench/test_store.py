import json

import pytest

from bench.errors import UsageError
from bench.records import SCHEMA_VERSION
from bench.store import append_record, read_records


def record(model="m", status="ok"):
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "group": "realtime",
        "input_hw": [8, 8],
        "batch": 1,
        "device": "cpu",
        "precision": "fp32",
        "status": status,
        "error": None,
        "params": 1,
        "macs": 2,
        "latency_ms": {"median": 1.0},
        "fps": 1000.0,
        "peak_mem_mb": 1.0,
        "env": {},
    }


def test_append_and_read_round_trip(tmp_path):
    path = tmp_path / "sub" / "r.jsonl"
    append_record(path, record("a"))
    append_record(path, record("b", "error"))
    assert [r["model"] for r in read_records(path)] == ["a", "b"]


def test_torn_last_line_is_tolerated_and_cut_before_the_next_append(tmp_path):
    path = tmp_path / "r.jsonl"
    append_record(path, record("a"))
    with open(path, "a") as f:
        f.write(json.dumps(record("torn"))[:40])  # a crash in the middle of a write
    assert [r["model"] for r in read_records(path)] == ["a"]
    append_record(path, record("b"))
    assert [r["model"] for r in read_records(path)] == ["a", "b"]
    assert path.read_text().count("\n") == 2


def test_a_file_that_is_only_a_torn_line_reads_as_empty_and_is_repaired(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"schema_ver')
    assert read_records(path) == []
    append_record(path, record("a"))
    assert [r["model"] for r in read_records(path)] == ["a"]


def test_corrupt_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record("a")) + "\nnot json\n" + json.dumps(record("b")) + "\n")
    with pytest.raises(UsageError, match=r"r.jsonl:2"):
        read_records(path)


def test_record_of_another_schema_is_rejected(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({**record(), "schema_version": 99}) + "\n")
    with pytest.raises(UsageError, match="schema_version"):
        read_records(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read results file"):
        read_records(tmp_path / "nope.jsonl")


def _cell_record(model, machine="m1", **extra):
    return {
        "schema_version": 2,
        "kind": "bench",
        "model": model,
        "group": "realtime",
        "input_hw": [8, 8],
        "batch": 1,
        "device": "cpu",
        "precision": "fp32",
        "status": "ok",
        "error": None,
        "params": 1,
        "macs": 1,
        "latency_ms": None,
        "fps": None,
        "peak_mem_mb": None,
        "env": {"machine": machine},
        **extra,
    }


def test_merge_joins_shards_atomically_and_refuses_duplicates(tmp_path):
    from bench.store import merge_results

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    append_record(a, _cell_record("x"))
    append_record(b, _cell_record("y"))
    append_record(b, _cell_record("x", machine="m2"))  # same cell on another machine is not a duplicate
    out = tmp_path / "merged.jsonl"
    assert merge_results([a, b], out) == 3
    assert [r["model"] for r in read_records(out)] == ["x", "y", "x"]
    assert not list(tmp_path.glob(".*.tmp"))

    with pytest.raises(UsageError, match="exists"):
        merge_results([a], out)
    with pytest.raises(UsageError, match="duplicates"):
        merge_results([a, a], tmp_path / "twice.jsonl")
    assert not (tmp_path / "twice.jsonl").exists()


def test_schema_1_records_are_read_with_the_default_axes(tmp_path):
    path = tmp_path / "old.jsonl"
    old = _cell_record("x", schema_version=1)
    del old["kind"]
    path.write_text(json.dumps(old) + "\n")
    (record,) = read_records(path)
    assert record["kind"] == "bench" and record["backend"] == "eager" and record["channels_last"] is False
