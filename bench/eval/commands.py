"""The `eval` and `train` subcommands of `segbench` (parsers and handlers; bench/cli.py only hooks them in).

`segbench eval --suite default` evaluates what the default run reports: the models trained here on CamVid
test, and the authors' SINet weights on humanseg_mini. It skips (exit 0, one line) when the shared data
folder is absent, and skips any one entry whose checkpoint is missing.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from bench.errors import UsageError
from bench.options import cpu_threads, hw, non_negative_int, positive_float, positive_floats, positive_int

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_ROOT = Path("results")
TRAINED_DIR = REPO_ROOT / "results" / "trained"
SHARED = REPO_ROOT.parent / "shared"

# (model, dataset, data folder under the shared data dir, split, checkpoint, weights source); checkpoint None:
# the authors' file under the shared weights folder (AUTHORS_WEIGHTS).
DEFAULT_SUITE = (
    ("enet", "camvid", "camvid", "test", TRAINED_DIR / "enet_camvid.pt", "trained here"),
    ("cgnet", "camvid", "camvid", "test", TRAINED_DIR / "cgnet_camvid.pt", "trained here"),
    ("fastscnn", "camvid", "camvid", "test", TRAINED_DIR / "fastscnn_camvid.pt", "trained here"),
    ("sinet", "portrait", "humanseg_mini", "all", None, "authors"),
)

AUTHORS_WEIGHTS = {"sinet": Path("weights/sinet_eg1800/SINet.pth")}


def add_parsers(sub) -> None:
    p = sub.add_parser("eval", help="accuracy of a model on a dataset split; one eval record")
    p.add_argument("--model", help="zoo model id")
    p.add_argument("--dataset", help="camvid, cityscapes, ade20k, voc2012 or portrait")
    p.add_argument("--data-root", type=Path, help="the dataset's folder")
    p.add_argument(
        "--split", default=None, help="split (default: test for camvid, val otherwise, all for portrait)"
    )
    p.add_argument(
        "--checkpoint", type=Path, help="local checkpoint (.pth/.pt/.safetensors; default: random init)"
    )
    p.add_argument("--weights-source", help="trained here, authors or random init (default: inferred)")
    p.add_argument("--protocol", default="whole", choices=("whole", "slide", "msflip"))
    p.add_argument("--crop", type=hw, help="slide window HxW")
    p.add_argument("--stride", type=hw, help="slide stride HxW (default: 2/3 of the crop)")
    p.add_argument(
        "--scales", type=positive_floats, help="msflip scales, comma-separated (default 0.5..1.75)"
    )
    p.add_argument("--no-flip", action="store_true", help="msflip without the mirrored pass")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=cpu_threads, help="CPU threads for torch (at most this machine's)")
    p.add_argument("--limit", type=positive_int, help="evaluate only the first N images (a quick check)")
    p.add_argument(
        "--out", type=Path, help="results file (default: results/eval/<machine>/<time>-eval.jsonl)"
    )
    p.add_argument(
        "--suite", choices=("default",), help="the default run's evaluations (needs ../shared/data)"
    )
    p.add_argument(
        "--shared", type=Path, default=SHARED, help=f"shared data/weights folder (default: {SHARED})"
    )

    p = sub.add_parser("train", help="train a zoo model with its recipe; resumable checkpoint + sidecar")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--split", default="train", help="e.g. trainval for CamVid train+val (default: train)")
    p.add_argument("--out", type=Path, required=True, help="final checkpoint path (<out>.json sidecar)")
    p.add_argument("--iterations", type=positive_int, help="iteration budget (default: the recipe's)")
    p.add_argument("--batch-size", type=positive_int, help="per process (default: the recipe's)")
    p.add_argument("--crop", type=hw, help="training crop HxW (default: the recipe's)")
    p.add_argument("--lr", type=positive_float, help="base learning rate (default: the recipe's)")
    p.add_argument(
        "--time-limit", type=positive_float, help="wall-clock seconds; stops resumably when reached"
    )
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=cpu_threads, help="CPU threads for torch (at most this machine's)")
    p.add_argument(
        "--save-every", type=positive_int, default=50, help="iterations between resume checkpoints"
    )


def _default_split(dataset: str) -> str:
    return {"camvid": "test", "portrait": "all"}.get(dataset, "val")


def _out_path(args, tag: str) -> Path:
    from bench.env import machine_slug
    from bench.store import Layout

    return args.out or Layout(RESULTS_ROOT).evals(machine_slug(args.device), tag)


def _summary(record) -> str:
    cost = record.get("cost", {})
    return f"{record.label()} [{record.weights_source}]: " + (
        f"mIoU {record.miou:.2f}% aAcc {record.get('acc'):.2f}% ({record.get('n_images')} images, "
        f"{cost.get('latency_ms_per_image')} ms/image, MACs x{cost.get('macs_multiplier')})"
        if record.ok and record.miou is not None
        else f"{record.status}: {record.error}"
    )


def _check_device(text: str) -> None:
    """UsageError (one line) unless `text` is cpu, cuda or cuda:N and torch can use it here."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise UsageError(f"unknown device {text!r}: expected cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available to torch on this machine")


def cmd_eval(args) -> int:
    import os

    import torch

    from bench.eval.evaluate import evaluate
    from bench.eval.protocols import make_protocol
    from bench.store import append_record, check_writable, exclusive, read_records

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    _check_device(args.device)
    protocol = make_protocol(args.protocol, args.crop, args.stride, args.scales, flip=not args.no_flip)
    rank = int(os.environ.get("RANK", 0))
    if args.suite:
        jobs = []
        data = args.shared / "data"
        if not data.is_dir():
            print(f"segbench: eval suite skipped: no shared data folder at {data}", file=sys.stderr)
            return 0
        for model, dataset, folder, split, ckpt, source in DEFAULT_SUITE:
            ckpt = ckpt or args.shared / AUTHORS_WEIGHTS[model]
            absent = [
                str(p)
                for p, there in ((data / folder, (data / folder).is_dir()), (ckpt, ckpt.is_file()))
                if not there
            ]
            if absent:
                print(
                    f"segbench: skipped {model} on {dataset}: {' and '.join(absent)} absent", file=sys.stderr
                )
                continue
            jobs.append((model, dataset, data / folder, split, ckpt, source))
        out = _out_path(args, "default")
    else:
        missing = [
            f"--{n.replace('_', '-')}" for n in ("model", "dataset", "data_root") if not getattr(args, n)
        ]
        if missing:
            raise UsageError(f"eval needs {', '.join(missing)} (or --suite default)")
        jobs = [
            (
                args.model,
                args.dataset,
                args.data_root,
                args.split or _default_split(args.dataset),
                args.checkpoint,
                args.weights_source,
            )
        ]
        out = _out_path(args, f"{args.model}-{args.dataset}")
    if rank == 0 and jobs:  # an unwritable or unreadable --out, or one a run is writing: before evaluating
        check_writable(out.parent)
        if out.exists():
            with exclusive(out):
                read_records(out)
    failed = 0
    for model, dataset, root, split, ckpt, source in jobs:
        record = evaluate(model, dataset, Path(root), split, protocol, ckpt, source, args.device, args.limit)
        if rank == 0:
            with exclusive(out):
                append_record(out, record)
            print(f"segbench: {_summary(record)}", file=sys.stderr)
        failed += not record.ok
    if rank == 0 and jobs:
        print(out)
    return 1 if failed else 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_train(args) -> int:
    import torch

    from bench.eval.train import TrainConfig, train
    from zoo.registry import get_recipe

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    _check_device(args.device)
    recipe = get_recipe(args.model)
    changes = {
        k: v
        for k, v in (
            ("iterations", args.iterations),
            ("batch_size", args.batch_size),
            ("crop_hw", args.crop),
            ("lr", args.lr),
        )
        if v is not None
    }
    recipe = recipe.replace(**changes)
    config = TrainConfig(
        args.model,
        args.dataset,
        args.data_root,
        args.split,
        args.out,
        recipe,
        seed=args.seed,
        device=args.device,
        time_limit_s=args.time_limit,
        save_every=args.save_every,
    )
    # SIGTERM (a scheduler, a killed job) ends the run like Ctrl-C: the resume state is saved first.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        sidecar = train(config)
    except KeyboardInterrupt:
        print(
            f"segbench: training interrupted; the same command resumes from {args.out}.resume.pt",
            file=sys.stderr,
        )
        return 130
    print(
        f"segbench: {args.model} trained {sidecar['iterations_done']}/{sidecar['iterations_planned']} "
        f"iterations ({sidecar['stop_reason']}, {sidecar['elapsed_s']} s) -> {args.out}",
        file=sys.stderr,
    )
    print(args.out)
    return 0
