"""The reproducibility ledger: every paper claim beside our measurement under the closest conditions.

For each model with results and a card, each `Reported` number gets one row: the claim, its source and
conditions, the closest measured record (how "closest" is chosen depends on the metric, see `_closest_*`),
the delta in percent, and the conditions that differ. Speed claims (FPS, latency) from other GPUs are also
compared relative to the reference model (`bench.conditions.REFERENCE_MODEL`) measured on the same machine:
our speed ratio model/reference on our machine against the paper ratio, where the reference's own card has a
claim on the same device and resolution.
"""

from __future__ import annotations

import math

import pandas as pd

from bench.conditions import REFERENCE_MODEL
from reports.tables import _speed_key as speed_key
from reports.tables import (
    bench_records,
    card_or_none,
    conditions_text,
    eval_records,
    hw_text,
    latest_per_cell,
    paper_conditions,
    paper_values,
    reference_latency,
    same_dataset,
    weights_source,
)


def claim_in_gmacs(reported) -> tuple[float, str]:
    """A MACs/FLOPs claim in 1e9 multiply-adds, with a note on the conversion made."""
    convention = (reported.convention or "").lower()
    value = reported.value
    notes = []
    if reported.metric == "flops" and ("2 x" in convention or "2x" in convention):
        value /= 2
        notes.append("paper FLOPs = 2 x MACs, halved")
    elif reported.metric == "flops" and "multiply-add" not in convention:
        notes.append("paper's FLOPs convention unknown: compared as stated")
    if "2^30" in convention:
        value *= 2**30 / 1e9
        notes.append("paper G = 2^30, converted to 1e9")
    return value, "; ".join(notes)


def _pixel_distance(hw, target) -> float:
    if not target:
        return 0.0
    return abs(math.log((hw[0] * hw[1]) / (target[0] * target[1])))


def _closest_cost(records: list[dict], reported) -> dict | None:
    """Cost (params/MACs) depends on the input only: the record at the nearest resolution, newest first."""
    ok = [r for r in records if r["status"] == "ok" and r.get("macs") is not None]
    ok.sort(key=lambda r: r["env"].get("timestamp", ""), reverse=True)
    ok.sort(key=lambda r: _pixel_distance(r["input_hw"], reported.input_hw))
    return ok[0] if ok else None


def _closest_speed(records: list[dict], reported) -> dict | None:
    """Speed: prefer a GPU, then the claim's precision, then the nearest resolution, then batch 1."""
    ok = [r for r in records if r["status"] == "ok" and (r.get("latency_ms") or {}).get("median")]

    def rank(r):
        return (
            r["device"] == "cpu",
            bool(reported.precision) and r["precision"] != reported.precision,
            _pixel_distance(r["input_hw"], reported.input_hw),
            r["batch"] != 1,
            str(r["env"].get("machine")),
            conditions_text(r),
        )

    ok.sort(key=rank)
    return ok[0] if ok else None


def _closest_eval(records: list[dict], reported) -> dict | None:
    ok = [r for r in records if r["status"] == "ok" and r.get("miou") is not None]

    def rank(r):
        return (
            not same_dataset(r.get("dataset"), reported.dataset),
            bool(reported.split) and r.get("split") != reported.split,
            str(r.get("protocol")),
            weights_source(r),
        )

    ok.sort(key=rank)
    return ok[0] if ok else None


def _our_hardware(r: dict) -> str:
    env = r["env"]
    return str(
        ((env.get("gpu") or {}).get("name") if r["device"] != "cpu" else env.get("cpu")) or r["device"]
    )


def _differences(reported, r: dict) -> list[str]:
    """The conditions under which the claim and our measurement differ, as short phrases."""
    out = []
    if record_is_eval(r):
        for field in ("dataset", "split", "protocol"):
            theirs = getattr(reported, field)
            same = same_dataset if field == "dataset" else lambda a, b: str(a).lower() == str(b).lower()
            if theirs and not same(r.get(field), theirs):
                out.append(f"{field}: ours {r.get(field)} vs paper {theirs}")
        return out
    if reported.input_hw and tuple(r["input_hw"]) != tuple(reported.input_hw):
        out.append(f"resolution: ours {hw_text(r['input_hw'])} vs paper {hw_text(reported.input_hw)}")
    elif not reported.input_hw and reported.metric != "params":
        out.append(f"resolution: ours {hw_text(r['input_hw'])}, paper's not stated")
    if reported.metric in ("fps", "latency_ms"):
        if reported.device:
            out.append(f"device: ours {_our_hardware(r)} vs paper {reported.device}")
        if reported.backend:
            out.append(f"backend: ours {conditions_text(r)} vs paper {reported.backend}")
        if reported.precision and reported.precision != r["precision"]:
            out.append(f"precision: ours {r['precision']} vs paper {reported.precision}")
        if r["batch"] != 1:
            out.append(f"batch {r['batch']}")
    return out


def record_is_eval(r: dict) -> bool:
    return r.get("kind") == "eval"


def _paper_ratio(reported) -> float | None:
    """The claim's speed relative to the reference model's own claim on the same device and resolution."""
    for ref in paper_values(REFERENCE_MODEL, reported.metric):
        if ref.device and ref.device == reported.device and ref.input_hw == reported.input_hw:
            return reported.value / ref.value if reported.metric == "fps" else ref.value / reported.value
    return None


def ledger(records: list[dict]) -> pd.DataFrame:
    """One row per paper claim of every model that has results and a card."""
    bench = latest_per_cell(bench_records(records))
    evals = latest_per_cell(eval_records(records))
    refs = reference_latency(records)
    rows = []
    for model in sorted({r["model"] for r in bench} | {r["model"] for r in evals}):
        card = card_or_none(model)
        if card is None:
            continue
        mine = [r for r in bench if r["model"] == model]
        mine_eval = [r for r in evals if r["model"] == model]
        for reported in card.reported:
            row = {
                "model": model,
                "metric": reported.metric,
                "paper": reported.value,
                "unit": reported.unit,
                "paper_conditions": paper_conditions(reported),
                "source": reported.source,
                "paper_compared": None,
                "ours": None,
                "ours_conditions": "",
                "delta_pct": None,
                "ours_vs_ref": None,
                "paper_vs_ref": None,
                "delta_vs_ref_pct": None,
                "differs": "",
                "note": "",
                "commit": "",
            }
            claim = reported.value
            match = None
            if reported.metric == "params":
                match = _closest_cost(mine, reported)
                if match is not None:
                    count = match.get("params_total") if card.params_counts_aux_heads else match.get("params")
                    row["ours"] = count / 1e6 if count is not None else None
                    if card.params_counts_aux_heads:
                        row["note"] = "paper counts training-only heads: compared with params_total"
            elif reported.metric in ("macs", "flops"):
                match = _closest_cost(mine, reported)
                claim, row["note"] = claim_in_gmacs(reported)
                if match is not None:
                    row["ours"] = match["macs"] / 1e9
                    row["unit"] = "G MACs"
            elif reported.metric in ("fps", "latency_ms"):
                match = _closest_speed(mine, reported)
                if match is not None:
                    lat = match["latency_ms"]["median"]
                    row["ours"] = match.get("fps") if reported.metric == "fps" else lat
                    ref = refs.get(speed_key(match))
                    if ref:
                        row["ours_vs_ref"] = ref / lat
                    row["paper_vs_ref"] = _paper_ratio(reported)
                    if row["ours_vs_ref"] and row["paper_vs_ref"]:
                        row["delta_vs_ref_pct"] = (row["ours_vs_ref"] / row["paper_vs_ref"] - 1) * 100
            elif reported.metric == "miou":
                match = _closest_eval(mine_eval, reported)
                if match is not None:
                    row["ours"] = match["miou"]
                    row["note"] = f"weights: {weights_source(match)}" if weights_source(match) else ""
            else:
                row["note"] = f"SegBench does not measure {reported.metric}"
            if match is not None and row["ours"] is not None:
                row["paper_compared"] = claim
                row["delta_pct"] = (row["ours"] / claim - 1) * 100 if claim else None
                row["differs"] = "; ".join(_differences(reported, match))
                row["commit"] = (match["env"].get("git_commit") or "")[:10]
                if record_is_eval(match):
                    row["ours_conditions"] = " ".join(
                        str(x) for x in (match.get("dataset"), match.get("split"), match.get("protocol")) if x
                    )
                else:
                    row["ours_conditions"] = (
                        f"{match['env'].get('machine')} {match['device']} {match['precision']} "
                        f"{hw_text(match['input_hw'])} batch {match['batch']} ({conditions_text(match)})"
                    )
            elif not row["note"]:
                row["note"] = "no successful measurement of this metric"
            rows.append(row)
    columns = [
        "model", "metric", "paper", "unit", "paper_conditions", "source", "paper_compared", "ours",
        "ours_conditions", "delta_pct", "ours_vs_ref", "paper_vs_ref", "delta_vs_ref_pct", "differs", "note",
        "commit",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
