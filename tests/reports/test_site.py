"""Writing the report safely (issue 17: items 5, 7 and 11): the site is swapped in whole, `--out` is checked
before rendering, file names from results fields are bounded and unique, CSV cells cannot run as formulas."""

import csv
import errno
import io
import os
import re
import subprocess
import sys

import pytest

from bench.cli import main
from bench.errors import UsageError
from reports.render import render_report, slug, to_csv
from tests.conftest import REPO_ROOT
from tests.reports import fixtures
from tests.reports.fixtures import bench

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_full_disk_leaves_the_previous_report_whole(tmp_path, monkeypatch, capsys):
    results = fixtures.write(tmp_path / "r.jsonl")
    out = tmp_path / "site"
    render_report([results], out)
    before = _snapshot(out)
    fixtures.write(
        results, [*fixtures.records(), bench("fastscnn", 3.0, timestamp="2026-03-01T00:00:00+00:00")]
    )
    calls, fsync = [], os.fsync

    def full_disk(fd):
        calls.append(fd)
        if len(calls) == 3:  # a few files in: the disk fills
            raise OSError(errno.ENOSPC, "No space left on device")
        return fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    assert main(["report", str(results), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"segbench: error: cannot write the report to {out}: No space left on device "
                   "(the previous report is unchanged)"]  # fmt: skip
    assert _snapshot(out) == before  # not a mix of new CSVs and the old index
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "site"]  # no temporary folder left
    monkeypatch.undo()
    render_report([results], out)  # with room again, the new report replaces the old one whole
    assert _snapshot(out) != before and "3.00" in (out / "index.html").read_text()


@pytest.mark.parametrize("make", ["file", "foreign folder", "under a file"])
def test_bad_out_is_one_line_before_rendering(tmp_path, capsys, make):
    results = tmp_path / "missing.jsonl"  # not even read: --out is checked first
    target = tmp_path / "out"
    if make == "file":
        target.write_text("keep me")
    elif make == "foreign folder":
        target.mkdir()
        (target / "notes.txt").write_text("keep me")
    else:
        (tmp_path / "f").write_text("")
        target = tmp_path / "f" / "site"
    assert main(["report", str(results), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("segbench: error:") and "missing.jsonl" not in err[0], err
    if make != "under a file":
        assert str(target) in err[0]
    if make == "file":
        assert target.read_text() == "keep me"
    if make == "foreign folder":
        assert (target / "notes.txt").read_text() == "keep me"


def test_an_older_report_folder_is_replaced(tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("<title>SegBench leaderboard</title>")  # a report of an older version
    (out / "stale.csv").write_text("x")
    render_report([fixtures.write(tmp_path / "r.jsonl")], out)
    assert (
        not (out / "stale.csv").exists() and 'content="SegBench report"' in (out / "index.html").read_text()
    )


def test_long_model_names_give_bounded_unique_file_names(tmp_path):
    long_a, long_b = "a" * 300, "a" * 299 + "b"  # safe characters, same first 80
    recs = [bench(long_a, 10.0), bench(long_b, 12.0), bench("x/../../evil", 9.0)]
    index = render_report([fixtures.write(tmp_path / "r.jsonl", recs)], tmp_path / "site")
    names = [p.name for p in (tmp_path / "site").rglob("*")]
    assert max(len(n.encode()) for n in names) <= 120
    pages = sorted(p.name for p in (tmp_path / "site" / "models").glob("*.html"))
    assert len(pages) == 3 and len(set(pages)) == 3
    text = index.read_text()
    for name in (long_a, long_b):
        assert f'href="models/{slug(name)}.html"' in text
    assert not (tmp_path / "evil.html").exists() and all(
        "/" not in n and not n.startswith(".") for n in names
    )


def test_csv_cells_cannot_start_a_formula():
    frame = fixtures_frame()
    rows = list(csv.reader(io.StringIO(to_csv(frame))))
    assert rows[1] == ['\'=HYPERLINK("http://x","y")', "'+cmd|' /C calc'!A0", "-1.5", "-1.5", "ok"]
    assert rows[2] == ["'@SUM(A1:A2)", "'-2+3", "2.0", "-2", "'\tx"]
    assert rows[3] == ["'\rcr", "+7", "", "1e-3", "a=b"]


def fixtures_frame():
    import pandas as pd

    return pd.DataFrame(
        {
            "model": ['=HYPERLINK("http://x","y")', "@SUM(A1:A2)", "\rcr"],
            "error": ["+cmd|' /C calc'!A0", "-2+3", "+7"],
            "number": [-1.5, 2.0, None],
            "text_number": ["-1.5", "-2", "1e-3"],
            "note": ["ok", "\tx", "a=b"],
        }
    )


def test_every_csv_of_the_site_is_neutralised(tmp_path):
    recs = [bench("=cmd()", 10.0), bench("fastscnn", status="error", error="@danger")]
    recs += [bench("fastscnn", 6.0, timestamp="2025-12-01T00:00:00+00:00", commit="old0001")]
    render_report([fixtures.write(tmp_path / "r.jsonl", recs)], tmp_path / "site")
    seen = []
    for path in (tmp_path / "site").rglob("*.csv"):
        for row in csv.reader(io.StringIO(path.read_text())):
            for cell in row:
                seen.append(cell)
                assert not cell.startswith(("=", "@", "\t", "\r")), (path.name, cell)
                assert not cell.startswith(("+", "-")) or NUMBER.fullmatch(cell), (path.name, cell)
    assert "'=cmd()" in seen and "'@danger" in seen


def test_report_command_imports_neither_torch_nor_the_models(tmp_path):
    """`segbench report` as a command (the parser included) runs without torch: the report's memory."""
    results = fixtures.write(tmp_path / "r.jsonl")
    code = (
        "import sys\n"
        "from bench.cli import main\n"
        f"assert main(['report', {str(results)!r}, '--out', {str(tmp_path / 'site')!r}]) == 0\n"
        "loaded = [m for m in sys.modules if m == 'torch' or m.startswith(('zoo.models', 'zoo.registry'))]\n"
        "print(sorted(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_check_target_accepts_new_and_empty_folders(tmp_path):
    from reports import site

    site.check_target(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    site.check_target(tmp_path / "empty")
    with pytest.raises(UsageError, match="is a file"):
        (tmp_path / "f").write_text("")
        site.check_target(tmp_path / "f")
