"""`segbench` command line: list, run, report. Thin: parsing and messages only.

Bad input exits with status 2 and one line on stderr, before anything is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
    from bench.spec import PROFILES

    parser = _Parser(prog="segbench", description="Benchmark segmentation models: cost, speed and accuracy.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("--group", help="backbone, portrait, realtime or semantic")

    p = sub.add_parser("run", help="measure models; one JSON Lines record per cell")
    p.add_argument(
        "--profile", default="quick", choices=sorted(PROFILES), help="embedded sweep (default: quick)"
    )
    p.add_argument("--models", type=_csv, help="comma-separated model ids (default: all)")
    p.add_argument(
        "--resolutions", help="comma-separated HxW, e.g. 360x480,512x1024 (default: the profile's)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--precision", default="fp32", type=_csv, help="fp32, fp16 and/or bf16, comma-separated")
    p.add_argument("--batch", type=int, default=1, help="batch size (default: 1)")
    p.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: every CPU this process may use)"
    )
    p.add_argument("--timeout", type=float, help="seconds per cell (default: the profile's)")
    p.add_argument(
        "--out", type=Path, help="results file (default: results/<machine>/<time>-<profile>-<device>.jsonl)"
    )
    p.add_argument("--resume", action="store_true", help="skip cells already recorded in --out")
    p.add_argument("--plugins", type=_csv, default=[], help="modules to import that register extra models")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("report", help="render the HTML leaderboard from results files")
    p.add_argument("results", nargs="*", type=Path, help="JSON Lines files or folders (default: results/)")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_REPORT_DIR, help=f"output folder (default: {DEFAULT_REPORT_DIR})"
    )
    return parser


def cmd_list(args) -> int:
    import zoo

    try:
        names = zoo.list_models(args.group)
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
    import torch

    from bench import env as provenance
    from bench import spec
    from bench.run import run_sweep
    from bench.worker import import_plugins

    try:
        import_plugins(tuple(args.plugins))
    except ImportError as exc:
        raise UsageError(f"cannot import plugin: {exc}") from None
    device = spec.check_device(args.device)
    precisions = tuple(spec.check_precision(p) for p in args.precision)
    resolutions = spec.parse_resolutions(args.resolutions) if args.resolutions else None
    if args.batch < 1:
        raise UsageError(f"batch must be at least 1, got {args.batch}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"threads must be at least 1, got {args.threads}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to torch on this machine")
    profile = spec.PROFILES[args.profile]
    cells = spec.build_cells(profile, args.models, resolutions, device, precisions, args.batch)

    env = provenance.collect_env(device)
    out = args.out or DEFAULT_RESULTS_DIR / env["machine"] / (
        f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{profile.name}-{device}.jsonl"
    )
    if out.exists() and not args.resume:
        raise UsageError(f"{out} exists: pass --resume to continue it, or choose another --out")
    if args.resume and out.exists():
        from bench.store import read_records

        read_records(out)  # an unreadable file is bad input, found before any measuring

    threads = args.threads or (provenance.available_cpus() if device == "cpu" else None)
    print(f"segbench: {len(cells)} cells ({profile.name} profile) -> {out}", file=sys.stderr)
    counts = run_sweep(
        cells,
        out,
        env,
        profile.timing,
        args.timeout or profile.timeout_s,
        threads,
        resume=args.resume,
        plugins=tuple(args.plugins),
        progress=not args.no_progress,
    )
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()) if n)
    print(f"segbench: {summary or 'nothing to do'}; results in {out}", file=sys.stderr)
    print(out)
    return 0


def cmd_report(args) -> int:
    from reports.render import render_report

    inputs = args.results or [DEFAULT_RESULTS_DIR]
    index = render_report(inputs, args.out)
    print(index)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {"list": cmd_list, "run": cmd_run, "report": cmd_report}[args.command](args)
    except UsageError as exc:
        print(f"segbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "segbench: interrupted; completed cells are saved (rerun with --resume to continue)",
            file=sys.stderr,
        )
        return 130
