"""The sweep end to end, through the CLI in a subprocess (so the fixture models stay out of this process)."""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

PLUGIN = "tests.bench.faulty_models"


def segbench(*args, check=True):
    out = args[args.index("--out") + 1]  # structure counts go beside the results, not into the repository's
    results = ["--results", str(Path(out).parent / "results")] if args[0] == "run" else []
    result = subprocess.run(
        [sys.executable, "-m", "bench", *args, *results, "--plugins", PLUGIN, "--no-progress"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_failures_are_recorded_and_the_sweep_goes_on_then_resume_skips_done_cells(tmp_path):
    out = tmp_path / "sweep.jsonl"
    models = "fault_raises,fault_sleeps,fault_oom,fault_tiny"
    # The limit must let the tiny model finish on a busy 2-core machine; the sleeper sleeps an hour.
    segbench("run", "--models", models, "--resolutions", "32x32", "--timeout", "30", "--out", str(out))

    records = {r["model"]: r for r in read(out)}
    assert set(records) == {"fault_raises", "fault_sleeps", "fault_oom", "fault_tiny"}
    assert records["fault_raises"]["status"] == "error"
    assert records["fault_raises"]["error"] == "RuntimeError: this model always fails"
    assert records["fault_sleeps"]["status"] == "timeout"
    assert "30 s" in records["fault_sleeps"]["error"]
    assert records["fault_oom"]["status"] == "oom"
    tiny = records["fault_tiny"]
    assert tiny["status"] == "ok" and tiny["error"] is None
    assert tiny["params"] == 3 * 2 * 9 + 2
    assert tiny["macs"] == 32 * 32 * 2 * 3 * 9
    assert tiny["output_shape"] == [1, 2, 32, 32]
    assert tiny["latency_ms"]["n"] == len(tiny["latency_samples_ms"]) >= 3
    assert tiny["fps"] == 1000 / tiny["latency_ms"]["median"]
    assert tiny["env"]["python"] and tiny["conditions"]["threads"] >= 1

    # Resume: nothing left to do; adding a resolution runs only the new cells.
    segbench(
        "run", "--models", models, "--resolutions", "32x32", "--timeout", "30", "--out", str(out), "--resume"
    )
    assert len(read(out)) == 4
    segbench("run", "--models", "fault_tiny", "--resolutions", "32x32,16x24", "--out", str(out), "--resume")
    after = read(out)
    assert len(after) == 5 and after[-1]["input_hw"] == [16, 24]


def test_an_existing_results_file_needs_resume(tmp_path):
    out = tmp_path / "sweep.jsonl"
    out.write_text("")
    result = segbench("run", "--models", "fault_tiny", "--out", str(out), check=False)
    assert result.returncode == 2
    assert "--resume" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_oom_at_one_resolution_is_recorded_and_the_next_resolution_still_runs(tmp_path):
    out = tmp_path / "oom.jsonl"
    segbench("run", "--models", "fault_oom_large", "--resolutions", "64x64,16x16", "--out", str(out))
    records = read(out)
    assert [(r["input_hw"], r["status"]) for r in records] == [([64, 64], "oom"), ([16, 16], "ok")]
    assert "out of memory" in records[0]["error"]


def test_shards_split_a_sweep_and_merge_back_into_it(tmp_path):
    sizes = "8x8,16x16,24x24"
    files = []
    for i in (1, 2):
        out = tmp_path / f"shard{i}.jsonl"
        segbench(
            "run", "--models", "fault_tiny", "--resolutions", sizes, "--shard", f"{i}/2", "--out", str(out)
        )
        files.append(out)
    shards = [read(f) for f in files]
    assert [len(s) for s in shards] == [2, 1] and {r["shard"] for r in shards[0]} == {"1/2"}
    merged = tmp_path / "merged.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "merge", *map(str, files), "--out", str(merged)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(r["input_hw"][0] for r in read(merged)) == [8, 16, 24]
