"""Tables of measured numbers beside the papers' claims, and the Pareto frontier.

Every function here is pure: records (as `reports.load` returns them) in, a pandas DataFrame out. The
DataFrames are what the page shows and what the CSV exports hold, so a number on the page and in its CSV
come from one place.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import pandas as pd

import zoo
from bench.records import CELL_AXES, cell_key, record_kind
from bench.spec import REFERENCE_MODEL


def bench_records(records: list[dict]) -> list[dict]:
    return [r for r in records if record_kind(r) == "bench"]


def eval_records(records: list[dict]) -> list[dict]:
    return [r for r in records if record_kind(r) == "eval"]


def latest_per_cell(records: list[dict]) -> list[dict]:
    """The newest record of each cell on each machine (older ones are history)."""
    latest: dict[tuple, dict] = {}
    for record in records:
        key = (record["env"].get("machine"), *cell_key(record))
        if key not in latest or record["env"].get("timestamp", "") >= latest[key]["env"].get("timestamp", ""):
            latest[key] = record
    return list(latest.values())


def card_or_none(name: str):
    return zoo.find_card(name)  # None: a library's model, or one this checkout does not register


def paper_values(name: str, metric: str) -> tuple:
    card = card_or_none(name)
    return card.reported_values(metric) if card else ()


def _paper(name: str, metric: str):
    found = paper_values(name, metric)
    return found[0] if found else None


def hw_text(hw) -> str:
    return "{}x{}".format(*hw) if hw else ""


def paper_conditions(reported) -> str:
    """The conditions a paper number was stated under (input, dataset, device, convention...), in one line."""
    parts = (
        hw_text(reported.input_hw),
        reported.dataset,
        reported.split,
        reported.protocol,
        reported.device,
        reported.backend,
        reported.precision,
        reported.convention,
    )
    return "; ".join(p for p in parts if p)


def describe(reported) -> str:
    """A paper number's conditions and source, in one line."""
    if reported is None:
        return ""
    return "; ".join(p for p in (paper_conditions(reported), f"source: {reported.source}") if p)


def _dataset_key(name) -> str:
    key = "".join(ch for ch in str(name or "").lower() if ch.isalnum())
    return key.removeprefix("pascal")


def same_dataset(a, b) -> bool:
    """Whether two dataset names mean one dataset: the eval harness says "cityscapes", cards "Cityscapes"."""
    return bool(a) and bool(b) and _dataset_key(a) == _dataset_key(b)


@functools.cache
def _card_dataset_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for model in sorted(zoo.list_models()):
        for reported in zoo.get_card(model).reported:
            if reported.dataset:
                names.setdefault(_dataset_key(reported.dataset), reported.dataset)
    return names


def dataset_label(name) -> str:
    """A dataset's name as the cards spell it (so a measured "cityscapes" and a paper "Cityscapes" meet)."""
    return _card_dataset_names().get(_dataset_key(name), str(name or ""))


def weights_source(record: dict) -> str:
    """How an eval record's weights were obtained (the `weights` field may be a dict or a plain string)."""
    weights = record.get("weights")
    if isinstance(weights, dict):
        return str(weights.get("source") or weights.get("path") or "")
    return str(weights or "")


def measured_miou(records: list[dict]) -> dict[str, dict]:
    """Per model, the one successful evaluation shown on the leaderboard.

    Not the best one (that would cherry-pick): the newest evaluation on the dataset of the card's first mIoU
    claim if there is one, else the newest on any dataset, ties broken by name so the choice is stable.
    """
    chosen: dict[str, dict] = {}
    for r in sorted(
        (
            r
            for r in latest_per_cell(eval_records(records))
            if r["status"] == "ok" and r.get("miou") is not None
        ),
        key=lambda r: (r["env"].get("timestamp", ""), str(r["dataset"]), str(r["split"]), weights_source(r)),
    ):
        claim = _paper(r["model"], "miou")
        preferred = claim is not None and same_dataset(claim.dataset, r["dataset"])
        current = chosen.get(r["model"])
        if current is None or preferred or not current["_preferred"]:
            chosen[r["model"]] = {**r, "_preferred": preferred}
    return chosen


def conditions_text(r: dict) -> str:
    """The non-default condition axes of a bench record, e.g. 'onnxruntime, channels_last'."""
    parts = [str(r.get("backend") or "eager")]
    if r.get("channels_last"):
        parts.append("channels_last")
    if r.get("compile_mode"):
        parts.append(f"compile={r['compile_mode']}")
    if r.get("cudnn_benchmark"):
        parts.append("cudnn.benchmark")
    if r.get("tf32"):
        parts.append("tf32")
    return ", ".join(parts)


def _speed_key(r: dict) -> tuple:
    """What must match for two latencies to be comparable: machine and every cell axis except the model."""
    return (r["env"].get("machine"), tuple(r["input_hw"]), *(r.get(k, d) for k, d in CELL_AXES.items()))


def reference_latency(records: list[dict]) -> dict[tuple, float]:
    """Median latency of REFERENCE_MODEL per comparable condition (see `_speed_key`)."""
    return {
        _speed_key(r): r["latency_ms"]["median"]
        for r in latest_per_cell(bench_records(records))
        if r["model"] == REFERENCE_MODEL and r["status"] == "ok" and (r.get("latency_ms") or {}).get("median")
    }


def _num(value, scale: float = 1.0):
    return value / scale if value is not None else None


def leaderboard(records: list[dict]) -> pd.DataFrame:
    """One row per (machine, bench cell), newest record: measured numbers beside the card's paper numbers."""
    evals = measured_miou(records)
    refs = reference_latency(records)
    rows = []
    for r in latest_per_cell(bench_records(records)):
        lat = r.get("latency_ms") or {}
        paper_params, paper_miou = _paper(r["model"], "params"), _paper(r["model"], "miou")
        ev = evals.get(r["model"])
        ref = refs.get(_speed_key(r))
        macs = r.get("macs")
        rows.append(
            {
                "model": r["model"],
                "group": r["group"],
                "machine": r["env"].get("machine"),
                "hardware": r["env"].get("gpu") if r["device"] != "cpu" else r["env"].get("cpu"),
                "device": r["device"],
                "precision": r["precision"],
                "conditions": conditions_text(r),
                "input": hw_text(r["input_hw"]),
                "pixels": r["input_hw"][0] * r["input_hw"][1],
                "batch": r["batch"],
                "status": r["status"],
                "error": r["error"] or "",
                "params_m": _num(r.get("params"), 1e6),
                "paper_params_m": paper_params.value if paper_params else None,
                "paper_params_note": describe(paper_params),
                "gmacs": _num(macs, 1e9),
                "gflops": _num(macs, 0.5e9),
                "gmacs_flop_counter": _num(r.get("macs_flop_counter"), 1e9),
                "macs_disagree": r.get("macs_disagree"),
                "macs_unsupported": ", ".join(sorted(r.get("macs_unsupported_ops") or {})),
                "latency_p50_ms": lat.get("median"),
                "latency_p90_ms": lat.get("p90"),
                "latency_p99_ms": lat.get("p99"),
                "latency_n": lat.get("n"),
                "fps": r.get("fps"),
                "speed_vs_ref": ref / lat["median"] if ref and lat.get("median") else None,
                "peak_mem_mb": r.get("peak_mem_mb"),
                "peak_mem_method": r.get("peak_mem_method") or "",
                "miou": ev["miou"] if ev else None,
                "miou_dataset": " ".join(
                    x for x in (dataset_label(ev["dataset"]), str(ev["split"] or "")) if x
                )
                if ev
                else "",
                "miou_dataset_name": str(ev["dataset"]) if ev else "",
                "miou_weights": weights_source(ev) if ev else "",
                "paper_miou": paper_miou.value if paper_miou else None,
                "paper_miou_note": describe(paper_miou),
                "paper_miou_dataset": " ".join(x for x in (paper_miou.dataset, paper_miou.split) if x)
                if paper_miou
                else "",
                "paper_miou_dataset_name": (paper_miou.dataset or "") if paper_miou else "",
                "threads": (r.get("conditions") or {}).get("threads"),
                "commit": (r["env"].get("git_commit") or "")[:10]
                + ("+dirty" if r["env"].get("git_dirty") else ""),
                "timestamp": r["env"].get("timestamp", ""),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(
        ["group", "machine", "device", "precision", "conditions", "model", "pixels", "input", "batch"],
        kind="stable",
    ).reset_index(drop=True)


def pareto_mask(xs: Sequence[float], ys: Sequence[float]) -> list[bool]:
    """True where no other point is at least as good on both axes and better on one (lower is better)."""
    points = list(zip(xs, ys, strict=True))
    return [not any(ox <= x and oy <= y and (ox < x or oy < y) for ox, oy in points) for x, y in points]


def miou_points(board: pd.DataFrame) -> pd.DataFrame:
    """Per (machine, device, precision, conditions, model): one (latency, mIoU) point for the Pareto plot.

    mIoU is the measured one where it exists, else the paper's (`miou_kind` says which), on the dataset in
    `plot_dataset` (plots are drawn per dataset: mIoU on ADE20K and on Cityscapes are not one axis). The
    latency is the model's measurement at the input closest in pixels to the mIoU's resolution (the paper's,
    or the card's default input): each point pairs accuracy with the cost of the nearest measured condition.
    """
    if board.empty:
        return board
    ok = board[(board["status"] == "ok") & board["latency_p50_ms"].notna()].copy()
    ok["miou_value"] = ok["miou"].where(ok["miou"].notna(), ok["paper_miou"])
    ok["miou_kind"] = ["measured" if m == m and m is not None else "paper" for m in ok["miou"]]
    # mIoU on different datasets is not one axis: each point says which dataset it is on.
    ok["plot_dataset"] = [
        dataset_label(d if k == "measured" else p) or "dataset not stated"
        for k, d, p in zip(
            ok["miou_kind"], ok["miou_dataset_name"], ok["paper_miou_dataset_name"], strict=True
        )
    ]
    ok = ok[ok["miou_value"].notna()]
    if ok.empty:
        return ok
    ok["target_pixels"] = [_miou_pixels(name) for name in ok["model"]]
    ok["distance"] = [abs(math.log(p / t)) for p, t in zip(ok["pixels"], ok["target_pixels"], strict=True)]
    ok = ok.sort_values(["distance", "pixels"], kind="stable")
    keys = ["machine", "device", "precision", "conditions", "model"]
    return ok.drop_duplicates(keys).sort_values(keys, kind="stable").reset_index(drop=True)


def _miou_pixels(name: str) -> int:
    claim = _paper(name, "miou")
    card = card_or_none(name)
    hw = (claim.input_hw if claim and claim.input_hw else None) or (card.input_hw if card else (512, 1024))
    return hw[0] * hw[1]


def model_history(records: list[dict], model: str) -> pd.DataFrame:
    """Every bench record of `model`, oldest first per cell, with the latency change from the previous one."""
    rows = []
    for r in bench_records(records):
        if r["model"] != model:
            continue
        lat = r.get("latency_ms") or {}
        rows.append(
            {
                "machine": r["env"].get("machine"),
                "input": hw_text(r["input_hw"]),
                "pixels": r["input_hw"][0] * r["input_hw"][1],
                "device": r["device"],
                "precision": r["precision"],
                "conditions": conditions_text(r),
                "batch": r["batch"],
                "timestamp": r["env"].get("timestamp", ""),
                "commit": (r["env"].get("git_commit") or "")[:10]
                + ("+dirty" if r["env"].get("git_dirty") else ""),
                "status": r["status"],
                "error": r["error"] or "",
                "params_m": _num(r.get("params"), 1e6),
                "gmacs": _num(r.get("macs"), 1e9),
                "latency_p50_ms": lat.get("median"),
                "peak_mem_mb": r.get("peak_mem_mb"),
                "source_file": r.get("source_file", ""),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    keys = ["machine", "device", "precision", "conditions", "batch", "pixels", "input"]
    frame = frame.sort_values([*keys, "timestamp", "source_file"], kind="stable").reset_index(drop=True)
    previous = frame.groupby(keys, sort=False)["latency_p50_ms"].shift(1)
    frame["latency_change_pct"] = (frame["latency_p50_ms"] / previous - 1) * 100
    return frame
