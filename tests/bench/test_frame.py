"""Results as data: `segbench.load_results`, its documented columns, and `segbench export`."""

import io
import json
import subprocess
import sys

import pandas as pd
import pytest

import segbench
from bench.cli import main
from bench.errors import UsageError
from bench.frame import COLUMNS, SAMPLES, columns_markdown, csv_safe, export, load_results, to_csv
from bench.records import SCHEMA_VERSION, from_dict
from bench.store import append_record
from tests.conftest import REPO_ROOT

RESULTS = REPO_ROOT / "results"


def committed():
    """(path, raw JSON object) of every record of every committed results file."""
    return [
        (path, json.loads(line))
        for path in sorted(RESULTS.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def bench(model="m", status="ok", timestamp="2026-12-01T00:00:00+00:00", **extra):
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "bench",
        "model": model,
        "group": "realtime",
        "input_hw": [8, 16],
        "batch": 1,
        "device": "cpu",
        "precision": "fp32",
        "status": status,
        "error": None,
        "params": 1,
        "macs": 2,
        "latency_ms": {"median": 4.0, "n": 3, "ci95": [3.5, 4.5]},
        "latency_samples_ms": [4.0, 3.5, 4.5],
        "fps": 250.0,
        "peak_mem_mb": -1.5,
        "conditions": {"threads": 2},
        "env": {"machine": "box", "timestamp": timestamp, "torch": "2.0", "cpu": "CPU X"},
        **extra,
    }


def write(path, *records):
    for record in records:
        append_record(path, from_dict(record))
    return path


@pytest.fixture(scope="module")
def frame():
    return load_results(RESULTS)


def test_every_committed_results_file_is_read_one_row_per_record(frame):
    raw = committed()
    schemas = {(obj["schema_version"], obj.get("kind", "bench")) for _, obj in raw}
    assert {1, 2} <= {version for version, _ in schemas}  # what is committed today; newer files too
    assert len(frame) == len(raw)
    assert set(frame["source"]) == {path.as_posix() for path, _ in raw}
    for row, (_, obj) in zip(frame.itertuples(index=False), raw, strict=True):
        assert (row.model, row.status, row.machine) == (obj["model"], obj["status"], obj["env"]["machine"])
        assert row.kind == obj.get("kind", "bench")
        if row.kind == "bench":
            assert row.input_hw == "{}x{}".format(*obj["input_hw"]) and row.batch == obj.get("batch", 1)
            assert row.precision == obj["precision"] and row.backend == obj.get("backend", "eager")
            assert pd.isna(row.macs) if obj.get("macs") is None else row.macs == obj["macs"]
            latency = obj.get("latency_ms") or {}
            assert row.latency_ms == latency["median"] if latency else pd.isna(row.latency_ms)
            assert row.latency_n == latency["n"] if latency else pd.isna(row.latency_n)
            assert row.threads == (obj.get("conditions") or {}).get("threads", row.threads)
        elif row.kind == "structure":
            assert row.digest == obj["digest"] and row.params == obj["params"] and row.macs == obj["macs"]
            assert row.input_hw == "{}x{}".format(*obj["input_hw"]) and row.batch == obj["batch"]
        else:
            assert row.dataset == obj["dataset"] and row.miou == obj["miou"] and row.split == obj["split"]
            assert row.weights_source == obj["weights"]["source"]
        assert row.timestamp == pd.Timestamp(obj["env"]["timestamp"])


def test_the_columns_are_the_documented_ones_with_their_dtypes(frame):
    assert list(frame.columns) == [c.name for c in COLUMNS]
    assert SAMPLES not in frame.columns
    for column in COLUMNS:
        assert str(frame[column.name].dtype) == column.dtype, column.name
        assert column.doc and column.kinds


def test_the_readme_shows_the_table_of_columns():
    assert columns_markdown() in (REPO_ROOT / "README.md").read_text()


def test_samples_latest_and_a_structure_and_schema_3_record(tmp_path):
    structure = {
        "schema_version": SCHEMA_VERSION,
        "kind": "structure",
        "model": "m",
        "status": "ok",
        "error": None,
        "input_hw": [64, 96],
        "batch": 1,
        "digest": "abc123",
        "params": 7,
        "macs": 9,
        "env": {"machine": "box", "timestamp": "2026-12-01T00:00:00+00:00"},
    }
    old, new = bench(timestamp="2026-12-01T00:00:00+00:00"), bench(timestamp="2026-12-02T00:00:00+00:00")
    new["latency_ms"] = {"median": 5.0, "n": 4}
    path = write(tmp_path / "r.jsonl", old, new, structure)

    every = load_results(path, samples=True)
    assert len(every) == 3 and list(every.columns)[-1] == SAMPLES
    assert every[SAMPLES][0] == [4.0, 3.5, 4.5] and every["latency_ci_high"][0] == 4.5
    assert every["peak_mem_mb"][0] == -1.5 and every["device_model"][0] == "CPU X"
    assert every["backend_version"][0] == "2.0" and every["threads"][0] == 2
    row = every.iloc[2]
    assert (row.kind, row.digest, row.input_hw, row.height, row.width, row.params) == (
        "structure",
        "abc123",
        "64x96",
        64,
        96,
        7,
    )
    assert pd.isna(row.latency_ms) and pd.isna(row.group)

    latest = load_results([str(path)], latest=True)
    assert list(latest["latency_ms"].dropna()) == [5.0] and len(latest) == 2


def test_csv_cells_that_would_start_a_formula_are_neutralised(tmp_path):
    assert csv_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    for text in ("+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_safe(text) == "'" + text
    for kept in ("-1.5", "+2", "1e-3", "model", "", 3, None):
        assert csv_safe(kept) == kept

    path = write(tmp_path / "r.jsonl", bench(model="=cmd|' /C calc'!A0", status="error", error="@SUM(1)"))
    text = to_csv(load_results(path, samples=True))
    back = pd.read_csv(io.StringIO(text), keep_default_na=False)
    assert back["model"][0] == "'=cmd|' /C calc'!A0" and back["error"][0] == "'@SUM(1)"
    assert back["peak_mem_mb"][0] == -1.5  # numbers are numbers
    assert json.loads(back[SAMPLES][0]) == [4.0, 3.5, 4.5]


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    frame = load_results(write(tmp_path / "r.jsonl", bench(), bench(model="n")), samples=True)
    export(frame, tmp_path / "r.parquet", "parquet")
    back = pd.read_parquet(tmp_path / "r.parquet")
    assert list(back.columns) == list(frame.columns) and (back.dtypes == frame.dtypes).all()
    assert list(back[SAMPLES][0]) == [4.0, 3.5, 4.5]
    assert back.drop(columns=SAMPLES).equals(frame.drop(columns=SAMPLES))


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    with pytest.raises(UsageError, match=r"needs pyarrow: pip install 'segbench\[parquet\]'"):
        export(load_results(write(tmp_path / "r.jsonl", bench())), tmp_path / "r.parquet", "parquet")
    assert not (tmp_path / "r.parquet").exists()


def test_export_command(capsys, tmp_path, monkeypatch):
    results = write(tmp_path / "r.jsonl", bench(), bench(model="n"))
    out = tmp_path / "t.csv"
    assert main(["export", str(results), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table["model"]) == ["m", "n"] and SAMPLES not in table.columns
    assert main(["export", str(results), "--out", str(out), "--samples", "--latest"]) == 0
    assert SAMPLES in pd.read_csv(out).columns
    capsys.readouterr()

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    for argv, message in [
        (["--out", str(tmp_path / "t.parquet")], "needs pyarrow"),
        (["--out", str(tmp_path / "t.x"), "--format", "xlsx"], "unknown export format 'xlsx'"),
        (["--out", str(tmp_path)], "is a folder"),
    ]:
        assert main(["export", str(results), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "t.csv"]


def test_import_segbench_is_torch_free_and_names_this_machine():
    code = (
        "import sys, segbench\n"
        f"frame = segbench.load_results({str(RESULTS)!r})\n"
        "print(len(frame), segbench.machine(), 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    rows, machine, torch_loaded = out.stdout.split()
    from bench.env import machine_slug

    assert int(rows) == len(committed()) and machine == machine_slug("cpu") and torch_loaded == "False"
    assert segbench.load_results is load_results


def test_the_package_installs_the_segbench_module():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()  # (tomllib is Python 3.11+; we support 3.10)
    assert 'py-modules = ["segbench"]' in pyproject
    assert 'parquet = ["pyarrow>=' in pyproject and 'slurm = ["submitit>=' in pyproject
