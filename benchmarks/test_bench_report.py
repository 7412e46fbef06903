"""Building the HTML report (load -> tables -> plots -> render -> write), at fixed sizes.

- `test_report_build`: every committed sweep record (results/<machine>/<time>-<profile>-<device>.jsonl) of
  four models, one per group, so the work stays the same as results accumulate.
- `test_report_build_synthetic[N]`: the synthetic history of benchmarks/synthetic_history.py, 60 models x 4
  inputs x 3 machines x N commits (720 records per commit): two sizes, so that the suite shows whether the
  cost grows linearly with the records (the full 50-commit history is measured by hand, see the README).
"""

from pathlib import Path

import pytest
from synthetic_history import generate  # benchmarks/ is on sys.path: pytest puts a test file's folder there

from bench.store import append_record, read_records
from reports.render import render_report

RESULTS = Path(__file__).resolve().parent.parent / "results"
MODELS = {"mobilenetv2", "pphumanseg_lite", "bisenetv2", "deeplabv3plus_r50"}


def test_report_build(benchmark, calibrated, tmp_path):
    sweeps = sorted(RESULTS.glob("*/*Z-*-*.jsonl"))
    records = [r for path in sweeps for r in read_records(path) if r.model in MODELS]
    assert {r.model for r in records} == MODELS, f"committed results under {RESULTS} lack some of {MODELS}"
    subset = tmp_path / "subset.jsonl"
    for r in records:
        append_record(subset, r)
    index = calibrated(render_report, args=([subset], tmp_path / "report"), rounds=3, warmup_rounds=0)
    benchmark.extra_info.update(records=len(records))
    assert index.exists() and index.stat().st_size > 0


@pytest.mark.parametrize("commits", [4, 8])
def test_report_build_synthetic(benchmark, calibrated, tmp_path, commits):
    records = generate(tmp_path / "results", 60, 4, 3, commits, seed=0)
    index = calibrated(
        render_report, args=([tmp_path / "results"], tmp_path / "report"), rounds=3, warmup_rounds=0
    )
    benchmark.extra_info.update(records=records)
    assert index.exists() and index.stat().st_size > 0
