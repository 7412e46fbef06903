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
from dataclasses import fields, replace
from pathlib import Path

from bench.errors import UsageError
from bench.measure.latency import TimingPolicy, stop_reason
from bench.measure.stats import across_processes, pool_between, summarize
from bench.store import read_json_lines

SUMMED = ("processes", "longer", "sampled_s", "replayed_s", "wall_s")
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
    try:
        replace(TimingPolicy(), **settings)
    except ValueError as exc:  # negative times, check_every 0, a target of 0
        raise UsageError(f"--set: {str(exc).split(':')[0]}") from None
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


def replay(records: list[dict], settings: dict) -> list[dict]:
    """One row per ok bench record measured in worker processes: {model, group, input_hw, processes, longer
    (processes the new policy would have kept sampling), sampled_s, replayed_s, wall_s, recorded_rel,
    replayed_rel (the cell's recorded 95% half-width over its median, from all samples and from those
    kept)}."""
    cells = []  # (record, samples per process as taken, as kept, processes that would have gone on)
    for record in records:
        latency = record.get("latency_ms") or {}
        if record.get("kind") != "bench" or record.get("status") != "ok" or not latency.get("process_n"):
            continue
        conditions = record["conditions"]
        policy = replace(TimingPolicy(**conditions["timing_policy"]), **settings)
        samples, start = record["latency_samples_ms"], 0
        taken, kept, longer = [], [], 0
        for process, n in zip(conditions["processes"], latency["process_n"], strict=True):
            taken.append(samples[start : start + n])
            start += n
            cut, stopped = replay_process(taken[-1], policy.for_setup(process["setup_s"]))
            kept.append(cut)
            longer += not stopped
        cells.append((record, taken, kept, longer))
    if not cells:
        raise UsageError("no ok bench records measured in worker processes to replay")

    def half_widths(which: int) -> list[float]:  # as bench.combine computes them, spread pooled over cells
        levels = [cell[0]["conditions"]["timing_policy"]["confidence"] for cell in cells]
        summaries = [
            [summarize(p, level) for p in cell[which]] for cell, level in zip(cells, levels, strict=True)
        ]
        pooled = pool_between(summaries)
        return [
            across_processes(s, pooled, level)["ci_rel"] for s, level in zip(summaries, levels, strict=True)
        ]

    return [
        {
            "model": record["model"],
            "group": record["group"],
            "input_hw": record["input_hw"],
            "processes": len(taken),
            "longer": longer,
            "sampled_s": sum(map(sum, taken)) / 1000.0,
            "replayed_s": sum(map(sum, kept)) / 1000.0,
            "wall_s": record["wall_s"],
            "recorded_rel": before,
            "replayed_rel": after,
        }
        for (record, taken, kept, longer), before, after in zip(
            cells, half_widths(1), half_widths(2), strict=True
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a sweep's results file (.jsonl)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a policy field")
    args = parser.parse_args(argv)
    try:
        rows = replay(read_json_lines(args.results), parse_settings(args.set))
    except UsageError as exc:
        print(f"replay_policy: {exc}", file=sys.stderr)
        return 2
    print(
        f"{'group':10} {'cells':>5} {'processes':>9} {'sampled s':>10} {'replayed s':>10} "
        f"{'half-width':>10} {'replayed':>8} {'longer':>6}"
    )
    for group in sorted({row["group"] for row in rows}) + [None]:
        these = [row for row in rows if group in (None, row["group"])]
        total = {key: sum(row[key] for row in these) for key in SUMMED}
        median = {
            key: statistics.median(row[key] for row in these) for key in ("recorded_rel", "replayed_rel")
        }
        print(
            f"{group or 'all':10} {len(these):5d} {total['processes']:9d} {total['sampled_s']:10.0f} "
            f"{total['replayed_s']:10.0f} {median['recorded_rel']:10.1%} {median['replayed_rel']:8.1%} "
            f"{total['longer']:6d}"
        )
    saved = total["sampled_s"] - total["replayed_s"]
    print(
        f"sampling {total['sampled_s'] / 60:.1f} min -> {total['replayed_s'] / 60:.1f} min; "
        f"the cells' wall time {total['wall_s'] / 60:.1f} min -> {(total['wall_s'] - saved) / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
