"""What a sweep would have cost and recorded under a shorter per-process timing policy, replayed from its own
samples: a way to size a profile before spending an hour running it.

    python benchmarks/replay_policy.py RESULTS.jsonl --set max_time_s=3 [--set ci_target_rel=0.03 ...]

Each worker process's samples are kept in the record in the order they were taken (`latency_samples_ms`,
split by `latency_ms.process_n`). The replay walks them again under the policy the record names
(`conditions.timing_policy`) with the fields given by `--set`, stops where `bench.measure.latency.stop_reason`
would have stopped, and recomputes each cell's repeat interval as the sweep does (the between-process spread
pooled over the file's cells, `bench.measure.stats.across_processes`). It prints, per model group, the
sampling time recorded and replayed, and the median recorded 95% half-width before and after.

A replay can only shorten: a process that would have sampled longer under the new policy keeps the samples it
has (their count is printed), and warm-up and set-up are as they were, so set-up fields (`warmup_*`) cannot be
set. Elapsed sampling time is the sum of the samples, a little less than the clock the sweep read, so a replay
under the recorded policy may find a few processes that "would have sampled longer". The cells' wall time
after the replay is their recorded wall time less the sampling saved; the machine's speed on the day a new
sweep runs is not in it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from dataclasses import fields, replace
from pathlib import Path

from bench.errors import UsageError
from bench.measure.latency import TimingPolicy, stop_reason
from bench.measure.stats import across_processes, pool_between, summarize
from bench.store import read_json_lines

REPLAYABLE = (
    "min_samples",
    "min_time_s",
    "max_samples",
    "max_time_s",
    "ci_target_rel",
    "check_every",
    "setup_ratio",
)


def parse_settings(items: list[str]) -> dict:
    """['max_time_s=3'] -> {'max_time_s': 3.0}; only the fields that decide when sampling stops."""
    settings = {}
    types = {f.name: f.type for f in fields(TimingPolicy)}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or name not in REPLAYABLE:
            raise UsageError(f"--set {item!r}: expected NAME=VALUE with NAME one of {', '.join(REPLAYABLE)}")
        try:
            settings[name] = (int if types[name] in ("int", int) else float)(text)
        except ValueError:
            raise UsageError(f"--set {item!r}: {text!r} is not a number") from None
    return settings


def replay_process(samples: list[float], policy: TimingPolicy) -> tuple[list[float], bool]:
    """(the samples `policy` would have kept, whether it would have stopped within them): up to where it
    would have stopped, else all of them."""
    kept, elapsed = [], 0.0
    for sample in samples:
        kept.append(sample)
        elapsed += sample / 1000.0
        if stop_reason(kept, elapsed, policy):
            return kept, True
    return kept, False


def replay(records: list[dict], settings: dict) -> dict:
    """{group: {processes, longer, sampled_s, replayed_s, wall_s, recorded_rel, replayed_rel}} over the ok
    bench records measured in worker processes."""
    cells = []  # (group, record, processes as recorded, processes replayed, processes that would go on)
    for record in records:
        latency = record.get("latency_ms") or {}
        if record.get("kind") != "bench" or record.get("status") != "ok" or not latency.get("process_n"):
            continue
        conditions = record["conditions"]
        policy = replace(TimingPolicy(**conditions["timing_policy"]), **settings)
        samples, start = record["latency_samples_ms"], 0
        before, after, longer = [], [], 0
        for process, n in zip(conditions["processes"], latency["process_n"], strict=True):
            taken, start = samples[start : start + n], start + n
            kept, stopped = replay_process(taken, policy.for_setup(process["setup_s"]))
            longer += not stopped
            before.append(taken)
            after.append(kept)
        cells.append((record["group"], record, before, after, longer))
    if not cells:
        raise UsageError("no ok bench records measured in worker processes to replay")

    def intervals(which: int) -> list[float]:
        summaries = [
            [summarize(p, cell[1]["conditions"]["timing_policy"]["confidence"]) for p in cell[which]]
            for cell in cells
        ]
        pooled = pool_between(summaries)
        return [across_processes(s, pooled)["ci_rel"] for s in summaries]

    recorded, replayed = intervals(2), intervals(3)
    groups: dict = defaultdict(lambda: defaultdict(list))
    for (group, record, before, after, longer), rel_before, rel_after in zip(
        cells, recorded, replayed, strict=True
    ):
        row = groups[group]
        row["processes"].append(len(before))
        row["longer"].append(longer)
        row["sampled_s"].append(sum(map(sum, before)) / 1000.0)
        row["replayed_s"].append(sum(map(sum, after)) / 1000.0)
        row["wall_s"].append(record["wall_s"])
        row["recorded_rel"].append(rel_before)
        row["replayed_rel"].append(rel_after)
    return groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a sweep's results file (.jsonl)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a policy field")
    args = parser.parse_args(argv)
    try:
        groups = replay(read_json_lines(args.results), parse_settings(args.set))
    except UsageError as exc:
        print(f"replay_policy: {exc}", file=sys.stderr)
        return 2
    print(
        f"{'group':10} {'cells':>5} {'processes':>9} {'sampled s':>10} {'replayed s':>10} "
        f"{'half-width':>10} {'replayed':>8} {'longer':>6}"
    )
    totals = defaultdict(float)
    for group, row in sorted(groups.items()):
        for key in ("processes", "longer", "sampled_s", "replayed_s", "wall_s"):
            totals[key] += sum(row[key])
        print(
            f"{group:10} {len(row['wall_s']):5d} {sum(row['processes']):9d} {sum(row['sampled_s']):10.0f} "
            f"{sum(row['replayed_s']):10.0f} {statistics.median(row['recorded_rel']):10.1%} "
            f"{statistics.median(row['replayed_rel']):8.1%} {sum(row['longer']):6d}"
        )
    saved = totals["sampled_s"] - totals["replayed_s"]
    rel = [x for row in groups.values() for x in row["recorded_rel"]]
    rel_after = [x for row in groups.values() for x in row["replayed_rel"]]
    print(
        f"sampling {totals['sampled_s'] / 60:.1f} min -> {totals['replayed_s'] / 60:.1f} min; "
        f"the cells' wall time {totals['wall_s'] / 60:.1f} min -> {(totals['wall_s'] - saved) / 60:.1f} min; "
        "median recorded "
        f"half-width {statistics.median(rel):.1%} -> {statistics.median(rel_after):.1%}; "
        f"{int(totals['longer'])} processes would have sampled longer"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
