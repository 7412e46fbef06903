"""Self-check of the timing harness against independent timers, and of repeated quick runs against each other.

Two modes (see benchmarks/README.md):

    python benchmarks/timer_agreement.py --threads 2 [--device cpu|cuda] [--out PATH]
    python benchmarks/timer_agreement.py --compare-runs A.jsonl B.jsonl [--out PATH]

Agreement mode builds each model once and times the same forward (same input, same threads, under
`torch.inference_mode()`) two or three ways:

- `harness`: `bench.measure.latency.sample_latency` + `bench.measure.stats.summarize`, as a sweep cell does;
- `timer`: `torch.utils.benchmark.Timer(...).blocked_autorange(min_run_time)` median, with `num_threads`
  passed explicitly (its default is 1, not the process's thread count);
- on CUDA also `event_loop`: a bare loop of N forwards between two CUDA events, synchronised, ms / N.

The methods alternate over a few rounds (harness first in even rounds, last in odd ones) so that slow drift of
the machine (another process, clocks, thermal state) falls on both. The figure per model is the ratio of the
harness's median of round medians to the reference's; PASS when within 5% of 1 (2% against the CUDA event
loop). Compare mode pairs the ok cells of two results files of the same profile and checks that the median of
the per-model ratios of medians is within 5% of 1. It also gives the same figure after dividing each cell's
ratio by the ratio of the calibration workload timed beside that cell (`record["calibration"]`, the rule of
`segbench compare`): on a shared virtual machine whose host speed drifts between runs, the raw figure measures
the drift and the normalised one the harness. The verdict is the raw figure's.

Compare mode also checks that the intervals hold across runs (issue 15's calibration self-check): the share
of paired cells whose median in B lies inside A's 95% interval (`latency_ms.ci95`: for a cell measured in
several worker processes, the interval a repeat run's median falls in, bench.measure.stats), PASS at 90% or
more; and it reports each run's interval half-widths (the share of cells within 5% of their median) and its
sweep efficiency (from the run summary beside each results file, bench.run). Where the machine has an
interval calibration (`segbench calibrate-intervals`, under results/selfcheck), the share is also given for
A's intervals widened by its run-to-run spread, the intervals `segbench compare` and the report use, saying
whether the two files are among those it was fitted on (in sample) or not (out of sample). The exit status
is 1 unless both the repeatability and the calibration (of the calibrated intervals, where there are some)
pass.

The output JSON (written atomically) holds the raw medians of every round, the threads, the policy and
`bench.env.collect_env`; a short table goes to stdout. Exit status: 0 PASS, 1 FAIL, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import torch  # noqa: E402
import torch.utils.benchmark as torch_benchmark  # noqa: E402

import zoo  # noqa: E402
from bench import intervals  # noqa: E402
from bench.compare import valid_calibration  # noqa: E402
from bench.conditions import parse_resolution  # noqa: E402
from bench.env import collect_env  # noqa: E402
from bench.errors import UsageError  # noqa: E402
from bench.measure.latency import TimingPolicy, call_timer, sample_latency, timer_name  # noqa: E402
from bench.measure.stats import inside_share, summarize  # noqa: E402
from bench.records import BenchRecord  # noqa: E402
from bench.spec import PROFILES, check_models  # noqa: E402
from bench.store import Layout, read_records, sidecar, write_json  # noqa: E402

DEFAULT_MODELS = "mobilenetv2@224x224,bisenetv2@360x480,fastscnn@360x480"
TOLERANCE = {"timer": 0.05, "event_loop": 0.02, "repeat_runs": 0.05}
CALIBRATION_TARGET = 0.90  # share of a second run's medians inside the first run's 95% intervals
WIDTH_TARGET = 0.05  # interval half-width / median that counts as precise (issue 15)
RESULTS = Layout(Path(__file__).resolve().parent.parent / "results")


def agreement_policy(budget_s: float) -> TimingPolicy:
    """The harness policy for the self-check: the default protocol with the same time budget as Timer."""
    return TimingPolicy(warmup_iters=3, warmup_s=0.5, warmup_max_s=3.0, min_samples=20, max_time_s=budget_s)


def parse_models(text: str) -> list[tuple[str, tuple[int, int]]]:
    """'mobilenetv2@224x224,fastscnn@360x480' -> [(name, (h, w)), ...]."""
    specs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, size = part.partition("@")
        if not sep:
            raise UsageError(f"malformed model spec {part!r}: expected NAME@HxW, e.g. fastscnn@360x480")
        specs.append((check_models([name])[0], parse_resolution(size)))
    if not specs:
        raise UsageError("no models given")
    return specs


def harness_ms(forward, policy: TimingPolicy, device: torch.device) -> dict:
    samples, info = sample_latency(forward, policy, call_timer(device))
    s = summarize(samples, policy.confidence, policy.ci_target_rel)
    return {
        "median": s["median"],
        "n": s["n"],
        "ci_rel": s["ci_rel"],
        "stop_reason": info["stop_reason"],
        "warmup_iters": info["warmup_iters"],
        "warmup_stable": info["warmup_stable"],
    }


def timer_ms(forward, threads: int, min_run_time: float) -> dict:
    timer = torch_benchmark.Timer(stmt="forward()", globals={"forward": forward}, num_threads=threads)
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return {"median": m.median * 1e3, "blocks": len(m.times), "number_per_run": m.number_per_run}


def event_loop_ms(forward, iters: int, reps: int = 5) -> dict:
    """Median over `reps` of: N forwards back to back between two CUDA events, synchronised, / N."""
    per_call = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(iters):
            forward()
        end.record()
        end.synchronize()
        per_call.append(start.elapsed_time(end) / iters)
    return {"median": statistics.median(per_call), "iters": iters, "reps": reps}


def measure_model(name, hw, device, threads, policy, budget_s, rounds) -> dict:
    torch.manual_seed(0)
    model = zoo.create_inference_model(name).eval().to(device)
    x = torch.randn(1, 3, *hw, device=device)

    def forward():
        with torch.inference_mode():
            return model(x)

    start = time.perf_counter()  # untimed warm-up so that neither method pays the first calls
    while time.perf_counter() - start < 1.0:
        forward()
    if device.type == "cuda":
        torch.cuda.synchronize()

    methods = {
        "harness": lambda: harness_ms(forward, policy, device),
        "timer": lambda: timer_ms(forward, threads, budget_s),
    }
    if device.type == "cuda":
        # As many forwards as the harness budget would take, judged from one timed call; at least 10.
        one = call_timer(device)(forward)
        iters = max(10, int(budget_s * 1000 / max(one, 1e-3) / 5))
        methods["event_loop"] = lambda: event_loop_ms(forward, iters)
    runs: dict[str, list[dict]] = {method: [] for method in methods}
    for r in range(rounds):
        order = list(methods) if r % 2 == 0 else list(reversed(methods))
        for method in order:
            runs[method].append(methods[method]())

    medians = {m: statistics.median(run["median"] for run in runs[m]) for m in runs}
    checks = {}
    for ref in (m for m in runs if m != "harness"):
        ratio = medians["harness"] / medians[ref]
        per_round = [h["median"] / r["median"] for h, r in zip(runs["harness"], runs[ref], strict=True)]
        checks[ref] = {
            "ratio": ratio,
            "round_ratios": per_round,
            "tolerance": TOLERANCE[ref],
            "pass": abs(ratio - 1) <= TOLERANCE[ref],
        }
    return {"model": name, "input_hw": list(hw), "median_ms": medians, "checks": checks, "rounds": runs}


def run_agreement(args) -> dict:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda given but torch.cuda.is_available() is False on this machine")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    policy = PROFILES["quick"].timing if args.policy == "quick" else agreement_policy(args.budget)
    specs = parse_models(args.models)
    results = []
    for name, hw in specs:
        print(f"measuring {name} {hw[0]}x{hw[1]} on {device} ...", file=sys.stderr, flush=True)
        results.append(measure_model(name, hw, device, threads, policy, args.budget, args.rounds))
    return {
        "mode": "timer_agreement",
        "device": str(device),
        "threads": threads,
        "interop_threads": torch.get_num_interop_threads(),
        "harness_timer": timer_name(device),
        "policy_name": args.policy,
        "policy": policy.as_dict(),
        "budget_s": args.budget,
        "rounds": args.rounds,
        "models": results,
        "pass": all(c["pass"] for r in results for c in r["checks"].values()),
        "env": collect_env(str(device)),
    }


def ok_medians(path: Path) -> dict[tuple, BenchRecord]:
    """{cell key: record} of the ok bench records in a results file."""
    return {r.key: r for r in read_records(path) if isinstance(r, BenchRecord) and r.ok and r.latency}


def spread(per_model: dict[str, float]) -> dict:
    """The median of per-model ratios, their p10..p90, and the models outside the repeat tolerance."""
    ratios = sorted(per_model.values())
    overall = statistics.median(ratios)
    tol = TOLERANCE["repeat_runs"]
    return {
        "median_ratio": overall,
        "ratio_p10_p90": [ratios[len(ratios) // 10], ratios[(len(ratios) * 9) // 10]],
        "models_outside_tolerance": sorted(m for m, r in per_model.items() if abs(r - 1) > tol),
        "pass": abs(overall - 1) <= tol,
    }


def interval_widths(records: dict[tuple, BenchRecord]) -> dict:
    """The cells' interval half-widths relative to their medians: median, p90, the share within
    WIDTH_TARGET, and how many worker processes measured the cells."""
    widths = sorted(r.latency.ci_rel for r in records.values() if r.latency.ci_rel is not None)
    processes = [r.latency.process_count for r in records.values()]
    return {
        "cells": len(widths),
        "median": statistics.median(widths) if widths else None,
        "p90": widths[(len(widths) * 9) // 10] if widths else None,
        "share_within": sum(w <= WIDTH_TARGET for w in widths) / len(widths) if widths else None,
        "within": WIDTH_TARGET,
        "processes_per_cell": statistics.fmean(processes) if processes else None,
    }


def calibration(a: dict[tuple, BenchRecord], b: dict[tuple, BenchRecord], shared: list[tuple]) -> dict:
    """The share of cells whose median in B lies inside A's 95% interval, and the cells outside."""
    pairs = {
        key: (tuple(a[key].latency.ci95), b[key].latency.median) for key in shared if a[key].latency.ci95
    }
    if not pairs:
        return {"cells": 0, "share": None, "target": CALIBRATION_TARGET, "pass": False, "outside": []}
    outside = [a[key].label() for key, ((low, high), median) in pairs.items() if not low <= median <= high]
    share = inside_share(list(pairs.values()))
    return {
        "cells": len(pairs),
        "inside": len(pairs) - len(outside),
        "share": share,
        "target": CALIBRATION_TARGET,
        "pass": share >= CALIBRATION_TARGET,
        "outside": outside,
    }


def calibrated_check(
    widened: dict[tuple, BenchRecord],
    b: dict[tuple, BenchRecord],
    shared: list[tuple],
    files: tuple[Path, Path],
) -> dict | None:
    """`calibration` again with A's records as calibrated across runs (`widened`, bench.intervals.calibrated);
    None where A's machine has no interval calibration. `fitted_on_these` says on how many of the two files
    the calibration was fitted: 0 is an out-of-sample test, 2 an in-sample one."""
    used = [widened[key].latency.extra.get("calibration") for key in shared]
    used = [u for u in used if u]
    if not used:
        return None
    fitted_on = {Path(run).name for run in used[0]["fitted_on"]}
    return {
        **calibration(widened, b, shared),
        "tau_run": used[0]["tau_run"],
        "fitted_on": sorted(fitted_on),
        "fitted_on_these": sum(Path(f).name in fitted_on for f in files),
    }


def sweep_runs(path: Path) -> list[dict]:
    """The run summaries bench.run keeps beside a results file (wall time, efficiency...); [] without."""
    summary = sidecar(path, "run.json")
    try:
        return json.loads(summary.read_text(encoding="utf-8"))["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def run_compare(path_a: Path, path_b: Path, calibrations: Path | None = None) -> dict:
    a, b = ok_medians(path_a), ok_medians(path_b)
    found = intervals.load(calibrations or RESULTS.root / "selfcheck")  # the machines' interval calibrations
    widened_a = {key: intervals.calibrated(record, found) for key, record in a.items()}
    shared = sorted(set(a) & set(b), key=str)
    if not shared:
        raise UsageError(f"{path_a} and {path_b} have no ok cell in common to compare")
    across = calibrated_check(widened_a, b, shared, (path_a, path_b))
    by_model: dict[str, list[float]] = {}
    normalised_by_model: dict[str, list[float]] = {}
    cells = []
    for key in shared:
        ma, mb = a[key].latency.median, b[key].latency.median
        cal_a, cal_b = (valid_calibration(r[key].get("calibration")) for r in (a, b))
        calibration_ratio = cal_b["median_ms"] / cal_a["median_ms"] if cal_a and cal_b else None
        model = a[key].model
        by_model.setdefault(model, []).append(mb / ma)
        if calibration_ratio:
            normalised_by_model.setdefault(model, []).append(mb / ma / calibration_ratio)
        cells.append(
            {
                "model": model,
                "input_hw": list(a[key].execution.input_hw),
                "median_ms_a": ma,
                "median_ms_b": mb,
                "ratio": mb / ma,
                "calibration_ratio": calibration_ratio,
            }
        )
    per_model = {model: statistics.median(ratios) for model, ratios in by_model.items()}
    normalised = {model: statistics.median(ratios) for model, ratios in normalised_by_model.items()}
    both = (*a.values(), *b.values())
    return {
        "mode": "compare_runs",
        "file_a": str(path_a),
        "file_b": str(path_b),
        "threads": sorted({r.threads for r in both}, key=str),
        "machines": sorted({r.machine for r in both}, key=str),
        "commits": sorted({r.env.git_commit for r in both}, key=str),
        "cells_a": len(a),
        "cells_b": len(b),
        "cells_paired": len(shared),
        "models_paired": len(per_model),
        "cells": cells,
        "per_model_ratio": per_model,
        **spread(per_model),
        "tolerance": TOLERANCE["repeat_runs"],
        # Each cell's B/A divided by its adjacent calibration's B/A; absent where a record has none.
        "calibration_normalised": (
            {"per_model_ratio": normalised, "models": len(normalised), **spread(normalised)}
            if normalised
            else None
        ),
        "interval_calibration": calibration(a, b, shared),
        "interval_calibration_across_runs": across,
        "interval_widths": {
            "a": interval_widths(a),
            "b": interval_widths(b),
            **({"a calibrated": interval_widths(widened_a)} if across else {}),
        },
        "sweeps": {"a": sweep_runs(path_a), "b": sweep_runs(path_b)},
    }


def print_table(result: dict) -> None:
    verdict = "PASS" if result["pass"] else "FAIL"
    if result["mode"] == "compare_runs":
        print(f"{'model':24} {'input':>9} {'A ms':>10} {'B ms':>10} {'B/A':>7} {'calib B/A':>9}")
        for c in result["cells"]:
            hw = "x".join(map(str, c["input_hw"]))
            a_ms, b_ms = c["median_ms_a"], c["median_ms_b"]
            calibration = f"{c['calibration_ratio']:9.3f}" if c["calibration_ratio"] else f"{'-':>9}"
            print(f"{c['model']:24} {hw:>9} {a_ms:10.3f} {b_ms:10.3f} {c['ratio']:7.3f} {calibration}")
        print(
            f"{result['models_paired']} models; median of per-model ratios {result['median_ratio']:.4f} "
            f"(p10..p90 {result['ratio_p10_p90'][0]:.3f}..{result['ratio_p10_p90'][1]:.3f}); "
            f"within {result['tolerance']:.0%}: {verdict}"
        )
        normalised = result["calibration_normalised"]
        if normalised:
            print(
                f"calibration-normalised ({normalised['models']} models): "
                f"median {normalised['median_ratio']:.4f} "
                f"(p10..p90 {normalised['ratio_p10_p90'][0]:.3f}..{normalised['ratio_p10_p90'][1]:.3f}); "
                f"within {result['tolerance']:.0%}: {'PASS' if normalised['pass'] else 'FAIL'}"
            )
        check = result["interval_calibration"]
        if check["cells"]:
            print(
                f"intervals: {check['inside']} of {check['cells']} B medians inside A's 95% interval "
                f"({check['share']:.0%}; target {check['target']:.0%}): {'PASS' if check['pass'] else 'FAIL'}"
            )
        across = result.get("interval_calibration_across_runs")
        if across and across["cells"]:
            samples = ("fitted on neither file: out of sample", "fitted on one of them", "in sample")
            sample = samples[across["fitted_on_these"]]
            print(
                f"calibrated intervals (run-to-run spread {across['tau_run']:.1%}, {sample}): "
                f"{across['inside']} of {across['cells']} B medians inside ({across['share']:.0%}): "
                f"{'PASS' if across['pass'] else 'FAIL'}"
            )
        for run, widths in result["interval_widths"].items():
            if widths["cells"]:
                print(
                    f"run {run.upper()}: interval half-width median {widths['median']:.1%}, p90 "
                    f"{widths['p90']:.1%}; {widths['share_within']:.0%} of {widths['cells']} cells within "
                    f"{widths['within']:.0%}; {widths['processes_per_cell']:.2f} processes per cell"
                )
        for run, sweeps in result["sweeps"].items():
            for sweep in sweeps:
                if sweep.get("efficiency") is not None:
                    print(
                        f"run {run.upper()}: sweep efficiency {sweep['efficiency']:.0%} "
                        f"({sweep['timed_s']:.0f} s of {sweep['wall_s']:.0f} s wall)"
                    )
        return
    print(
        f"device {result['device']}, threads {result['threads']}, policy {result['policy_name']}, "
        f"{result['rounds']} rounds"
    )
    head = ("model", "input", "harness ms", "reference", "ref ms", "ratio")
    print("{:16} {:>9} {:>11} {:>11} {:>10} {:>7}  verdict".format(*head))
    for r in result["models"]:
        hw = "x".join(map(str, r["input_hw"]))
        for ref, check in r["checks"].items():
            ok = "ok" if check["pass"] else f"OUTSIDE {check['tolerance']:.0%}"
            print(
                f"{r['model']:16} {hw:>9} {r['median_ms']['harness']:11.3f} {ref:>11} "
                f"{r['median_ms'][ref]:10.3f} {check['ratio']:7.4f}  {ok}"
            )
    print(verdict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compare-runs",
        nargs=2,
        metavar=("A.jsonl", "B.jsonl"),
        type=Path,
        help="compare two results files of the same profile instead of timing",
    )
    parser.add_argument(
        "--calibrations",
        type=Path,
        default=None,
        help="with --compare-runs: folder of interval calibrations (default: results/selfcheck)",
    )
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"NAME@HxW,... (default {DEFAULT_MODELS})")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's current)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per model (default 3)")
    parser.add_argument(
        "--budget",
        type=float,
        default=4.0,
        help="seconds of timing per method per round: harness max_time_s, Timer min_run_time",
    )
    parser.add_argument(
        "--policy",
        default="agreement",
        choices=("agreement", "quick"),
        help="harness policy: the self-check's own (default) or the quick profile's",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output JSON (default results/selfcheck/<machine>/timer-agreement-<device>.json "
        "or quick-repeatability.json)",
    )
    args = parser.parse_args(argv)
    try:
        if args.rounds < 1 or args.budget <= 0 or (args.threads is not None and args.threads < 1):
            raise UsageError("--rounds, --budget and --threads must be positive")
        if args.compare_runs:
            result = run_compare(*args.compare_runs, args.calibrations)
            machine = result["machines"][0] or "unknown"
            out = args.out or RESULTS.selfcheck(machine, "quick-repeatability")
        else:
            result = run_agreement(args)
            out = args.out or RESULTS.selfcheck(result["env"]["machine"], f"timer-agreement-{args.device}")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_json(out, result)
    print_table(result)
    print(f"wrote {out}")
    # The intervals compare and the report use: calibrated across runs where the machine has a calibration.
    intervals_check = result.get("interval_calibration_across_runs") or result.get("interval_calibration", {})
    calibrated = intervals_check.get("pass", True)
    return 0 if result["pass"] and calibrated else 1


if __name__ == "__main__":
    sys.exit(main())
