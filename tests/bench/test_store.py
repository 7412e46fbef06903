import json

import pytest

from bench.errors import UsageError
from bench.records import SCHEMA_VERSION, from_dict
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
        "latency_ms": {"median": 1.0, "n": 1},
        "fps": 1000.0,
        "peak_mem_mb": 1.0,
        "env": {},
    }


def test_append_and_read_round_trip(tmp_path):
    path = tmp_path / "sub" / "r.jsonl"
    append_record(path, from_dict(record("a")))
    append_record(path, from_dict(record("b", "error")))
    assert [r.model for r in read_records(path)] == ["a", "b"]


def test_torn_last_line_is_tolerated_and_cut_before_the_next_append(tmp_path):
    path = tmp_path / "r.jsonl"
    append_record(path, from_dict(record("a")))
    with open(path, "a") as f:
        f.write(json.dumps(record("torn"))[:40])  # a crash in the middle of a write
    assert [r.model for r in read_records(path)] == ["a"]
    append_record(path, from_dict(record("b")))
    assert [r.model for r in read_records(path)] == ["a", "b"]
    assert path.read_text().count("\n") == 2


def test_a_file_that_is_only_a_torn_line_reads_as_empty_and_is_repaired(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"schema_ver')
    assert read_records(path) == []
    append_record(path, from_dict(record("a")))
    assert [r.model for r in read_records(path)] == ["a"]


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
    append_record(a, from_dict(_cell_record("x")))
    append_record(b, from_dict(_cell_record("y")))
    append_record(
        b, from_dict(_cell_record("x", machine="m2"))
    )  # same cell on another machine is not a duplicate
    out = tmp_path / "merged.jsonl"
    assert merge_results([a, b], out) == 3
    assert [r.model for r in read_records(out)] == ["x", "y", "x"]
    assert not list(tmp_path.glob(".*.tmp"))

    with pytest.raises(UsageError, match="exists"):
        merge_results([a], out)
    with pytest.raises(UsageError, match="refusing to merge"):
        merge_results([a, a], tmp_path / "twice.jsonl")
    assert not (tmp_path / "twice.jsonl").exists()


def test_schema_1_records_are_read_with_the_default_axes(tmp_path):
    path = tmp_path / "old.jsonl"
    old = _cell_record("x", schema_version=1)
    del old["kind"]
    path.write_text(json.dumps(old) + "\n")
    (record,) = read_records(path)
    assert (
        record.kind == "bench"
        and record.execution.backend == "eager"
        and record.execution.channels_last is False
    )
    assert record.execution.cudnn_deterministic is None


def test_a_complete_last_record_without_its_newline_is_kept_and_ended_before_the_next_append(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record("a")) + "\n" + json.dumps(record("b")))  # e.g. files concatenated
    assert [r.model for r in read_records(path)] == ["a", "b"]
    append_record(path, from_dict(record("c")))
    assert [r.model for r in read_records(path)] == ["a", "b", "c"]
    assert path.read_text().endswith("\n") and path.read_text().count("\n") == 3


@pytest.mark.parametrize(
    "change, field",
    [
        ({"params": "1"}, "params"),
        ({"input_hw": "64x64"}, "input_hw"),
        ({"model": None}, "model"),
        ({"model": 3}, "model"),
        ({"env": []}, "env"),
        ({"fps": -1.0}, "fps"),
        ({"latency_ms": {"median": "fast", "n": 3}}, "median"),
        ({"status": "fine"}, "status"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_records_are_validated_on_read_naming_file_line_and_field(tmp_path, change, field):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record("a")) + "\n" + json.dumps({**record("b"), **change}) + "\n")
    with pytest.raises(UsageError, match=rf"r.jsonl:2: .*{field}"):
        read_records(path)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_numbers_a_record_may_hold(tmp_path, constant):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(record("a")).replace('"fps": 1000.0', f'"fps": {constant}') + "\n")
    with pytest.raises(UsageError, match=constant):
        read_records(path)


def test_a_second_writer_of_one_results_file_is_refused(tmp_path):
    from bench.store import exclusive

    path = tmp_path / "r.jsonl"
    with (
        exclusive(path),
        pytest.raises(UsageError, match="being written by another segbench run"),
        exclusive(path),
    ):
        pass
    with exclusive(path):  # released
        pass


def test_names_from_results_fields_are_safe_bounded_and_unique():
    from bench.store import safe_name

    assert safe_name("bisenetv2") == "bisenetv2"
    long_a, long_b = "m" * 300 + "a", "m" * 300 + "b"
    assert len(safe_name(long_a)) < 100 and safe_name(long_a) != safe_name(long_b)
    for evil in ("../../etc/passwd", "a/b", ".hidden", "smp:Unet:resnet34", ""):
        name = safe_name(evil)
        assert "/" not in name and not name.startswith(".") and name
    assert safe_name("smp:Unet:resnet34") != safe_name("smp_Unet_resnet34")


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    import os

    from bench.store import write_atomic

    path = tmp_path / "page.html"
    write_atomic(path, "old")

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_atomic(path, "new")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]


def test_every_committed_record_reads_and_round_trips():
    from bench.store import load
    from tests.conftest import REPO_ROOT

    records, _ = load([REPO_ROOT / "results"])
    assert len(records) > 400 and all(r.source.endswith(".jsonl") for r in records)
    for rec in records:
        assert from_dict(json.loads(rec.to_json())).to_dict() == rec.to_dict()


def latency_of_processes(**change):
    latency = {
        "median": 11.0,
        "n": 5,
        "ci95": [9.0, 13.0],
        "processes": 2,
        "process_medians": [10.0, 12.0],
        "process_n": [2, 3],
        "process_ci95": [[9.5, 10.5], [11.0, 13.0]],
        "process_stop_reasons": ["ci_target", "time_budget"],
        "ci_df": 3,
        "between_rel": 0.05,
        "stop_reason": "rounds",
    }
    return {**latency, **change}


def test_a_latency_measured_in_several_processes_round_trips_and_older_ones_count_one():
    from bench.records import Latency

    latency = Latency.from_dict(latency_of_processes())
    assert latency.process_medians == (10.0, 12.0) and latency.process_ci95[1] == (11.0, 13.0)
    assert latency.process_count == 2 and Latency.from_dict(latency.to_dict()) == latency
    assert latency.to_dict()["process_ci95"] == [[9.5, 10.5], [11.0, 13.0]]
    assert Latency.from_dict({"median": 1.0, "n": 1}).process_count == 1  # a record from before rounds


@pytest.mark.parametrize(
    "change, message",
    [
        ({"process_medians": [10.0]}, "one per process"),
        ({"process_n": [2, 2]}, "expected n = 5"),
        ({"process_medians": [10.0, -1.0]}, "process_medians"),
        ({"process_ci95": [[9.5, 10.5], [13.0, 11.0]]}, "process_ci95"),
        ({"process_stop_reasons": ["ci_target", "sweep_budget"]}, "process_stop_reasons"),
        ({"processes": 0}, "processes"),
        ({"ci_df": -1}, "ci_df"),
        ({"between_rel": "small"}, "between_rel"),
    ],
)
def test_per_process_latency_fields_are_validated(tmp_path, change, message):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({**record("a"), "latency_ms": latency_of_processes(**change)}) + "\n")
    with pytest.raises(UsageError, match=message):
        read_records(path)


def test_json_lines_beside_results_keep_whole_lines_and_cut_a_torn_one(tmp_path):
    from bench.store import append_json, read_json_lines, sidecar

    path = sidecar(tmp_path / "sweep.jsonl", "rounds")
    assert path.name == "sweep.jsonl.rounds"
    append_json(path, {"a": 1})
    with open(path, "a") as f:
        f.write('{"b": ')  # a crash mid-write
    assert read_json_lines(path) == [{"a": 1}]
    append_json(path, {"c": 3})
    assert read_json_lines(path) == [{"a": 1}, {"c": 3}]
    path.write_text('{"a": 1}')  # complete, but no newline: ended, not cut
    append_json(path, {"c": 3})
    assert read_json_lines(path) == [{"a": 1}, {"c": 3}]
    path.write_text('nonsense\n{"a": 1}\n')
    with pytest.raises(UsageError, match="sweep.jsonl.rounds:1"):
        read_json_lines(path)


def test_merge_copies_a_files_own_history_of_a_cell_but_refuses_it_across_files(tmp_path):
    from bench.store import merge_results

    retried = tmp_path / "retried.jsonl"
    for status in ("error", "ok"):  # `run --retry-failed` appended a second record of the cell
        append_record(retried, from_dict(record("a", status)))
    assert merge_results([retried], tmp_path / "merged.jsonl") == 2
    other = tmp_path / "other.jsonl"
    append_record(other, from_dict(record("a")))
    with pytest.raises(UsageError, match="refusing to merge"):
        merge_results([retried, other], tmp_path / "merged2.jsonl")
