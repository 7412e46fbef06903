"""One sweep on many machines through submitit: submit its shards as a job array, wait, merge them.

`segbench run --launcher slurm --shards N ...` submits a Slurm job array of N tasks (submitit's
SlurmExecutor, so `sbatch` must work where it runs); task i runs `segbench run ... --shard i/N --out
<launch dir>/shard<i>of<N>.jsonl` with the same options, on whatever node Slurm gives it, which records its
own machine, environment and calibration. When every task has ended the shards are merged into one
results file (bench.store.merge_results: a cell measured twice is refused). `--launcher local` runs the
same N tasks as processes on this machine through submitit's LocalExecutor, all at once: a way to try a
launch (and what the tests run), not to time models.

Submission parameters go to submitit as `--launcher-param KEY=VALUE` (slurm_partition=gpu, gpus_per_node=1,
cpus_per_task=8, timeout_min=120, mem_gb=32, slurm_array_parallelism=4, ...: submitit's AutoExecutor names).
The default time limit is the worst case of one shard: its cells at the per-cell timeout plus start-up; a
CUDA sweep asks for one GPU per task.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

from bench.conditions import AXES, option
from bench.errors import UsageError
from bench.spec import Cell, Profile, shard_cells
from bench.store import Layout, check_writable, merge_results, read_records, utc_stamp

LAUNCHERS = ("slurm", "local")
DEFAULT_DIR = Path("build/launch")
START_S = 60.0  # a worker's start-up beside each cell's own limit, in the default job time limit
RUN_START_S = 600.0  # the job's imports and the run's calibration


def parse_params(items: list[str]) -> dict:
    """['slurm_partition=gpu', 'timeout_min=60'] -> {'slurm_partition': 'gpu', 'timeout_min': 60}: integers,
    numbers and true/false become values of their type, anything else stays text."""
    params = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"malformed --launcher-param {item!r}: expected KEY=VALUE, e.g. slurm_partition=gpu"
            )
        value: object = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    pass
        params[key.strip()] = value
    return params


def shard_argv(args, index: int, count: int, out: Path) -> list[str]:
    """The `segbench run` command line of shard `index` of `count`: the parent's sweep options, this shard,
    its file, no progress bar (the job's output is a log)."""
    argv = ["run", "--profile", args.profile, "--device", args.device, "--shard", f"{index}/{count}"]
    argv += ["--out", str(out), "--no-progress"]
    if args.models:
        argv += ["--models", ",".join(args.models)]
    if args.resolutions:
        argv += ["--resolutions", args.resolutions]
    for axis in AXES:
        if axis.name != "device" and getattr(args, axis.name) is not None:
            argv += [option(axis.name), getattr(args, axis.name)]
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.timeout is not None:
        argv += ["--timeout", str(args.timeout)]
    if args.plugins:
        argv += ["--plugins", ",".join(args.plugins)]
    return argv


def run_shard(argv: list[str]) -> str:
    """A job of the array: one shard, run exactly as `segbench <argv>` would run it. Returns its file."""
    from bench.cli import main

    code = main(argv)
    if code != 0:
        raise RuntimeError(f"segbench {' '.join(argv)} exited with status {code}")
    return argv[argv.index("--out") + 1]


def _executor(launcher: str, folder: Path, params: dict):
    try:
        import submitit
    except ImportError:
        raise UsageError(f"--launcher {launcher} needs submitit: pip install 'segbench[slurm]'") from None
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=launcher)
        executor.update_parameters(**params)
    except (RuntimeError, NameError, AssertionError, ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"--launcher {launcher}: {first}") from None
    return executor


def _default_out(shards: list[Path], results_root: Path, profile: str, device: str) -> Path:
    """results/<machine>/<time>-<profile>-<device>.jsonl, the machine being the one the records name (a
    sweep spread over several machines is filed under all their names)."""
    machines = sorted({r.machine or "unknown" for path in shards for r in read_records(path)})
    if len(machines) > 1:
        print(
            f"segbench: the shards ran on {len(machines)} machines ({', '.join(machines)}); "
            "latencies compare within one machine only",
            file=sys.stderr,
        )
    return Layout(results_root).sweep("+".join(machines) or "unknown", profile, device)


def launch(args, cells: list[Cell], profile: Profile, results_root: Path) -> int:
    """Submit the sweep `cells` as `args.shards` jobs, wait for them, merge their files into `args.out`."""
    if args.launcher is None:
        raise UsageError(f"--shards needs --launcher ({' or '.join(LAUNCHERS)})")
    if args.launcher not in LAUNCHERS:
        raise UsageError(f"unknown launcher {args.launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    if args.shard:
        raise UsageError("--shard with --launcher: the launcher gives each job its shard (use --shards N)")
    if args.resume:
        raise UsageError("--resume with --launcher: resume each shard file with `segbench run --shard I/N`")
    count = args.shards
    if count is None or count < 1:
        raise UsageError(f"--launcher {args.launcher} needs --shards N with N >= 1")
    if count > len(cells):
        raise UsageError(f"--shards {count}: the sweep has only {len(cells)} cell{'s' * (len(cells) > 1)}")
    if args.out is not None:
        if args.out.exists():
            raise UsageError(f"{args.out} exists: the merged sweep is written to a new file")
        check_writable(args.out.parent)
    folder = (args.launch_dir or DEFAULT_DIR / utc_stamp()).resolve()
    shards = [folder / f"shard{i}of{count}.jsonl" for i in range(1, count + 1)]
    if any(path.exists() for path in shards):
        raise UsageError(f"{folder} already holds shard files: choose another --launch-dir")
    per_shard = max(len(shard_cells(cells, (i, count))) for i in range(1, count + 1))
    timeout_s = args.timeout or profile.timeout_s
    params = {
        "name": "segbench",
        "timeout_min": math.ceil((per_shard * (timeout_s + START_S) + RUN_START_S) / 60),
        **({"slurm_array_parallelism": count} if args.launcher == "slurm" else {}),
        **({"gpus_per_node": 1} if args.device == "cuda" else {}),  # else the local executor hides the GPUs
        **parse_params(args.launcher_param),
    }
    argvs = [shard_argv(args, i, count, out) for i, out in enumerate(shards, 1)]
    created = folder  # the first folder this launch makes, removed again if nothing is submitted
    while not created.parent.exists():
        created = created.parent
    created = None if folder.exists() else created
    check_writable(folder)
    try:
        jobs = _executor(args.launcher, folder / "jobs", params).map_array(run_shard, argvs)
    except (OSError, RuntimeError, UsageError) as exc:  # bad parameters, no srun, sbatch refusing the array
        if created:  # nothing was submitted: leave nothing behind
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"--launcher {args.launcher}: submission failed: {exc}") from None
    ids = ", ".join(job.job_id for job in jobs)
    print(
        f"segbench: {len(cells)} cells in {count} shards, {args.launcher} jobs {ids}; files in {folder}",
        file=sys.stderr,
    )
    try:
        failed = []
        for index, job in enumerate(jobs, 1):
            try:
                job.result()
            except Exception as exc:  # noqa: BLE001 - a failed job is reported with its log, the others kept
                failed.append(
                    f"shard {index}/{count} (job {job.job_id}) failed, see {job.paths.stderr}: {exc}"
                )
    except KeyboardInterrupt:
        print(
            f"segbench: stopped waiting; jobs {ids} go on. When they end: segbench merge {folder} --out FILE",
            file=sys.stderr,
        )
        return 130
    for line in failed:
        print(f"segbench: {line.strip().splitlines()[0]}", file=sys.stderr)
    if failed:
        print(f"segbench: the shards that ended are in {folder} (segbench merge joins them)", file=sys.stderr)
        return 1
    out = args.out or _default_out(shards, results_root, profile.name, args.device)
    written = merge_results(shards, out)
    print(f"segbench: {written} records from {count} shards -> {out}", file=sys.stderr)
    print(out)
    return 0
