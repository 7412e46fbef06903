"""The GPU window's plan (bench.window_plan): estimates from stated assumptions, the jobs of a window, and
`segbench gpu --plan` on the CPU."""

import pytest

from bench import window, window_plan
from bench.cli import main
from bench.env import REPO_ROOT
from bench.window_sched import EXCLUSIVE, SHARED
from bench.window_structure import StructureFacts, candidates

H100 = window.gpu_spec("h100-sxm")
FACTS = StructureFacts(REPO_ROOT / "results")
a = window_plan.a


def test_every_assumption_names_its_source():
    for name, (value, source) in window_plan.ASSUMED.items():
        assert value >= 0 and len(source) > 10, name
    measured = [n for n, (_, s) in window_plan.ASSUMED.items() if s.startswith("measured")]
    assert {"worker_start_s", "build_s_per_param"} <= set(measured)


def test_latency_estimate_is_twice_the_macs_at_the_assumed_share_of_the_peak():
    est = window_plan.estimate_latency_ms
    assert est(1e12, "fp32", "eager", H100) == pytest.approx(2e12 / (67.0e12 * a("efficiency_fp32")) * 1e3)
    assert est(1e12, "fp16", "eager", H100) == pytest.approx(2e12 / (989.5e12 * a("efficiency_fp16")) * 1e3)
    assert est(1e12, "fp32", "eager", H100, tf32=True) == pytest.approx(
        2e12 / (494.5e12 * a("efficiency_tf32")) * 1e3
    )
    assert est(1e6, "fp32", "eager", H100) == a("floor_ms_eager")
    assert est(1e6, "fp16", "cuda_graph", H100) == a("floor_ms_cuda_graph")


def test_exclusive_turn_follows_the_timing_policy():
    policy = window.WINDOW_TIMING
    calibration = window_plan.calibration_pair_s()
    fast = window_plan.exclusive_s(0.1)  # 0.1 ms: the minimum times
    assert fast == pytest.approx(
        calibration + policy.warmup_s - 1e-4 + policy.min_time_s + a("monitor_s") + a("turn_s")
    )
    slow = window_plan.exclusive_s(1000.0)  # 1 s per call: the warm-up capped, sampling takes 3 calls
    assert slow == pytest.approx(calibration + policy.warmup_max_s + 1 + 3 + a("monitor_s") + a("turn_s"))


def _cell(model, phase):
    (wc,) = [c for c in window.window_cells([model], (phase,)) if c.cell.execution.precision == "fp32"][:1]
    return wc.cell


def test_segments_of_a_cells_processes():
    eager = _cell("sinet", "eager")  # eager fp32: the reference execution, no output agreement
    first = window_plan.cell_segments(eager, FACTS, H100, first=True).segments
    assert [s.kind for s in first] == ["cpu", SHARED, EXCLUSIVE, "exit"]
    graph = _cell("sinet", "cuda_graph")
    first = window_plan.cell_segments(graph, FACTS, H100, first=True).segments
    second = window_plan.cell_segments(graph, FACTS, H100, first=False).segments
    assert [s.kind for s in first] == ["cpu", SHARED, EXCLUSIVE, "cpu", SHARED, "exit"]  # + agreement
    assert [s.kind for s in second] == ["cpu", SHARED, EXCLUSIVE, "exit"]
    assert first[1].seconds > a("cuda_init_s") + a("first_call_s") + a("graph_capture_s") - 1e-9
    compiled = _cell("sinet", "compile")
    cold = window_plan.cell_segments(compiled, FACTS, H100, first=True).segments
    warm = window_plan.cell_segments(compiled, FACTS, H100, first=False).segments
    assert [s.kind for s in warm] == ["cpu", SHARED, "cpu", SHARED, EXCLUSIVE, "exit"]
    assert cold[2].seconds == a("compile_cold_s") and warm[2].seconds == a("compile_warm_s")
    assert cold[2].weight == window_plan.WEIGHT["compile"] < cold[0].weight < cold[1].weight == 1.0


def test_jobs_of_a_window():
    cells = window.window_cells(["sinet", "bisenetv2", "deeplabv3_r50"], ("eager", "compile"))
    wanted = candidates(REPO_ROOT / "results", ["sinet", "bisenetv2", "deeplabv3_r50"])
    planned = window_plan.plan_jobs(cells, FACTS, H100, True, window.interference_cells(cells), wanted)
    jobs = [p.job for p in planned]
    assert [j.id for j in jobs] == list(range(len(jobs)))
    assert [j.phase for j in jobs[:2]] == ["calibration", "selfcheck"] and jobs[1].after_shared
    checks = [p for p in planned if p.job.phase == "structure"]
    assert sorted(m for p in checks for m in p.payload) == ["bisenetv2", "deeplabv3_r50", "sinet"]
    firsts = [j for j in jobs if j.round == 1]
    seconds = [j for j in jobs if j.round == 2]
    assert len(firsts) == len(seconds) == len(cells)
    by_id = {j.id: j for j in jobs}
    for job in seconds:
        assert by_id[job.needs].cell_key == job.cell_key and by_id[job.needs].round == 1
        assert job.order[0] == 2
    assert {j.pool for j in jobs if j.phase == "compile"} == {"compile"}
    assert all(j.heavy == j.label.startswith("deeplabv3_r50") for j in firsts)
    again = [j for j in jobs if j.phase == "interference"]
    assert all(j.alone for j in again) and [j.label.split(" b1")[0] for j in again] == [
        "bisenetv2 512x1024",
        "sinet 224x224",
    ]


def test_heavy_cells_are_spread_through_the_start_order():
    cells = window.window_cells(None, ("eager",))
    order = window_plan.spread_heavy(cells)
    assert sorted(i for i, _ in order) == list(range(len(cells)))
    heavy = [k for k, (_, c) in enumerate(order) if window.is_heavy(c.cell)]
    gaps = [b - a for a, b in zip(heavy, heavy[1:], strict=False)]
    assert heavy[0] < len(cells) / 10 and max(gaps) <= 2 * min(gaps) + 1


def test_a_small_window_is_simulated_with_every_process_in_it():
    cells = window.window_cells(["sinet", "bisenetv2"], ("eager", "cuda_graph", "compile"))
    planned = window_plan.plan_jobs(cells, FACTS, H100)
    sim = window_plan.simulate_window(planned, 480.0)
    assert all(t.outcome == "ok" for t in sim.traces.values())
    assert sim.end < window_plan.hard_end(480.0)
    text = window_plan.format_plan(planned, 480.0, H100)
    assert "sinet 224x224 b1 fp32 compile" in text and "every cell fits" in text
    assert "whole list: 8 cells in 16 processes" in text and H100.source in text
    assert "compile_cold_s" in text and "thomasjpfan.com" in text


def test_segbench_gpu_plan_prints_cells_and_totals(capsys):
    assert main(["gpu", "--plan", "--models", "sinet,bisenetv2", "--phases", "eager,compile"]) == 0
    out = capsys.readouterr().out
    assert "sinet 224x224 b1 fp16 eager" in out and "bisenetv2 512x1024 b1 fp32 compile" in out
    assert "whole list: 6 cells in 12 processes" in out and "NVIDIA H100 SXM5 80GB" in out


@pytest.mark.slow
def test_the_whole_zoo_fits_in_the_window_with_margin(capsys):
    assert main(["gpu", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "whole list: 234 cells in 468 processes" in out and "every cell fits" in out
    end = float(out.split("the window ends at ")[1].split(" s")[0])
    assert end < 0.8 * window.DEADLINE_S
    assert "took 1.5x its estimate: the window ends at" in out
    assert out.split("took 1.5x its estimate: ")[1].split("\n")[0].endswith("every cell fits")
    assert "no committed structure record" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--phases", "eager,warp"], "unknown phase"),
        (["--models", "smp:Unet:resnet34"], ""),  # not a zoo model (or smp missing): either way refused
        (["--models", "nope"], "nope"),
        (["--deadline", "5"], "--deadline must be more than"),
        (["--gpu", "a100"], "unknown GPU"),
    ],
)
def test_bad_window_options_are_one_line_and_exit_2(argv, message, capsys):
    assert main(["gpu", "--plan", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("segbench: error:") and message in err and "\n" not in err


def test_plan_leaves_out_cells_measured_before_on_the_same_gpu(tmp_path, capsys):
    from bench.measure.stats import summarize
    from bench.run import Outcome, make_record
    from bench.store import append_record

    env = {"machine": "nvidia-h100-80gb-hbm3", "timestamp": "2026-12-07T00:00:00+00:00"}
    fp32, fp16 = (c.cell for c in window.window_cells(["sinet"], ("eager",)))
    ok = Outcome("ok", None, {"latency_ms": summarize([1.0, 1.1, 0.9, 1.0]), "params": 1})
    append_record(tmp_path / "a.jsonl", make_record(fp32, ok, env, 1.0))
    append_record(tmp_path / "a.jsonl", make_record(fp16, Outcome("error", "boom", {}), env, 1.0))  # not ok
    other = {**env, "machine": "nvidia-a100-sxm4-80gb"}
    append_record(tmp_path / "b.jsonl", make_record(fp16, ok, other, 1.0))  # another GPU
    argv = ["gpu", "--plan", "--models", "sinet", "--phases", "eager", "--skip-measured", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "whole list: 1 cells" in out and "1 cells left out as measured before" in out
    assert "sinet 224x224 b1 fp16 eager" in out and "sinet 224x224 b1 fp32 eager" not in out
