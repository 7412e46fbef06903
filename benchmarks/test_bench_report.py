"""Building the HTML report (load -> tables -> plots -> render) from committed results, at a fixed size.

The input is every committed sweep record (results/<machine>/<time>-<profile>-<device>.jsonl) of four
models, one per group, so the work stays the same as results accumulate; the whole committed set takes
minutes (one matplotlib page per model) and would measure the number of results, not the code.
"""

from pathlib import Path

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
