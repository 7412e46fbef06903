"""Table cells for the templates: DataFrame rows -> plain dicts of display text, sort key and tooltip.

Formatting lives here, not in the templates, so each column is declared once (`Col`) and every table is
rendered by one macro. Everything stays a plain string: the templates autoescape it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

DASH = "–"


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def fmt(value, digits: int = 2) -> str:
    if missing(value):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def sort_key(value) -> str:
    """The data-v attribute the sorting script reads: numbers as repr, text as is, missing as empty."""
    if missing(value):
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(round(value, 9))
    return str(value)


@dataclass(frozen=True)
class Col:
    """One table column: `key` in the row, its header `label`, and how to show it.

    `digits` formats numbers; `title` names the row field shown on hover; `sub` a field shown small under
    the value; `href` a field holding a link; `num` right-aligns and sorts numerically; `text` a field shown
    instead of the value (which still sorts: a latency shown with its interval sorts by its median); `flag` a
    field that, when not empty, marks the cell (⚑) and says why on hover.
    """

    key: str
    label: str
    digits: int = 2
    num: bool = True
    title: str | None = None
    sub: str | None = None
    href: str | None = None
    cls: str = ""
    help: str = ""
    sort: str | None = None  # a field to sort by instead of the shown value (e.g. pixels for "HxW")
    text: str | None = None
    flag: str | None = None


def cells(frame: pd.DataFrame, columns: list[Col]) -> list[dict]:
    """Rows of cells for `macros.table`, plus the attributes the filters read."""
    rows = []
    for r in frame.to_dict("records"):  # plain values: far faster than iterrows, same text
        out = []
        for c in columns:
            value = r.get(c.key)
            if c.key == "status":
                out.append(
                    {
                        "text": str(value),
                        "sort": str(value),
                        "cls": "l " + ("status-ok" if value == "ok" else "status-fail"),
                        "title": "",
                        "sub": "" if value == "ok" else str(r.get("error") or ""),
                        "href": "",
                    }
                )
                continue
            sub = r.get(c.sub) if c.sub else ""
            text = r.get(c.text) if c.text else None
            flag = r.get(c.flag) if c.flag else None
            title = "" if not c.title or missing(r.get(c.title)) else str(r.get(c.title))
            out.append(
                {
                    "text": ("⚑ " if flag else "") + (str(text) if text else fmt(value, c.digits)),
                    "sort": sort_key(r.get(c.sort) if c.sort else value),
                    "cls": ("" if c.num else "l ") + c.cls + (" flag" if flag else ""),
                    "title": "; ".join(x for x in (str(flag) if flag else "", title) if x),
                    "sub": "" if missing(sub) else str(sub),
                    "href": str(r.get(c.href)) if c.href else "",
                }
            )
        rows.append(
            {
                "cells": out,
                "failed": r.get("status", "ok") != "ok",
                "device": str(r.get("device", "")),
                "precision": str(r.get("precision", "")),
                "machine": str(r.get("machine", "")),
            }
        )
    return rows


LEADERBOARD = [
    Col("model", "model", num=False, href="href"),
    Col("status", "status", num=False),
    Col("input", "input", sort="pixels", help="height x width"),
    Col("batch", "batch"),
    Col("machine", "machine", num=False, title="hardware", sub="self_checks"),
    Col("device", "device", num=False),
    Col("precision", "precision", num=False),
    Col("conditions", "backend", num=False),
    Col("params_m", "params (M)", 3, title="paper_params_note"),
    Col("gmacs", "GMACs", 3, title="macs_unsupported", help="fvcore, one per multiply-add"),
    Col("gflops", "GFLOPs", 3, help="FLOPs = 2 x MACs"),
    Col("latency_p50_ms", "p50 (ms)", text="latency", flag="latency_flag",
        help="median latency ± the half-width of its 95% repeat interval (widened by the machine's "
             "run-to-run spread where a calibration measured it: see Machines), and the number of timed "
             "samples"),
    Col("fps", "FPS", 1, text="fps_text", help="batch x 1000 / median latency, ± from its interval"),
    Col("speed_vs_ref", "x ref", 2, help="speed relative to the reference model on the same machine = 1"),
    Col("peak_mem_mb", "mem (MB)", 1, title="peak_mem_method", help="peak memory"),
    Col("miou", "mIoU ours", 2, sub="miou_dataset", title="miou_source"),
    Col("paper_miou", "mIoU paper", 2, title="paper_miou_note", sub="paper_miou_dataset_name", cls="paper"),
]  # fmt: skip

# The ledger: the claim, its verdict, our number with its interval, the delta, what differs, the command.
LEDGER = [
    Col("model", "model", num=False, href="href"),
    Col("metric", "metric", num=False),
    Col("verdict", "verdict", num=False, cls="verdict"),
    Col("paper", "paper", text="paper_text", cls="paper", title="paper_conditions", sub="paper_unit_text"),
    Col("ours", "ours", 4, text="ours_text", title="ours_conditions", help="95% interval and n for speeds"),
    Col("delta", "delta", 1, text="delta_text", title="note",
        help="ours / paper - 1 (mIoU: ours - paper, in points); only between comparable numbers"),
    Col("differs", "conditions that differ or are open", num=False, cls="wrap", sub="note"),
    Col("command", "what would measure it", num=False, cls="wrap code"),
    Col("source", "source", num=False, cls="wrap"),
]  # fmt: skip

RATIOS = [
    Col("model", "model", num=False, href="href"),
    Col("metric", "metric", num=False),
    Col("paper_vs_ref", "paper (x ref)", 2, title="source"),
    Col("ours_vs_ref", "ours (x ref)", 2, title="ratio_condition", sub="ratio_condition"),
    Col("differs", "why the numbers themselves are not compared", num=False, cls="wrap"),
]

VARIANTS = [
    Col("model", "model", num=False, href="href"),
    Col("metric", "metric", num=False),
    Col("paper", "paper", text="paper_text", cls="paper", title="paper_conditions", sub="paper_unit_text"),
    Col("variant", "the network it is about", num=False, cls="wrap"),
    Col("source", "source", num=False, cls="wrap"),
]

SUMMARY = [
    Col("metric", "metric", num=False),
    Col("reproduced", "reproduced", 0),
    Col("differs", "differs", 0),
    Col("not comparable", "not comparable", 0),
    Col("not measured", "not measured", 0),
    Col("claims", "claims", 0),
]

RULES = [
    Col("metric", "metric", num=False),
    Col("must_match", "must match", num=False, cls="wrap"),
    Col("converted", "converted", num=False, cls="wrap"),
    Col("tolerance", "reproduced when", num=False, cls="wrap"),
]

TRAINED = [
    Col("model", "model", num=False, href="href"),
    Col("dataset", "dataset", num=False),
    Col("split", "split", num=False),
    Col("protocol", "protocol", num=False),
    Col("miou", "mIoU (%)", 2),
    Col("recipe", "recipe", num=False, cls="wrap"),
    Col("budget", "budget", num=False, cls="wrap"),
    Col("checkpoint", "checkpoint", num=False, title="commit"),
    Col("machine", "machine", num=False),
]

# A model's page: its claims with their verdicts, the paper's conditions spelled out.
CLAIMS = [
    *LEDGER[1:4],
    Col("paper_conditions", "the paper's conditions", num=False, cls="wrap", sub="variant"),
    *LEDGER[4:],
]

HISTORY = [
    Col("timestamp", "timestamp (UTC)", num=False),
    Col("commit", "commit", num=False, title="source_file"),
    Col("machine", "machine", num=False),
    Col("device", "device", num=False),
    Col("precision", "precision", num=False),
    Col("conditions", "backend", num=False),
    Col("input", "input", sort="pixels"),
    Col("batch", "batch"),
    Col("params_m", "params (M)", 3),
    Col("gmacs", "GMACs", 3),
    Col("latency_p50_ms", "latency p50 (ms)", text="latency", flag="latency_flag"),
    Col("latency_change_pct", "change vs previous (%)", 1),
    Col("peak_mem_mb", "peak mem (MB)", 1),
    Col("status", "status", num=False),
]
