"""The reproducibility ledger: every card claim with its verdict.

Each claim of every exported card gets exactly one verdict from bench.comparability's rules: reproduced,
differs, not comparable or not measured. A summary counts the verdicts per metric; claims about another
network (`Reported.variant`) are listed apart and never attached to the model's numbers; evaluations of
weights trained here have a section of their own (recipe, budget, result) and never stand against a paper.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.comparability import RULES, VERDICTS, Evidence, Verdict, assess
from bench.conditions import REFERENCE_MODEL
from bench.records import latest_per_cell
from reports.tables import (
    all_cards,
    bench_records,
    eval_records,
    hw_text,
    interval_text,
    paper_conditions,
    structure_records,
    weights_source,
)

COLUMNS = [
    "model", "metric", "verdict", "paper", "paper_text", "unit", "paper_unit_text", "paper_conditions",
    "source", "paper_compared", "compared_unit", "ours", "ours_text", "ours_low", "ours_high", "ours_n",
    "delta", "delta_text", "ours_conditions", "differs", "command", "note", "ours_vs_ref", "paper_vs_ref",
    "ratio_condition", "variant", "machine", "commit", "record_file",
]  # fmt: skip


def evidence(records: list) -> dict[str, Evidence]:
    """Per model, its newest record per cell (every machine) of each kind, with the reference's."""
    bench = latest_per_cell(bench_records(records))
    evals = latest_per_cell(eval_records(records))
    structure = latest_per_cell(structure_records(records))
    cards = all_cards()
    ref_bench = tuple(r for r in bench if r.model == REFERENCE_MODEL)
    out = {}
    for model in sorted(cards):
        out[model] = Evidence(
            bench=tuple(r for r in bench if r.model == model),
            evals=tuple(r for r in evals if r.model == model),
            structure=tuple(r for r in structure if r.model == model),
            reference_bench=ref_bench,
            reference_card=cards.get(REFERENCE_MODEL),
        )
    return out


def verdicts(records: list) -> list[Verdict]:
    """Every claim of every card, in card order, with its verdict."""
    cards = all_cards()
    found = evidence(records)
    return [assess(claim, cards[m], found[m]) for m in sorted(cards) for claim in cards[m].reported]


def _ours_conditions(v: Verdict) -> str:
    r = v.record
    if r is None:
        return ""
    if r.kind == "eval":
        return f"{r.dataset} {r.split} {r.protocol.label()}, weights: {weights_source(r)} ({r.machine})"
    if r.kind == "structure":
        return f"structure at {hw_text(r.input_hw)} b{r.batch} (digest {r.digest})"
    return f"{r.machine} · {r.execution.label()} · {r.speed_condition.device_model}"


def _delta_text(v: Verdict) -> str:
    if v.delta is None:
        return ""
    if v.unit == "%":
        return f"{v.delta:+.2f} points"
    relative = f"{v.delta_rel:+.2%}" if v.delta_rel is not None else ""
    if v.claim.metric == "params":
        return f"{v.delta * 1e6:+,.0f} params ({relative})"
    return relative or f"{v.delta:+.3g} {v.unit}"


def _compared_text(v: Verdict) -> str:
    """The claim's unit, and its value as compared where a conversion changed it (FLOPs to GMACs)."""
    unit = v.claim.unit
    if v.paper is None or v.paper == v.claim.value:
        return unit
    return f"{unit}; compared as {v.paper:.4f} {v.unit}"


def _ours_text(v: Verdict) -> str:
    if v.ours is None:
        return ""
    if v.interval is not None or v.n is not None:
        return interval_text(v.ours, v.interval, v.n, v.unit)
    if v.claim.metric == "params":
        return f"{v.ours * 1e6:,.0f} params (exact count)"
    if v.unit == "%":
        return f"{v.ours:.2f}% (one pass over the split)"
    return f"{v.ours:.4f} {v.unit} (exact count)"


def row(v: Verdict) -> dict:
    claim, r = v.claim, v.record
    return {
        "model": v.model,
        "metric": claim.metric,
        "verdict": v.verdict,
        "paper": claim.value,
        "paper_text": repr(float(claim.value)).removesuffix(".0"),  # as the card states it
        "unit": claim.unit,
        "paper_unit_text": _compared_text(v),
        "paper_conditions": paper_conditions(claim),
        "source": claim.source,
        "paper_compared": v.paper,
        "compared_unit": v.unit,
        "ours": v.ours,
        "ours_text": _ours_text(v),
        "ours_low": v.interval[0] if v.interval else None,
        "ours_high": v.interval[1] if v.interval else None,
        "ours_n": v.n,
        "delta": v.delta_rel * 100 if v.delta_rel is not None and v.unit != "%" else v.delta,
        "delta_text": _delta_text(v),
        "ours_conditions": _ours_conditions(v),
        "differs": "; ".join(v.differs),
        "command": v.command,
        "note": v.note,
        "ours_vs_ref": v.ours_vs_ref,
        "paper_vs_ref": v.paper_vs_ref,
        "ratio_condition": v.ratio_condition,
        "variant": claim.variant or "",
        "machine": r.machine if r is not None else "",
        "commit": r.env.commit_label if r is not None else "",
        "record_file": r.source if r is not None else "",
    }


def ledger(records: list) -> pd.DataFrame:
    """One row per claim of every card: its verdict, our number with its interval, what differs, the
    command that would measure it. `delta` is in points for mIoU, in percent otherwise."""
    return pd.DataFrame([row(v) for v in verdicts(records)], columns=COLUMNS)


def summary(book: pd.DataFrame) -> pd.DataFrame:
    """Per metric, how many claims got each verdict (and in all)."""
    rows = []
    for metric in sorted(set(book["metric"])):
        mine = book[book["metric"] == metric]
        counts = mine["verdict"].value_counts()
        rows.append({"metric": metric, **{v: int(counts.get(v, 0)) for v in VERDICTS}, "claims": len(mine)})
    total = {"metric": "all", **{v: sum(r[v] for r in rows) for v in VERDICTS}, "claims": len(book)}
    return pd.DataFrame([*rows, total] if rows else [], columns=["metric", *VERDICTS, "claims"])


def rules() -> pd.DataFrame:
    """The rules table as the ledger applies it (bench.comparability.RULES)."""
    return pd.DataFrame(
        [
            {
                "metric": ", ".join(rule.metrics),
                "must_match": "; ".join(rule.must_match) or "–",
                "converted": rule.converted or "–",
                "tolerance": rule.tolerance,
            }
            for rule in RULES.values()
        ]
    )


# ------------------------------------------------------------------------------------- trained here


def _sidecar(record) -> dict | None:
    """The training sidecar (`<checkpoint>.json`, bench.eval.train) of an evaluated checkpoint trained here:
    in the `trained/` folder of the results tree the evaluation was read from (results/eval/<machine>/<file>
    -> results/trained/<checkpoint>.json), else beside the checkpoint's recorded path."""
    path = record.weights.get("path")
    if not path:
        return None
    candidates = []
    source = Path(record.source) if record.source else None
    if source is not None and len(source.parents) >= 3:
        candidates.append(source.parents[2] / "trained" / (Path(path).name + ".json"))
    candidates.append(Path(str(path) + ".json"))
    for candidate in candidates:
        try:
            document = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict):
            return document
    return None


def _budget(sidecar: dict | None) -> tuple[str, str]:
    """(recipe, budget) in words, from a training sidecar."""
    if not sidecar:
        return "sidecar not found", "sidecar not found"
    recipe = sidecar.get("recipe") or {}
    steps = f"{sidecar.get('iterations_done')} of {sidecar.get('iterations_planned')} iterations"
    batch = f"batch {recipe.get('batch_size')}, crop {hw_text(recipe.get('crop_hw'))}"
    wall = sidecar.get("elapsed_s")
    where = f"{sidecar.get('device')}, {sidecar.get('threads')} thread(s)"
    budget = f"{steps} x {batch}; {wall} s wall on {where}; split {sidecar.get('split')}"
    described = f"{recipe.get('optimizer')} lr {recipe.get('lr')}, {recipe.get('schedule')}"
    return f"{described} ({recipe.get('source') or 'source not recorded'})", budget


def trained_here(records: list) -> pd.DataFrame:
    """Evaluations of weights trained here: the result with its recipe and budget, never against a paper."""
    rows = []
    trained = [r for r in latest_per_cell(eval_records(records)) if r.weights_source == "trained here"]
    for r in sorted(trained, key=lambda r: (r.model, r.dataset, r.machine or "")):
        recipe, budget = _budget(_sidecar(r))
        rows.append(
            {
                "model": r.model,
                "dataset": r.dataset,
                "split": r.split,
                "protocol": r.protocol.label(),
                "miou": r.miou,
                "status": r.status,
                "recipe": recipe,
                "budget": budget,
                "checkpoint": Path(str(r.weights.get("path") or "")).name,
                "machine": r.machine,
                "commit": r.env.commit_label,
            }
        )
    return pd.DataFrame(rows)
