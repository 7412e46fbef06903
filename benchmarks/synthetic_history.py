"""A synthetic but realistic results history, to measure how the report scales with records.

    python benchmarks/synthetic_history.py OUT [--models 60] [--sizes 4] [--machines 3] [--commits 50]

writes one sweep file per machine and commit (OUT/<machine>/<time>-quick-<device>.jsonl) and, every tenth
commit, an evaluation file (OUT/eval/<machine>/<time>-eval-default.jsonl): by default 60 models x 4 input
sizes x 3 machines x 50 commits = 36,000 bench records and 300 eval records, 156 MB.
The data is made up (it never goes under results/), but shaped like the committed quick sweeps:

- the models are the zoo's (params and MACs from results/baselines/structure.json, MACs scaled with the
  input's pixels) plus two library models; every record's fields, conditions and environment are copied
  from a committed record of the same group, so a record is as large and as nested as a real one;
- each model's speed on the CPU is its committed GMAC/s (the newest committed record), another CPU is a
  little slower, a GPU machine (fp16) much faster with a per-call floor;
- latency samples are drawn per cell (lognormal spread, more on the shared CPUs, and a per-run machine
  load factor), summarised by bench.measure.stats like a real sweep, stopping at the 1% interval target,
  the time budget or the sample cap; the record keeps its samples;
- events a history should show: a library model's params and MACs grow 30% at commit 30 (a structural
  change), bisenetv2 becomes 25% slower at commit 40 (a regression `segbench compare` flags) and fastscnn
  20% faster at commit 20; the largest semantic models run out of memory at the largest input on the GPU;
  a few cells time out.

Every record is checked with bench.records.from_dict before it is written. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import math
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.measure.stats import summarize  # noqa: E402
from bench.records import from_dict  # noqa: E402
from bench.store import read_records, safe_name, write_atomic  # noqa: E402

RESULTS = REPO / "results"
SIZES = {  # four input sizes per group, smallest first (the quick profile's and the paper's sizes among them)
    "realtime": [(256, 512), (360, 480), (512, 1024), (768, 1536)],
    "semantic": [(256, 512), (360, 480), (512, 1024), (768, 1536)],
    "external": [(256, 512), (360, 480), (512, 1024), (768, 1536)],
    "portrait": [(224, 224), (256, 256), (384, 384), (512, 512)],
    "backbone": [(224, 224), (256, 256), (384, 384), (512, 512)],
}
# Library models (group "external"): params, MACs at 64x96 (as structure.json gives them), like smp's and
# transformers' models of that name.
LIBRARY = {"smp:Unet:resnet34": (24_436_659, 720_000_000), "hf:segformer-b0": (3_715_027, 196_000_000)}
MACHINES = [  # name, device, precision, speed relative to the committed CPU, sample spread, load spread
    ("cpu-amd-epyc-2c", "cpu", "fp32", 1.0, 0.06, 0.05),
    ("cpu-intel-xeon-2c", "cpu", "fp32", 0.8, 0.08, 0.06),
    ("gpu-nvidia-h100", "cuda", "fp16", 45.0, 0.02, 0.01),
]
STRUCTURAL = ("hf:segformer-b0", 30, 1.3)  # model, commit, factor on params and MACs
SPEED = {"bisenetv2": (40, 1.25), "fastscnn": (20, 0.8)}  # model: (from commit, factor on latency)
GPU_FLOOR_MS = 0.8  # launch overhead of a batch-1 forward
BUDGET_MS, MAX_SAMPLES, MIN_SAMPLES = 3000.0, 1000, 5


def templates() -> tuple[dict, dict, dict]:
    """(newest committed ok bench record per group, per-model GMAC/s on the CPU, newest eval record)."""
    records = [r for path in sorted(RESULTS.glob("*/*Z-*-*.jsonl")) for r in read_records(path)]
    newest = {}
    speed = {}
    for r in sorted((r for r in records if r.kind == "bench" and r.ok), key=lambda r: r.timestamp):
        newest[r.group] = r.to_dict()
        if r.machine == "cpu-amd-epyc-2c" and r.macs and r.latency:
            speed[r.model] = r.macs / r.latency.median / 1e6
    newest.setdefault("external", newest["realtime"])
    evals = [r for path in sorted(RESULTS.glob("eval/*/*Z-eval-*.jsonl")) for r in read_records(path)]
    return newest, speed, max((r for r in evals if r.ok), key=lambda r: r.timestamp).to_dict()


def zoo_models(count: int) -> list[tuple[str, str, int, int]]:
    """(name, group, params, MACs at 64x96) of `count` models: the zoo's, then the library models."""
    structure = json.loads((RESULTS / "baselines" / "structure.json").read_text())["models"]
    cards = json.loads((REPO / "reports" / "cards.json").read_text())["cards"]
    models = [(n, cards[n]["group"], m["params"], m["macs"]) for n, m in sorted(structure.items())]
    models += [(n, "external", p, m) for n, (p, m) in LIBRARY.items()]
    if count > len(models):
        raise SystemExit(f"at most {len(models)} models")
    # Keep the library models (the structural change happens to one) and bisenetv2 (the reference).
    keep = [m for m in models if m[0] in ("bisenetv2", "fastscnn") or m[1] == "external"]
    rest = [m for m in models if m not in keep]
    return sorted((keep + rest)[:count])


def commit_hash(seed: int, index: int) -> str:
    return hashlib.sha1(f"synthetic-{seed}-{index}".encode()).hexdigest()


def samples_for(rng: random.Random, median: float, spread: float) -> list[float]:
    """Samples as a sweep would take them: until the median's interval is within 1%, the time budget or
    the sample cap (checked every 5 samples, as the timing policy does)."""
    samples: list[float] = []
    while True:
        samples += [
            median * math.exp(rng.gauss(0, spread)) * (1 + 0.3 * (rng.random() < 0.03)) for _ in range(5)
        ]
        if len(samples) >= MAX_SAMPLES or sum(samples) >= BUDGET_MS:
            return samples
        if len(samples) >= MIN_SAMPLES and summarize(samples)["target_met"]:
            return samples


def bench_record(template, name, group, hw, machine, env, rng, params, macs, base_speed, commit_index):
    label, device, precision, relative, spread, _ = machine
    record = copy.deepcopy(template)
    pixels = hw[0] * hw[1] / (64 * 96)
    macs_here = int(macs * pixels)
    record.update(model=name, group=group, input_hw=list(hw), device=device, precision=precision, env=env)
    if device == "cuda" and group == "semantic" and hw == SIZES[group][-1] and params > 60e6:
        record.update(status="oom", error="CUDA out of memory. Tried to allocate 2.00 GiB", **_empty())
        return record
    if rng.random() < 0.003:
        record.update(status="timeout", error="cell exceeded --timeout 300 s", **_empty())
        return record
    factor = SPEED.get(name, (10**9, 1.0))
    slower = factor[1] if commit_index >= factor[0] else 1.0
    load = env["_load"] * math.exp(rng.gauss(0, machine[5] / 2))  # the neighbours during this cell
    record["calibration"] = _calibration(record.get("calibration"), load, rng, device)
    ms = macs_here / (base_speed * relative * 1e6) * slower * load
    if device == "cuda":
        ms = GPU_FLOOR_MS + ms
    samples = samples_for(rng, ms, spread)
    latency = summarize(samples)
    latency["stop_reason"] = (
        "ci_target"
        if latency["target_met"]
        else "max_samples"
        if len(samples) >= MAX_SAMPLES
        else "time_budget"
    )
    record.update(
        status="ok", error=None, params=int(params), params_total=int(params * 1.04), macs=macs_here,
        macs_flop_counter=int(macs_here * 0.97), latency_ms=latency,
        latency_samples_ms=[round(s, 6) for s in samples], fps=1000 / latency["median"],
        peak_mem_mb=round(30 + params / 1e6 * 4 + macs_here / 1e9 * 2.5, 1),
        output_shape=[1, 19 if group != "portrait" else 2, *hw],
    )  # fmt: skip
    return record


def _calibration(template: dict | None, load: float, rng: random.Random, device: str) -> dict | None:
    """The calibration workload timed beside a cell: slowed by the cell's load, plus its own noise."""
    if not template:
        return None
    factor = load * math.exp(rng.gauss(0, 0.01))
    low, high = template["ci95"]
    return {
        **template,
        "device": device,
        "median_ms": template["median_ms"] * factor,
        "ci95": [low * factor, high * factor],
    }


def _empty() -> dict:
    return dict(
        params=None, params_total=None, macs=None, macs_flop_counter=None, latency_ms=None,
        latency_samples_ms=None, fps=None, peak_mem_mb=None, output_shape=None, roofline=None, agreement=None,
    )  # fmt: skip


def generate(out: Path, n_models: int, n_sizes: int, n_machines: int, n_commits: int, seed: int) -> int:
    rng = random.Random(seed)
    template, speed, eval_template = templates()
    models = zoo_models(n_models)
    group_speed = {}
    for name, group, _, _ in models:
        if name in speed:
            group_speed.setdefault(group, []).append(speed[name])
    start = dt.datetime(2026, 9, 1, 2, 0, tzinfo=dt.timezone.utc)
    written = 0
    for index in range(n_commits):
        commit = commit_hash(seed, index)
        for m, machine in enumerate(MACHINES[:n_machines]):
            label, device = machine[0], machine[1]
            when = start + dt.timedelta(days=index, hours=3 * m)
            env = copy.deepcopy(template["realtime"]["env"])
            gpu = {"name": "NVIDIA H100 80GB HBM3", "driver": "580.65", "memory_mb": 81559}
            env.update(
                machine=label, timestamp=when.isoformat(timespec="seconds"), git_commit=commit,
                git_dirty=rng.random() < 0.05, gpu=gpu if device == "cuda" else None,
                cpu="Intel Xeon" if label == "cpu-intel-xeon-2c" else env["cpu"],
            )  # fmt: skip
            lines = []
            env["_load"] = math.exp(rng.gauss(0, machine[5]))
            calibration = env.get("calibration") or {}
            if calibration.get("workload"):
                calibration["workload"] = _calibration(calibration["workload"], env["_load"], rng, device)
            for name, group, params, macs in models:
                if name == STRUCTURAL[0] and index >= STRUCTURAL[1]:
                    params, macs = params * STRUCTURAL[2], macs * STRUCTURAL[2]
                base = speed.get(name) or _median(group_speed.get(group) or [50.0])
                base *= math.exp(
                    (int(hashlib.sha1(f"{name}{label}".encode()).hexdigest()[:6], 16) / 2**24 - 0.5) * 0.3
                )
                for hw in SIZES[group][:n_sizes]:
                    record = bench_record(
                        template[group], name, group, hw, machine, env, rng, params, macs, base, index
                    )
                    lines.append(_checked(record))
            stamp = f"{when:%Y%m%dT%H%M%SZ}"
            write_atomic(out / safe_name(label) / f"{stamp}-quick-{device}.jsonl", "".join(lines))
            written += len(lines)
            if index % 10 == 9 and device == "cpu":
                lines = [_checked(_eval(eval_template, name, env, rng)) for name, *_ in models[::2]]
                path = out / "eval" / safe_name(label) / f"{stamp}-eval-default.jsonl"
                write_atomic(path, "".join(lines))
                written += len(lines)
    return written


def _eval(template: dict, name: str, env: dict, rng: random.Random) -> dict:
    record = copy.deepcopy(template)
    base = 55 + int(hashlib.sha1(name.encode()).hexdigest()[:4], 16) / 65536 * 25
    record.update(
        model=name, dataset="cityscapes", split="val", env=env, miou=round(base + rng.gauss(0, 0.1), 4)
    )
    record["weights"] = {"source": "authors", "path": f"weights/{name}.pth"}
    return record


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _checked(record: dict) -> str:
    env = {k: v for k, v in record["env"].items() if not k.startswith("_")}
    return from_dict({**record, "env": env}).to_json() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write (made if missing)")
    parser.add_argument("--models", type=int, default=60)
    parser.add_argument("--sizes", type=int, default=4)
    parser.add_argument("--machines", type=int, default=3, choices=range(1, len(MACHINES) + 1))
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if any(v < 1 for v in (args.models, args.sizes, args.commits)) or args.sizes > 4:
        parser.error("--models and --commits must be positive, --sizes 1 to 4")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    n = generate(args.out, args.models, args.sizes, args.machines, args.commits, args.seed)
    print(f"{n} records -> {args.out}", file=sys.stderr)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
