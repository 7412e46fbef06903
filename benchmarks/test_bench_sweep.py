"""The sweep's own figures on a small fixed sweep (issue 15): how much of its wall time is spent in timed
forwards (efficiency), how wide its intervals are, and whether they hold across runs (calibration).

Two back-to-back `segbench run`s of the quick profile's policies over three small models at small inputs
(every cell in two or three worker processes), then benchmarks/timer_agreement.py's comparison of the two.
The timed figure is the pair of sweeps' wall time; the figures of interest go into extra_info:
`efficiency` (each run's timed forwards / wall time), `interval_half_width_median` and
`share_within_5pct` (run A's), `calibration_share` (run B's medians inside run A's intervals) and
`processes_per_cell`. About a minute on 2 cores. On a busy machine they measure the neighbours too; the
quick profile's own figures come from two full quick sweeps (README, "The timing protocol").
"""

import importlib.util
import json
from pathlib import Path

import torch

from bench.cli import main
from bench.store import sidecar

ROOT = Path(__file__).resolve().parent.parent
CELLS = ("--models", "mobilenetv3_small,fastscnn,bisenetv2", "--resolutions", "96x128")


def _timer_agreement():
    spec = importlib.util.spec_from_file_location(
        "timer_agreement", ROOT / "benchmarks" / "timer_agreement.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_efficiency_interval_width_and_calibration(benchmark, calibrated, tmp_path):
    threads = torch.get_num_threads()  # the suite's (conftest.py)
    runs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]

    def two_sweeps():
        for out in runs:
            if out.exists():  # pytest-benchmark may call again: each call is two fresh sweeps
                out.unlink()
                sidecar(out, "run.json").unlink(missing_ok=True)
            argv = ["run", *CELLS, "--threads", str(threads), "--out", str(out), "--results", str(tmp_path)]
            assert main([*argv, "--no-progress"]) == 0

    calibrated(two_sweeps, rounds=1, warmup_rounds=0)
    result = _timer_agreement().run_compare(*runs)
    widths = result["interval_widths"]["a"]
    efficiency = [json.loads(sidecar(out, "run.json").read_text())["runs"][-1]["efficiency"] for out in runs]
    benchmark.extra_info.update(
        efficiency=efficiency,
        interval_half_width_median=widths["median"],
        share_within_5pct=widths["share_within"],
        processes_per_cell=widths["processes_per_cell"],
        calibration_share=result["interval_calibration"]["share"],
        cells=result["cells_paired"],
    )
    assert result["cells_paired"] == 3 and widths["processes_per_cell"] >= 2
