"""Issue 17, items 5, 7 and 11: output that cannot be written (a file in the way, a full disk, a pipe or a
device named as the output), names from results fields that no file system takes, and CSV cells that a
spreadsheet would run. A full disk is the child's file-size limit (RLIMIT_FSIZE): writes past the chosen
byte fail as on a disk that filled there. Every case checks what was there before is there after, byte for
byte, and that no temporary file is left."""

import csv
import io
import os
import re

import pytest

from tests.faults.helpers import (
    bench_record,
    census,
    cli,
    eval_argv,
    eval_record,
    file_size_limit,
    finish,
    make_camvid,
    run_argv,
    snapshot,
    start,
    write,
)

# ---------------------------------------------------------------------------- item 5: unwritable output


@pytest.mark.slow
def test_run_with_a_file_in_the_way_of_out_is_one_line_before_calibration(tmp_path):
    (tmp_path / "file").write_text("keep me")
    before = snapshot(tmp_path)
    result = finish(start(run_argv(tmp_path / "file" / "r.jsonl", "--models", "fault_tiny"), cwd=tmp_path))
    result.one_line_error("is a file, not a folder")
    assert "cells" not in result.err  # found before calibration and the first cell
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_run_on_a_full_disk_is_one_line_before_calibration_and_keeps_every_record(tmp_path):
    out = write(tmp_path / "r.jsonl", bench_record("fault_tiny", input_hw=[16, 16]))
    before = snapshot(tmp_path)
    runner = start(
        run_argv(out, "--models", "fault_tiny,fault_raises", "--resolutions", "16x16", "--resume"),
        cwd=tmp_path,
        preexec=file_size_limit(10_000),  # room for a few bytes (imports write some), not for a sweep
    )
    result = finish(runner)
    result.one_line_error(f"cannot write to {tmp_path}", "File too large")
    assert "cells" not in result.err  # not after calibration and a first cell
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_a_disk_that_fills_during_a_run_is_one_line_naming_the_file_and_resume_loses_nothing(tmp_path):
    samples = [10.0] * 20_000  # a file larger than the write check (64 KiB), so that the check passes
    out = write(
        tmp_path / "r.jsonl", bench_record("fault_tiny", input_hw=[16, 16], latency_samples_ms=samples)
    )
    before = census(out)
    argv = run_argv(out, "--models", "fault_tiny,fault_raises", "--resolutions", "16x16", "--resume")
    # Room for the write check, not for the failed cell's record: it is cut short mid-line.
    full = finish(start(argv, cwd=tmp_path, preexec=file_size_limit(out.stat().st_size + 200)))
    full.one_line_error("File too large", str(out))
    assert census(out) == before  # the torn line is no record, and the one before it is whole

    done = finish(start(argv, cwd=tmp_path))
    assert done.code == 0, done.err
    after = census(out)
    assert before - after == {} and sum(after.values()) == 2 and max(after.values()) == 1


@pytest.mark.slow
def test_a_full_disk_leaves_the_previous_report_whole_and_no_temporary_folder(tmp_path):
    results = write(tmp_path / "r.jsonl", bench_record("fastscnn"))
    assert cli("report", results, "--out", tmp_path / "site").code == 0
    write(results, *(bench_record(f"model_{i:03d}", 5.0 + i) for i in range(150)), eval_record("enet"))
    before = snapshot(tmp_path)

    # Room for the write check (64 KiB), not for the new index page of 150 models: the disk fills mid-site.
    report = start(["report", results, "--out", tmp_path / "site"], tmp_path, preexec=file_size_limit(70_000))
    finish(report).one_line_error(f"cannot write the report to {tmp_path / 'site'}", "is unchanged")
    assert snapshot(tmp_path) == before  # the old site whole: no new CSV beside an old index.html


@pytest.mark.parametrize("command", ["merge", "export"])
def test_a_full_disk_leaves_no_temporary_file_from_merge_or_export(tmp_path, command):
    results = write(tmp_path / "r.jsonl", bench_record("fastscnn"), bench_record("enet"), eval_record("enet"))
    before = snapshot(tmp_path)
    target = tmp_path / ("merged.jsonl" if command == "merge" else "table.csv")
    result = finish(start([command, results, "--out", target], tmp_path, preexec=file_size_limit(100)))
    result.one_line_error("File too large")
    assert snapshot(tmp_path) == before  # no .tmp file, no half-written output


def test_a_report_out_that_is_a_file_is_one_line_and_the_file_is_kept(tmp_path):
    results = write(tmp_path / "r.jsonl", bench_record())
    (tmp_path / "index.html").write_text("my own page")
    before = snapshot(tmp_path)
    cli("report", results, "--out", tmp_path / "index.html").one_line_error("is a file")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "RESULTS", "--out", "PIPE"],
        ["compare", "RESULTS", "RESULTS", "--markdown", "PIPE"],
        ["cards", "--out", "PIPE"],
    ],
    ids=["export", "compare --markdown", "cards"],
)
def test_a_pipe_named_as_output_is_never_replaced_by_a_file(tmp_path, argv):
    """/dev/stdout or a named pipe as --out: the atomic rename would replace the device or pipe itself (as
    root, /dev/stdout for everyone); it is one line instead, and the pipe stays."""
    results = write(tmp_path / "r.jsonl", bench_record(), eval_record())
    before = results.read_bytes()
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    result = cli(*[{"RESULTS": results, "PIPE": pipe}.get(a, a) for a in argv])
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert result.lines[-1].startswith("segbench: error:") and str(pipe) in result.lines[-1], result.err
    assert pipe.is_fifo() and results.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "r.jsonl"]  # no temporary file


def test_eval_with_an_unwritable_out_is_one_line_before_evaluating(tmp_path, monkeypatch):
    from bench.eval import evaluate as evaluation

    def never(*args, **kwargs):
        raise AssertionError("evaluated before finding that --out cannot be written")

    monkeypatch.setattr(evaluation, "evaluate", never)
    data = make_camvid(tmp_path / "camvid")
    (tmp_path / "file").write_text("keep me")
    before = snapshot(tmp_path)
    cli(*eval_argv(data, tmp_path / "file" / "e.jsonl")).one_line_error("is a file, not a folder")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------- item 7: long names


def test_long_and_path_like_names_give_a_whole_report_with_bounded_unique_file_names(tmp_path):
    names = ["m" * 300, "m" * 299 + "n", "x/../../escape", "."]
    recs = [bench_record(name, 10.0 + i, group="g" * 300) for i, name in enumerate(names)]
    recs += [eval_record(names[0], dataset="d" * 300), bench_record("fastscnn", env={"machine": "h" * 300})]
    results = write(tmp_path / "r.jsonl", *recs)

    result = cli("report", results, "--out", tmp_path / "site")
    assert result.code == 0, result.err
    files = [p for p in (tmp_path / "site").rglob("*") if p.is_file()]
    assert (tmp_path / "site" / "index.html").exists()
    assert max(len(p.name.encode()) for p in files) <= 120
    assert len(list((tmp_path / "site" / "models").glob("*.html"))) == len(names) + 1  # one page each
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "site"]  # nothing escaped the site


# ---------------------------------------------------------------------------- item 11: CSV formulas

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
PAYLOADS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0"]


def _formulas(text: str) -> list[str]:
    """Cells a spreadsheet would run: read as one (a bare carriage return ends a row, as it does there)."""
    cells = [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]
    return [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r")) and not NUMBER.fullmatch(c)]


def test_no_csv_of_the_report_or_the_export_holds_a_cell_that_runs(tmp_path):
    recs = []
    for i, text in enumerate(PAYLOADS):
        env = {**bench_record()["env"], "machine": text, "cpu": text}
        recs += [
            bench_record(text, 10.0 + i, env=env),
            bench_record(f"m{i}", status="error", error=text, latency_ms=None, fps=None),
            eval_record(text, split=text, env=env),
        ]
    results = write(tmp_path / "r.jsonl", *recs)
    assert cli("report", results, "--out", tmp_path / "site").code == 0
    assert cli("export", results, "--out", tmp_path / "table.csv").code == 0

    tables = [*(tmp_path / "site").rglob("*.csv"), tmp_path / "table.csv"]
    assert len(tables) > 2
    for table in tables:
        assert _formulas(table.read_bytes().decode()) == [], table.name
    exported = (tmp_path / "table.csv").read_bytes().decode()
    assert "'=HYPERLINK" in exported and "'\r=1+1" in exported  # neutralised, not dropped
