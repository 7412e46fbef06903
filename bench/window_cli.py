"""`segbench gpu`: the GPU window's command. `--plan` prints the plan (bench.window_plan) on any machine;
without it, the window runs on this machine's GPU (bench.window_run) and writes DIR.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench import window, window_plan
from bench.env import REPO_ROOT, collect_env, machine_slug
from bench.errors import UsageError
from bench.isolation import worker_context
from bench.store import check_writable
from bench.window_run import MANIFEST, Clock, Settings, Window, selfcheck_command
from bench.window_structure import StructureFacts, candidates


def _selected(models: list[str] | None) -> list[str] | None:
    if not models:
        return None
    import zoo
    from bench.spec import check_models

    for name in check_models(models):
        if zoo.model_group(name) not in window.GROUP_ORDER:
            raise UsageError(f"{name} is not a zoo model: a GPU window measures zoo models only")
    return models


def _phases(text: str | None) -> tuple[str, ...]:
    names = tuple(p.strip() for p in (text or ",".join(window.OPTIONAL_PHASES)).split(",") if p.strip())
    unknown = [p for p in names if p not in window.OPTIONAL_PHASES]
    if unknown or not names:
        raise UsageError(
            f"unknown phase {', '.join(unknown)!r}: expected some of {', '.join(window.OPTIONAL_PHASES)}"
        )
    return names


def plan_for(args, gpu: window.GpuSpec, machine: str, results: Path = REPO_ROOT / "results"):
    """(the planned jobs, cells measured before, cells without a committed structure record)."""
    phases = _phases(args.phases)
    cells = window.window_cells(_selected(args.models), tuple(p for p in phases if p in window.CELL_PHASES))
    measured = window.measured_keys(args.skip_measured, machine) if args.skip_measured else set()
    todo = [c for c in cells if c.cell.key not in measured]
    facts = StructureFacts(results)
    missing = [
        window.short_label(c.cell)
        for c in todo
        if facts.record(c.cell.model, c.cell.execution.input_hw, c.cell.execution.batch) is None
    ]
    again = window.interference_cells(todo) if "interference" in phases else []
    models = sorted({c.cell.model for c in todo})
    planned = window_plan.plan_jobs(
        todo, facts, gpu, "selfcheck" in phases, again, candidates(results, models)
    )
    return planned, len(cells) - len(todo), missing


def command(args) -> int:
    """`segbench gpu`: --plan, or the window itself."""
    if args.deadline <= window.PACK_RESERVE_S + window.FINISH_RESERVE_S:
        limit = window.PACK_RESERVE_S + window.FINISH_RESERVE_S
        raise UsageError(f"--deadline must be more than {limit:g} s, got {args.deadline:g}")
    if args.plan:
        gpu = window.gpu_spec(args.gpu)
        planned, before, missing = plan_for(args, gpu, machine_slug("cuda", {"name": gpu.nvml_names[0]}))
        print(window_plan.format_plan(planned, args.deadline, gpu, before, missing))
        return 0
    _phases(args.phases)
    _selected(args.models)
    import torch

    if not torch.cuda.is_available():
        raise UsageError("no CUDA device is available to torch here (--plan sizes a window without one)")
    if args.out is None:
        raise UsageError("a window needs --out DIR (the folder it writes)")
    check_writable(args.out)
    if any(Path(args.out).rglob("*.jsonl")) or (Path(args.out) / MANIFEST).exists():
        raise UsageError(f"{args.out} holds a window already: give an empty folder")
    cpus = window.timer_cpus()
    if cpus[0] != cpus[1]:
        os.sched_setaffinity(
            0, cpus[1]
        )  # this runner, the fork server and every worker start off the timer's
    worker_context()  # the fork server imports torch and the zoo now, counted in the start-up
    env = collect_env("cuda")
    gpu = window.gpu_for_name((env.get("gpu") or {}).get("name"))
    if gpu is None:
        gpu = window.gpu_spec(args.gpu)
        print(
            f"segbench: {env.get('gpu')} is not in the peaks table: estimates use {gpu.name}'s",
            file=sys.stderr,
        )
    planned, before, missing = plan_for(args, gpu, env["machine"])
    clock = Clock()
    out = Path(args.out)
    settings = Settings(cpus=(sorted(cpus[0]), sorted(cpus[1])))
    runner = Window(out, env, planned, args.deadline, clock, settings, _log)
    settings.selfcheck = selfcheck_command(runner.selfcheck_path)
    runner.manifest.update(measured_before=before, structure_missing=missing)
    print(
        f"segbench: GPU window on {(env.get('gpu') or {}).get('name')}: {len(planned)} processes, deadline "
        f"{args.deadline:g} s ({clock.elapsed():.1f} s gone), {before} cells measured before -> {out}",
        file=sys.stderr,
    )
    manifest = runner.run()
    for phase, figures in manifest["summary"].items():
        counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(figures["outcomes"].items()))
        timed, estimated = figures["exclusive_s"], figures["exclusive_estimate_s"]
        _log(f"{phase}: {counts} (timed {timed:.0f} s, estimated {estimated:.0f} s)")
    for item in manifest["interference"] or ():
        loaded = ", ".join(f"{ms:.3f}" for ms in item["in_window_ms"])
        _log(f"interference: {item['cell']}: {item['alone_ms']:.3f} ms alone, {loaded} ms in the window")
    _log(f"window over at {manifest['finished_s']:.1f} s; manifest {out / MANIFEST}")
    return 0


def _log(line: str) -> None:
    print(line, flush=True)
