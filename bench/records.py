"""The results record: one JSON object per measured cell or evaluation, schema-versioned.

Two kinds share one store (`kind`):

- `bench` (one sweep cell): the cell (model, input_hw, batch, device, precision and the other condition
  axes, see `CELL_AXES`), its `status` and `error`, the measurements, the `conditions` that produced them,
  and `env` (provenance). Units are in the field names: `macs` counts one per multiply-add (fvcore's
  convention); FLOPs, where shown, are derived as 2 x macs.
- `eval` (one accuracy evaluation): model, dataset, split, protocol, weights, miou/per_class_iou in percent,
  conventions, the protocol's cost, and `env`.

Schema 2 (this file) adds to schema 1: `kind`, the condition axes `backend`, `channels_last`,
`cudnn_benchmark`, `tf32`, `compile_mode`; latency percentiles p99 and a confidence interval of the median;
a second FLOP counter; memory by method; hardware state; roofline; output agreement; `shard`. Schema-1
records (written before) are still read: the missing axes take their defaults (`upgrade`).

Fields of a `bench` record beyond schema 1, each None (or absent in schema 1) when not measured:

- `latency_ms`: median, p10, p90, p99, mean, std, min, max, n, `ci95` [low, high] of the median
  (exact binomial order-statistic interval; `ci_method`, `ci_confidence`, and `ci_coverage`, its exact
  coverage, which is below the confidence when n is too small for one), `ci_rel` (largest half-width /
  median), `target_met` (ci_rel within the policy's target), `stop_reason` ("ci_target", "time_budget",
  "max_samples").
- `fps`: images per second, batch x 1000 / median ms (throughput when batch > 1).
- `macs` (fvcore), `macs_flop_counter` (torch.utils.flop_counter FLOPs / 2), `macs_unsupported_ops`
  (fvcore's zero-counted ops), `flop_counter_uncounted_ops` (aten ops FlopCounterMode has no rule for),
  `macs_coverage` (fraction of traced compute ops with a rule, per counter), `macs_disagree` (the two
  counters differ by more than 5%).
- `peak_mem_mb` + `peak_mem_method` (the headline: CPU peak RSS above baseline, CUDA max allocated), and
  `memory` {cpu_peak_rss_mb, cuda_max_allocated_mb, cuda_max_reserved_mb, nvml_used_mb}.
- `hardware` {before, after: {sm_clock_mhz, mem_clock_mhz, temperature_c, power_w, throttle_reasons},
  throttled, energy_j_per_image} (CUDA only).
- `roofline` {achieved_tflops, peak_tflops, fraction, peak_gbps} against the per-run measured peak in
  env["calibration"].
- `agreement` {reference, max_abs_diff, reference_max_abs, argmax_agreement_pct, nonfinite_values} against
  eager fp32 for non-reference conditions (max_abs_diff is None when the output has non-finite values);
  None for the reference condition itself.
- `compile_s`: seconds spent compiling/exporting/capturing, never inside latency.
- `calibration` {workload, median_ms, ci95, n, threads, device}: the fixed calibration workload
  (`bench.measure.calibration`) timed right before and after this cell, which `segbench compare` divides
  latency by; env["calibration"] holds the run's own, longer calibration and the measured peaks.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)

KINDS = ("bench", "eval")

# Why a cell produced no measurement. "ok" is the only status with numbers.
STATUSES = ("ok", "error", "oom", "timeout", "crashed")

# The axes that identify a bench cell beyond the model and input, with the value a schema-1 record had.
CELL_AXES = {
    "batch": 1,
    "device": "cpu",
    "precision": "fp32",
    "backend": "eager",
    "channels_last": False,
    "cudnn_benchmark": None,
    "tf32": None,
    "compile_mode": None,
}

REQUIRED_FIELDS = {
    "bench": (
        "schema_version",
        "model",
        "group",
        "input_hw",
        "batch",
        "device",
        "precision",
        "status",
        "error",
        "params",
        "macs",
        "latency_ms",
        "fps",
        "peak_mem_mb",
        "env",
    ),
    "eval": (
        "schema_version",
        "kind",
        "model",
        "dataset",
        "split",
        "protocol",
        "status",
        "error",
        "miou",
        "env",
    ),
}


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A record as schema 2 describes it: a schema-1 record gets kind "bench" and the default axes."""
    if record.get("schema_version") == 1:
        record = {"kind": "bench", **{k: v for k, v in CELL_AXES.items() if k not in record}, **record}
    return record


def record_kind(record: dict[str, Any]) -> str:
    return record.get("kind", "bench")


def cell_key(record: dict[str, Any]) -> tuple:
    """What identifies a cell within one results file (used by --resume and by comparisons)."""
    if record_kind(record) == "eval":
        return (
            "eval",
            record["model"],
            record["dataset"],
            record["split"],
            record["protocol"],
            (record.get("weights") or {}).get("source"),
        )
    return (record["model"], tuple(record["input_hw"]), *(record.get(k, d) for k, d in CELL_AXES.items()))


def check_record(record: Any) -> None:
    """Raise ValueError naming what is wrong with a record read from disk."""
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    if record.get("schema_version") not in READABLE_SCHEMAS:
        raise ValueError(f"schema_version {record.get('schema_version')!r} is not one of {READABLE_SCHEMAS}")
    kind = record_kind(record)
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    missing = [f for f in REQUIRED_FIELDS[kind] if f not in record]
    if missing:
        raise ValueError(f"record lacks {', '.join(missing)}")
    if record["status"] not in STATUSES:
        raise ValueError(f"unknown status {record['status']!r}")
