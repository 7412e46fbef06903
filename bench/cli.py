"""`segbench` command line: list, run, report. Thin: parsing and messages only.

Bad input exits with status 2 and one line on stderr, before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import UsageError

DEFAULT_RESULTS_DIR = Path("results")
DEFAULT_REPORT_DIR = Path("build/report")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage too; the contract is one line
        raise UsageError(message)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    from bench.conditions import AXES, axis_help, option
    from bench.options import fraction, non_negative_float, positive_float, positive_int
    from bench.spec import PROFILES  # torch-free, as every import of the parser (`report` runs without torch)

    parser = _Parser(prog="segbench", description="Benchmark segmentation models: cost, speed and accuracy.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("--group", help="backbone, portrait, realtime or semantic")

    p = sub.add_parser("run", help="measure models; one JSON Lines record per cell")
    p.add_argument(
        "--profile", default="quick", choices=sorted(PROFILES), metavar="PROFILE",
        help="embedded sweep (default: quick)",
    )  # fmt: skip
    p.add_argument("--models", type=_csv, help="comma-separated model ids (default: all)")
    p.add_argument(
        "--resolutions", help="comma-separated HxW, e.g. 360x480,512x1024 (default: the profile's)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    for axis in AXES:  # every condition axis is an option taking a comma-separated list of values
        if axis.name != "device":
            p.add_argument(option(axis.name), dest=axis.name, help=f"{axis_help(axis.name)}; comma-separated")
    p.add_argument(
        "--shard",
        help="run shard I of N of the sweep, e.g. 1/2 (merge the files with `merge`); auto: from the Slurm "
        "job array or Kubernetes Indexed Job this runs in",
    )
    p.add_argument(
        "--threads", type=positive_int, help="CPU threads for torch (default: every CPU this process may use)"
    )
    p.add_argument("--timeout", type=positive_float, help="seconds per cell (default: the profile's)")
    p.add_argument(
        "--out", type=Path, help="results file (default: results/<machine>/<time>-<profile>-<device>.jsonl)"
    )
    p.add_argument("--resume", action="store_true", help="skip cells already recorded in --out")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="like --resume, and measure again the cells whose newest record failed (the old record is kept)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS_DIR,
        help="results folder: structure counts, and the default --out (default: results)",
    )
    p.add_argument("--plugins", type=_csv, default=[], help="modules to import that register extra models")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # Scaling out (bench/launch.py): the shards as a submitit job array, waited for and merged into --out.
    p.add_argument("--launcher", help="submit the sweep as --shards jobs through submitit: slurm or local")
    p.add_argument("--shards", type=int, help="number of shards (jobs) for --launcher")
    p.add_argument(
        "--launcher-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="submitit parameter, e.g. slurm_partition=gpu, gpus_per_node=1, timeout_min=120 (repeatable)",
    )
    p.add_argument("--launch-dir", type=Path, help="shard files and job logs (default: build/launch/<time>)")

    p = sub.add_parser("export", help="results as one table for other tools: CSV or Parquet")
    p.add_argument("results", nargs="+", type=Path, help="JSON Lines files or folders")
    p.add_argument("--out", type=Path, required=True, help="table file to write")
    p.add_argument("--format", help="csv or parquet (default: parquet for a .parquet --out, else csv)")
    p.add_argument("--samples", action="store_true", help="add latency_samples_ms, every timed call")
    p.add_argument("--latest", action="store_true", help="only the newest record of each cell per machine")

    p = sub.add_parser("merge", help="merge results files (e.g. the shards of one sweep) into one")
    p.add_argument("inputs", nargs="+", type=Path, help="JSON Lines files or folders")
    p.add_argument("--out", type=Path, required=True, help="merged results file (must not exist)")

    p = sub.add_parser("compare", help="regressions between two result sets (exit 1 on a regression)")
    p.add_argument("base", type=Path, help="baseline: results file or folder, or pytest-benchmark JSON")
    p.add_argument("new", type=Path, help="new results, same kinds")
    p.add_argument(
        "--latency-threshold",
        type=positive_float,
        default=0.10,
        help="slowdown that counts (default: 0.10 = 10%%)",
    )
    p.add_argument(
        "--miou-tol", type=non_negative_float, default=0.5, help="allowed mIoU drop in points (default: 0.5)"
    )
    p.add_argument(
        "--normalize", action="store_true", help="require calibration (default: normalise when both have it)"
    )
    p.add_argument(
        "--latency-report-only", action="store_true", help="show latency regressions but exit 0 on them"
    )
    p.add_argument("--markdown", type=Path, help="also write the table as Markdown (a pull-request comment)")
    p.add_argument(
        "--calibrations",
        type=Path,
        default=DEFAULT_RESULTS_DIR / "selfcheck",
        help="folder of the machines' interval calibrations (`calibrate-intervals`); latency intervals are "
        "widened by their run-to-run spread (default: results/selfcheck; none there: as recorded)",
    )

    p = sub.add_parser(
        "calibrate-intervals",
        help="measure a machine's run-to-run spread from repeated sweeps (compare and report widen by it)",
    )
    p.add_argument("runs", nargs="+", type=Path, help="two or more results files of the same cells")
    p.add_argument(
        "--confidence", type=fraction, default=0.95, help="share of pairs the intervals must hold (0.95)"
    )
    p.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS_DIR, help="results folder (default: results)"
    )

    p = sub.add_parser("baseline", help="check (default) or --update the committed structural baseline")
    p.add_argument("--update", action="store_true", help="recompute and write it (a deliberate change)")
    p.add_argument("--file", type=Path, help="default: results/baselines/structure.json")

    p = sub.add_parser("structure", help="params, MACs and output shape per model and input, counted once")
    p.add_argument("--models", type=_csv, help="comma-separated model ids (default: all)")
    p.add_argument("--resolutions", help="comma-separated HxW (default: each model's card input)")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size (default: 1)")
    p.add_argument(
        "--claims", action="store_true", help="also at the input size of every params/MACs/FLOPs card claim"
    )
    p.add_argument(
        "--results", type=Path, default=DEFAULT_RESULTS_DIR, help="results folder (default: results)"
    )

    p = sub.add_parser("cards", help="export the model cards as data for the report (reports/cards.json)")
    p.add_argument("--out", type=Path, help="output JSON (default: reports/cards.json)")
    p.add_argument("--plugins", type=_csv, default=[], help="modules to import that register extra models")

    p = sub.add_parser("report", help="render the HTML leaderboard from results files")
    p.add_argument("results", nargs="*", type=Path, help="JSON Lines files or folders (default: results/)")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_REPORT_DIR, help=f"output folder (default: {DEFAULT_REPORT_DIR})"
    )

    # The GPU window (issue 18): bench.window, bench.window_plan (--plan), bench.window_cli; gpu/run.sh.
    from bench.window import DEADLINE_S, DEFAULT_GPU, GPUS, OPTIONAL_PHASES

    p = sub.add_parser("gpu", help="measure the zoo on one GPU within a deadline (a prepared GPU window)")
    p.add_argument("--out", type=Path, help="folder to write (empty; at most 8 files come out of it)")
    p.add_argument("--plan", action="store_true", help="print the cells, estimates and schedule; run nothing")
    p.add_argument(
        "--deadline",
        type=positive_float,
        default=DEADLINE_S,
        help=f"seconds for the window (default: {DEADLINE_S:g})",
    )
    p.add_argument("--models", type=_csv, help="comma-separated zoo models (default: the whole zoo)")
    p.add_argument("--phases", help=f"comma-separated: {','.join(OPTIONAL_PHASES)} (default: all)")
    p.add_argument(
        "--gpu",
        default=DEFAULT_GPU,
        help=f"GPU whose peaks --plan uses: {', '.join(GPUS)} (default: {DEFAULT_GPU})",
    )
    p.add_argument(
        "--skip-measured",
        type=Path,
        nargs="+",
        help="results files or folders: leave out the cells with an ok record of this GPU there",
    )

    from bench.eval.commands import add_parsers as add_eval_parsers

    add_eval_parsers(sub)  # eval, train
    return parser


def cmd_list(args) -> int:
    import zoo

    try:
        zoo.load_entry_points()
        names = zoo.list_models(args.group)
    except zoo.PluginError as exc:
        raise UsageError(f"cannot import plugin: {exc}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for name in names:
        card = zoo.get_card(name)
        h, w = card.input_hw
        print(
            f"{name:<24} {card.group:<9} {h}x{w:<10} {card.paper.title} "
            f"({card.paper.venue} {card.paper.year})"
        )
    return 0


def cmd_run(args) -> int:
    import time

    import torch

    from bench import env as provenance
    from bench import spec
    from bench.conditions import AXES, parse_axis_values, parse_resolutions
    from bench.options import check_threads
    from bench.run import calibrate, run_sweep, terminate_as_interrupt
    from bench.store import Layout, check_writable, exclusive, read_records
    from bench.structure import StructureStore
    from bench.worker import import_plugins

    try:
        import_plugins(tuple(args.plugins))
    except ImportError as exc:
        raise UsageError(f"cannot import plugin: {exc}") from None
    device = spec.check_device(args.device)
    resolutions = parse_resolutions(args.resolutions) if args.resolutions else None
    profile = spec.PROFILES[args.profile]
    axes = {  # the axes the command line names override the profile's
        axis.name: parse_axis_values(axis.name, getattr(args, axis.name))
        for axis in AXES
        if axis.name != "device" and getattr(args, axis.name) is not None
    }
    shard = spec.parse_shard(args.shard) if args.shard else None
    cells = spec.shard_cells(spec.build_cells(profile, args.models, resolutions, device, axes), shard)
    if args.launcher is not None or args.shards is not None:  # the shards as jobs on other machines
        from bench.launch import launch

        return launch(args, cells, profile, DEFAULT_RESULTS_DIR)
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to torch on this machine")
    if args.threads is not None:  # the sweep runs here (the launcher's shards may run on bigger machines)
        try:
            check_threads(args.threads)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"argument --threads: {exc}") from None

    env = provenance.collect_env(device)
    layout = Layout(args.results)
    out = args.out or layout.sweep(env["machine"], profile.name, device, shard)
    resume = args.resume or args.retry_failed
    if out.exists() and not resume:
        raise UsageError(f"{out} exists: pass --resume to continue it, or choose another --out")
    if resume and out.exists():
        read_records(out)  # an unreadable file is bad input, found before any measuring
    check_writable(out.parent)  # before calibration and the first cell, not after them
    check_writable(layout.structure("x").parent)

    threads = args.threads or (provenance.available_cpus() if device == "cpu" else None)
    with exclusive(out), terminate_as_interrupt():
        started = time.monotonic()
        print(f"segbench: {len(cells)} cells ({profile.name} profile) -> {out}", file=sys.stderr)
        precisions = tuple(dict.fromkeys(cell.execution.precision for cell in cells))
        env["calibration"] = calibrate(device, precisions, threads, profile.timeout_s)
        summary = run_sweep(
            cells,
            out,
            env,
            profile.timing,
            args.timeout if args.timeout is not None else profile.timeout_s,
            threads,
            resume=resume,
            plugins=tuple(args.plugins),
            progress=not args.no_progress,
            shard=args.shard and "{}/{}".format(*shard),
            rounds=profile.rounds,
            structures=StructureStore(layout),
            retry_failed=args.retry_failed,
            started=started,
            about={"profile": profile.name, "device": device, "cells": len(cells)},
        )
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()) if n)
    print(f"segbench: {summary.line()}", file=sys.stderr)
    print(f"segbench: {counts or 'nothing to do'}; results in {out}", file=sys.stderr)
    print(out)
    return 0


def cmd_merge(args) -> int:
    from bench.store import merge_results, results_files

    files, _ = results_files(args.inputs)
    count = merge_results(files, args.out)
    print(f"segbench: {count} records -> {args.out}", file=sys.stderr)
    print(args.out)
    return 0


def cmd_export(args) -> int:
    from bench.frame import check_format, export, load_results

    fmt = args.format or ("parquet" if args.out.suffix == ".parquet" else "csv")
    check_format(fmt)  # before reading anything
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; expected a file")
    frame = load_results(args.results, samples=args.samples, latest=args.latest)
    try:
        export(frame, args.out, fmt)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"segbench: {len(frame)} records, {len(frame.columns)} columns -> {args.out}", file=sys.stderr)
    print(args.out)
    return 0


def cmd_structure(args) -> int:
    import zoo
    from bench.conditions import parse_resolutions
    from bench.spec import check_models
    from bench.store import Layout, check_writable
    from bench.structure import StructureStore

    names = check_models(args.models) if args.models else zoo.list_models()
    resolutions = parse_resolutions(args.resolutions) if args.resolutions else None
    layout = Layout(args.results)
    check_writable(layout.structure("x").parent)
    store = StructureStore(layout)
    counted = found = failed = 0
    for name in names:
        sizes = list(resolutions or [zoo.default_input_hw(name)])
        card = zoo.find_card(name)
        if args.claims and card:
            sizes += [
                r.input_hw for r in card.reported if r.metric in ("params", "macs", "flops") and r.input_hw
            ]
        for hw in dict.fromkeys(tuple(s) for s in sizes):
            record, new = store.ensure(name, hw, args.batch)
            counted, found = counted + new, found + (not new)
            failed += not record.ok
            if not record.ok:
                print(f"segbench: {record.label()}: {record.error}", file=sys.stderr)
    print(
        f"segbench: {counted} counted, {found} already known, {failed} failed -> {layout.root / 'structure'}",
        file=sys.stderr,
    )
    return 0


def cmd_cards(args) -> int:
    from bench import cards
    from bench.store import write_atomic
    from bench.worker import import_plugins

    try:
        import_plugins(tuple(args.plugins))
    except ImportError as exc:
        raise UsageError(f"cannot import plugin: {exc}") from None
    out = args.out or cards.CARDS_PATH
    document = cards.export()
    write_atomic(out, cards.text(document))
    print(f"segbench: {len(document['cards'])} cards -> {out}", file=sys.stderr)
    print(out)
    return 0


def cmd_report(args) -> int:
    from reports.render import render_report

    inputs = args.results or [DEFAULT_RESULTS_DIR]
    index = render_report(inputs, args.out)
    print(index)
    return 0


def cmd_compare(args) -> int:
    from bench import intervals
    from bench.compare import compare_paths, format_markdown, format_table
    from bench.store import write_atomic

    normalize = True if args.normalize else None
    comparison = compare_paths(
        args.base,
        args.new,
        threshold=args.latency_threshold,
        miou_tol=args.miou_tol,
        normalize=normalize,
        calibrations=intervals.load(args.calibrations),
    )
    print(format_table(comparison, args.latency_report_only))
    if args.markdown:
        write_atomic(args.markdown, format_markdown(comparison, args.latency_report_only))
    return comparison.exit_code(args.latency_report_only)


def cmd_calibrate_intervals(args) -> int:
    from bench import intervals
    from bench.store import Layout, read_records, write_json

    if len(args.runs) < 2:
        raise UsageError("calibrate-intervals needs two or more results files")
    for path in args.runs:
        if not path.is_file():
            raise UsageError(f"results file {path} does not exist")
    runs = {path.as_posix(): read_records(path) for path in args.runs}
    calibration = intervals.fit(runs, args.confidence)
    out = Layout(args.results).selfcheck(calibration.machine, f"interval-calibration-{calibration.device}")
    write_json(out, calibration.to_dict())
    print(
        f"{calibration.describe()}: {calibration.inside_recorded:.0%} of {calibration.pairs} pairs inside "
        f"the recorded {calibration.confidence:.0%} intervals, at least {calibration.confidence:.0%} inside "
        "the calibrated ones (fitted on these pairs)"
    )
    print(out)
    return 0


def cmd_baseline(args) -> int:
    from bench import baseline
    from bench.store import write_json

    default = baseline.default_structure_path() if args.update else baseline.find_structure_baseline()
    path = args.file or default
    if path is None:
        raise UsageError(f"no structural baseline under {baseline.BASELINES_DIR}: create one with --update")
    committed = None if args.update else baseline.read_structure(path)  # bad input before the work
    current = baseline.compute_structure(progress=lambda name: print(f"  {name}", file=sys.stderr))
    if args.update:
        write_json(path, current)
        print(path)
        return 0
    changes = baseline.diff_structure(committed, current)
    for line in changes:
        print(line)
    print(f"segbench: {len(changes)} structural changes against {path}", file=sys.stderr)
    return 1 if changes else 0


def cmd_gpu(args) -> int:
    from bench.window_cli import command

    return command(args)


def cmd_eval(args) -> int:
    from bench.eval.commands import cmd_eval as run_eval

    return run_eval(args)


def cmd_train(args) -> int:
    from bench.eval.commands import cmd_train as run_train

    return run_train(args)


def _one_line(message) -> str:
    """An error message on one line, whatever it quotes (a file name or a plugin's message with newlines)."""
    return " ".join(str(message).splitlines())


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {
            "list": cmd_list,
            "run": cmd_run,
            "merge": cmd_merge,
            "export": cmd_export,
            "report": cmd_report,
            "cards": cmd_cards,
            "structure": cmd_structure,
            "compare": cmd_compare,
            "calibrate-intervals": cmd_calibrate_intervals,
            "baseline": cmd_baseline,
            "gpu": cmd_gpu,
            "eval": cmd_eval,
            "train": cmd_train,
        }[args.command](args)
    except UsageError as exc:
        print(f"segbench: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or a read-only folder met while writing: what was written stays
        where = f": {exc.filename}" if exc.filename else ""
        print(f"segbench: error: {_one_line(exc.strerror or exc)}{_one_line(where)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP during a run (bench.run.Interrupted)
        print(
            "segbench: interrupted; completed cells are saved (rerun with --resume to continue)",
            file=sys.stderr,
        )
        return 128 + getattr(exc, "signum", 2)
