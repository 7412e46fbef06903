"""Tables of measured numbers beside the papers' claims, and the Pareto frontier."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

import zoo
from bench.records import cell_key


def latest_per_cell(records: list[dict]) -> list[dict]:
    """The newest record of each cell on each machine (older ones are history)."""
    latest: dict[tuple, dict] = {}
    for record in records:
        key = (record["env"].get("machine"), *cell_key(record))
        if key not in latest or record["env"].get("timestamp", "") >= latest[key]["env"].get("timestamp", ""):
            latest[key] = record
    return list(latest.values())


def _paper(name: str, metric: str):
    try:
        found = zoo.get_card(name).reported_values(metric)
    except zoo.UnknownModelError:
        return None
    return found[0] if found else None


def _at(reported) -> str:
    """The input size a paper number was obtained at ('' when the paper does not say)."""
    return "{}x{}".format(*reported.input_hw) if reported is not None and reported.input_hw else ""


def _describe(reported) -> str:
    if reported is None:
        return ""
    parts = [
        f"{reported.input_hw[0]}x{reported.input_hw[1]}" if reported.input_hw else None,
        reported.dataset,
        reported.split,
        reported.protocol,
        reported.device,
        reported.backend,
        reported.precision,
        reported.convention,
        f"source: {reported.source}",
    ]
    return "; ".join(p for p in parts if p)


def leaderboard(records: list[dict]) -> pd.DataFrame:
    """One row per (machine, cell): measured numbers and the card's paper numbers with their conditions."""
    rows = []
    for r in latest_per_cell(records):
        lat = r.get("latency_ms") or {}
        paper_params, paper_macs = _paper(r["model"], "params"), _paper(r["model"], "macs")
        paper_flops, paper_fps = _paper(r["model"], "flops"), _paper(r["model"], "fps")
        paper_cost = paper_macs or paper_flops
        rows.append(
            {
                "model": r["model"],
                "group": r["group"],
                "machine": r["env"].get("machine"),
                "device": r["device"],
                "precision": r["precision"],
                "input": "{}x{}".format(*r["input_hw"]),
                "batch": r["batch"],
                "status": r["status"],
                "error": r["error"] or "",
                "params_m": r["params"] / 1e6 if r["params"] is not None else None,
                "paper_params_m": paper_params.value if paper_params else None,
                "paper_params_note": _describe(paper_params),
                "gmacs": r["macs"] / 1e9 if r.get("macs") is not None else None,
                "macs_unsupported": ", ".join(sorted(r.get("macs_unsupported_ops") or {})),
                "paper_cost_g": paper_cost.value if paper_cost else None,
                "paper_cost_kind": ("GMACs" if paper_macs else "GFLOPs (as stated)") if paper_cost else "",
                "paper_cost_at": _at(paper_cost),
                "paper_cost_note": _describe(paper_cost),
                "latency_median_ms": lat.get("median"),
                "latency_p10_ms": lat.get("p10"),
                "latency_p90_ms": lat.get("p90"),
                "latency_n": lat.get("n"),
                "fps": r.get("fps"),
                "paper_fps": paper_fps.value if paper_fps else None,
                "paper_fps_at": _at(paper_fps),
                "paper_fps_note": _describe(paper_fps),
                "peak_mem_mb": r.get("peak_mem_mb"),
                "threads": (r.get("conditions") or {}).get("threads"),
                "commit": (r["env"].get("git_commit") or "")[:10]
                + ("+dirty" if r["env"].get("git_dirty") else ""),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(["machine", "device", "precision", "group", "model", "input"], kind="stable")


def pareto_mask(xs: Sequence[float], ys: Sequence[float]) -> list[bool]:
    """True where no other point is at least as good on both axes and better on one (lower is better)."""
    points = list(zip(xs, ys, strict=True))
    return [not any(ox <= x and oy <= y and (ox < x or oy < y) for ox, oy in points) for x, y in points]
