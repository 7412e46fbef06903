"""Issue 17, items 1 and 6: results files whose last line lacks its newline, and records that break the
schema. Every case counts the records of every file involved before and after the command: a complete
record is never cut (none lost), a cell is never measured twice (none duplicated), and a bad record is
one line naming the file, the line and the field from every command that reads results (report, compare,
merge, export), never a traceback, a NaN verdict or a silently shorter table."""

import json

import pytest

from tests.faults.helpers import (
    bench_record,
    census,
    cli,
    eval_argv,
    eval_record,
    line,
    make_camvid,
    records,
    snapshot,
    write,
)

# --------------------------------------------------------------------- item 1: a last line without newline


@pytest.fixture
def camvid(tmp_path):
    return make_camvid(tmp_path / "camvid")


def test_eval_keeps_a_complete_last_record_without_newline_and_appends_after_it(tmp_path, camvid):
    out = tmp_path / "eval.jsonl"
    kept = eval_record("sinet", dataset="portrait", split="all", miou=95.1)  # the authors' SINet record
    write(out, bench_record("fastscnn"), kept, newline_at_end=False)
    before = census(out)

    result = cli(*eval_argv(camvid, out, "--limit", "1"))

    assert result.code == 0, result.err
    after = census(out)
    assert before - after == {}  # none lost: the record that lacked its newline is still there
    assert sum((after - before).values()) == 1 and records(out)[-1]["model"] == "fastscnn"  # one new record
    assert out.read_text().startswith(line(bench_record("fastscnn")) + "\n" + line(kept) + "\n")


@pytest.mark.parametrize(
    "last",
    [
        line(eval_record("sinet", dataset="portrait", split="all")) + line(eval_record("enet")),
        line(eval_record("sinet", schema_version=99)),
    ],
    ids=["two records run together", "a record of a newer schema"],
)
def test_a_complete_last_line_that_is_no_record_is_never_cut(tmp_path, camvid, last):
    """A last line is torn only when it is not even one complete JSON value; anything else is reported by
    line and kept, never cut off by the next append nor skipped by a reader as if it were torn."""
    out = tmp_path / "eval.jsonl"
    out.write_text(line(bench_record("fastscnn")) + "\n" + last)
    before = out.read_bytes()

    result = cli(*eval_argv(camvid, out, "--limit", "1"))
    result.one_line_error(f"{out}:2")
    assert out.read_bytes() == before
    for argv in (["merge", out, "--out", tmp_path / "m.jsonl"], ["report", out, "--out", tmp_path / "site"]):
        cli(*argv).one_line_error(f"{out}:2")  # not read as one record with a torn tail
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["camvid", out.name]


# ------------------------------------------------------------------------ item 6: records break the schema

HUGE = 10**400  # a JSON integer no float (and no 64-bit column) holds


def _set(path: str, value):
    def change(record):
        inner = record
        *parents, last = path.split(".")
        for key in parents:
            inner = inner.setdefault(key, {})
        inner[last] = value
        return record

    return change


# (id, record, change, a word the error names). The cases first, then the same holes one level down.
BAD_RECORDS = [
    ("latency as text", bench_record, _set("latency_ms.median", "12.5"), "median"),
    ("params as text", bench_record, _set("params", "1000"), "params"),
    ("input_hw as text", bench_record, _set("input_hw", "64x64"), "input_hw"),
    ("model null", bench_record, _set("model", None), "model"),
    ("model a number", bench_record, _set("model", 7), "model"),
    ("env a list", bench_record, _set("env", []), "env"),
    ("fps NaN", bench_record, _set("fps", float("nan")), "NaN"),
    ("latency Infinity", bench_record, _set("latency_ms.median", float("inf")), "Infinity"),
    ("mIoU NaN", eval_record, _set("miou", float("nan")), "NaN"),
    ("mIoU text", eval_record, _set("miou", "40"), "miou"),
    ("status unknown", bench_record, _set("status", "fine"), "status"),
    ("batch zero", bench_record, _set("batch", 0), "batch"),
    ("params 10**400", bench_record, _set("params", HUGE), "params"),
    ("latency 10**400", bench_record, _set("latency_ms.median", HUGE), "median"),
    ("samples 10**400", bench_record, _set("latency_samples_ms", [HUGE]), "latency_samples_ms"),
    ("mIoU 10**400", eval_record, _set("miou", HUGE), "miou"),
    ("schema_version true", bench_record, _set("schema_version", True), "schema_version"),
    ("calibration as text", bench_record, _set("calibration.median_ms", "2.0"), "calibration.median_ms"),
    ("calibration interval from 0", bench_record, _set("calibration.ci95", [0, 2.1]), "calibration.ci95"),
    ("threads as text", bench_record, _set("conditions.threads", "2"), "conditions.threads"),
    ("agreement as text", bench_record, _set("agreement", {"max_abs_diff": "x"}), "agreement.max_abs_diff"),
    ("roofline as text", bench_record, _set("roofline", {"fraction": "x"}), "roofline.fraction"),
    ("throttled as text", bench_record, _set("hardware", {"throttled": "yes"}), "hardware.throttled"),
    ("coverage as text", bench_record, _set("macs_coverage", {"fvcore": "x"}), "macs_coverage"),
    ("GPU name a number", bench_record, _set("env.gpu", {"name": 5}), "gpu.name"),
    ("run calibration as text", bench_record, _set("env.calibration.workload.median_ms", "x"), "median_ms"),
    ("timestamp not a time", bench_record, _set("env.timestamp", "yesterday"), "timestamp"),
    ("eval cost as text", eval_record, _set("cost", {"latency_ms_per_image": "x"}), "cost.latency_ms"),
    ("weights source a number", eval_record, _set("weights", {"source": 5}), "weights.source"),
    ("arrays nested 100000 deep", bench_record, _set("memory", "@DEEP@"), "nested too deeply"),
    ("model an unpaired surrogate", bench_record, _set("model", "@SURROGATE@"), "surrogate"),
]
_RAW = {'"@DEEP@"': "[" * 100_000 + "]" * 100_000, '"@SURROGATE@"': '"m\\ud800"'}


def _bad_line(make, change) -> str:
    text = json.dumps(change(make()), sort_keys=True)  # NaN and Infinity as Python writes them
    for token, raw in _RAW.items():
        text = text.replace(token, raw)
    return text


@pytest.mark.parametrize("make, change, field", [c[1:] for c in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS])
def test_a_record_breaking_the_schema_is_one_line_naming_file_line_and_field(tmp_path, make, change, field):
    good = write(tmp_path / "good.jsonl", bench_record(), eval_record())
    bad = tmp_path / "bad.jsonl"
    bad.write_text(line(bench_record("enet")) + "\n" + _bad_line(make, change) + "\n")
    before = snapshot(tmp_path)

    for argv in (
        ["report", bad, "--out", tmp_path / "site"],
        ["compare", good, bad],
        ["compare", bad, good],
        ["merge", good, bad, "--out", tmp_path / "merged.jsonl"],
        ["export", bad, "--out", tmp_path / "table.csv"],
    ):
        cli(*argv).one_line_error(f"{bad}:2", field)
    assert snapshot(tmp_path) == before  # nothing written, nothing lost


@pytest.mark.parametrize(
    "stats", [{"median": "@NAN@"}, {"rounds": 0}, {"iqr": "@NAN@"}], ids=["median NaN", "rounds 0", "iqr NaN"]
)
def test_compare_refuses_a_pytest_benchmark_file_with_nan_or_no_rounds(tmp_path, stats):
    """compare's other input: a NaN there gave '+nan% ok', no rounds a traceback."""

    def document(**changes):
        entry = {"median": 0.01, "iqr": 0.001, "rounds": 10, **changes}
        return {
            "machine_info": {"node": "box"},
            "datetime": "2026-12-01T00:00:00",
            "benchmarks": [{"name": "test_forward", "stats": entry}],
        }

    base = tmp_path / "base.json"
    base.write_text(json.dumps(document()))
    new = tmp_path / "new.json"
    new.write_text(json.dumps(document(**stats)).replace('"@NAN@"', "NaN"))
    for argv in (["compare", base, new], ["compare", new, base]):
        cli(*argv).one_line_error(str(new), f"stats.{next(iter(stats))}")
