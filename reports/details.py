"""Per-model detail tables: FLOP counters' agreement, backend output agreement, hardware state, evaluations,
and the model's claims with their verdicts.

Each reads the newest record per cell of one model and returns a DataFrame with only the rows that carry the
field (a schema-1 record, or a CPU run, has no hardware state: it is left out rather than shown as gaps).
"""

from __future__ import annotations

import pandas as pd

from bench.records import BenchRecord, latest_per_cell
from reports.tables import (
    bench_records,
    conditions_text,
    eval_records,
    hw_text,
    latency_flag,
    weights_source,
)


def _num(value, scale: float):
    return value / scale if value is not None else None


def _cells(records: list, model: str) -> list[BenchRecord]:
    mine = [r for r in latest_per_cell(bench_records(records)) if r.model == model]
    return sorted(
        mine,
        key=lambda r: (
            str(r.machine), r.execution.device, r.execution.precision, conditions_text(r.execution),
            r.execution.input_hw[0] * r.execution.input_hw[1], r.execution.batch,
        ),
    )  # fmt: skip


def _where(r: BenchRecord) -> dict:
    ex = r.execution
    return {
        "machine": r.machine,
        "device": ex.device,
        "precision": ex.precision,
        "conditions": conditions_text(ex),
        "input": hw_text(ex.input_hw),
        "batch": ex.batch,
    }


def flop_agreement(records: list, model: str) -> pd.DataFrame:
    """fvcore against torch.utils.flop_counter, with what each leaves uncounted."""
    rows = []
    for r in _cells(records, model):
        if r.macs is None:
            continue
        other = r.get("macs_flop_counter")
        coverage = r.get("macs_coverage") or {}
        rows.append(
            {
                **_where(r),
                "gmacs_fvcore": r.macs / 1e9,
                "gmacs_flop_counter": other / 1e9 if other is not None else None,
                "difference_pct": (other / r.macs - 1) * 100 if other is not None and r.macs else None,
                "disagree_over_5pct": r.get("macs_disagree"),
                "coverage": ", ".join(f"{k} {v:.0%}" for k, v in sorted(coverage.items()) if v is not None),
                "fvcore_uncounted": ", ".join(sorted(r.get("macs_unsupported_ops") or {})),
                "flop_counter_uncounted": ", ".join(sorted(r.get("flop_counter_uncounted_ops") or {})),
            }
        )
    return pd.DataFrame(rows)


def output_agreement(records: list, model: str) -> pd.DataFrame:
    """Each non-reference condition's output against eager fp32."""
    rows = []
    for r in _cells(records, model):
        agreement = r.get("agreement")
        if not agreement:
            continue
        rows.append(
            {
                **_where(r),
                "reference": str(agreement.get("reference") or ""),
                "max_abs_diff": agreement.get("max_abs_diff"),
                "argmax_agreement_pct": agreement.get("argmax_agreement_pct"),
            }
        )
    return pd.DataFrame(rows)


def roofline_fraction(roofline: dict) -> tuple[float | None, str]:
    """(fraction, note) to show: a recorded fraction, never one above 1. Records made before the peak was
    taken as the best of its repeats hold fractions above 1 (their peak was measured too low): those read
    'n/a', with the reason, as a record's own `fraction_note` does."""
    fraction = roofline.get("fraction")
    achieved, peak = roofline.get("achieved_tflops"), roofline.get("peak_tflops")
    if fraction is not None and fraction > 1:
        return None, f"n/a: peak too low (achieved {achieved:.3g} TFLOP/s above the measured peak {peak:.3g})"
    if fraction is None and roofline:
        return None, f"n/a: {roofline.get('fraction_note') or 'no measured peak for this precision'}"
    return fraction, ""


def hardware_state(records: list, model: str) -> pd.DataFrame:
    """GPU clocks, temperature, power before/after timing; throttling, energy, roofline, memory by method."""
    rows = []
    for r in _cells(records, model):
        hardware, roofline, memory = r.get("hardware") or {}, r.get("roofline") or {}, r.get("memory") or {}
        if not (hardware or roofline or memory):
            continue
        before, after = hardware.get("before") or {}, hardware.get("after") or {}
        fraction, why = roofline_fraction(roofline)
        rows.append(
            {
                **_where(r),
                "sm_clock_mhz": f"{before.get('sm_clock_mhz', '–')} → {after.get('sm_clock_mhz', '–')}",
                "temperature_c": f"{before.get('temperature_c', '–')} → {after.get('temperature_c', '–')}",
                "power_w": f"{before.get('power_w', '–')} → {after.get('power_w', '–')}",
                "throttled": hardware.get("throttled"),
                "energy_j_per_image": hardware.get("energy_j_per_image"),
                "achieved_tflops": roofline.get("achieved_tflops"),
                "roofline_fraction": fraction,
                "roofline_note": why,
                "latency_flag": latency_flag(r.latency),
                "cpu_peak_rss_mb": memory.get("cpu_peak_rss_mb"),
                "cuda_max_allocated_mb": memory.get("cuda_max_allocated_mb"),
                "cuda_max_reserved_mb": memory.get("cuda_max_reserved_mb"),
                "nvml_used_mb": memory.get("nvml_used_mb"),
            }
        )
    return pd.DataFrame(rows)


def evaluations(records: list, model: str) -> pd.DataFrame:
    """Every accuracy evaluation of the model (newest per evaluation cell)."""
    rows = []
    for r in sorted(
        (r for r in latest_per_cell(eval_records(records)) if r.model == model),
        key=lambda r: (r.dataset, r.split, r.protocol.label(), weights_source(r)),
    ):
        cost = r.get("cost") or {}
        rows.append(
            {
                "dataset": r.dataset,
                "split": r.split,
                "protocol": r.protocol.label(),
                "weights": weights_source(r),
                "miou": r.miou,
                "protocol_gmacs": _num(cost.get("macs_protocol"), 1e9),
                # a mean over the split's images (one pass), not a timed median: it has no interval
                "mean_ms_per_image_no_interval": cost.get("latency_ms_per_image"),
                "status": r.status,
                "error": r.error or "",
                "machine": r.machine,
                "commit": r.env.commit_label,
                "timestamp": r.timestamp,
            }
        )
    return pd.DataFrame(rows)


def claims(book: pd.DataFrame, model: str) -> pd.DataFrame:
    """The model's card claims with their verdicts (rows of reports.ledger.ledger)."""
    return book[book["model"] == model].reset_index(drop=True)
