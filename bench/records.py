"""Results records: typed, schema-versioned, validated on read. One JSON object per line on disk.

Three kinds share the store (`kind`):

- `bench` (`BenchRecord`): one sweep cell: the model, its `Execution` (bench.conditions: input size, batch,
  device, precision, backend, compile mode, memory layout, cuDNN/TF32 flags), `status`/`error`, the
  measurements, the `conditions` observed while measuring (threads, backend details, timer, ...) and `env`
  (provenance). Units are in the field names: `macs` count one per multiply-add (fvcore's convention; FLOPs,
  where shown, are 2 x macs), `latency_ms`, `peak_mem_mb`.
- `eval` (`EvalRecord`): one accuracy evaluation: model, dataset, split, protocol (bench.conditions.
  EvalProtocol), weights and their source, mIoU and per-class IoU in percent, conventions, cost, `env`.
- `structure` (`StructureRecord`): what a model is at one input size and batch, independent of timing:
  params, both MAC counters with their coverage, output shape; keyed by a digest of the model's structure
  so it is computed once and reused across condition axes and runs.

Records are read through `Record.from_dict`, which checks every known field's type and value (a string where
a number belongs, NaN, a negative count, an integer past 64 bits) and names the field, inside objects too
where a reader uses the value (`calibration.median_ms`, `env.gpu.name`); unknown fields are kept as they are
(`extra`). `parse_line` also refuses arrays nested past the recursion limit and unpaired surrogates.
Schema history (older files are still read, `migrate`):
1. the first bench records (no `kind`, no backend/layout/cuDNN/TF32 axes);
2. adds `kind` ("bench"/"eval"), the axes backend, channels_last, cudnn_benchmark, tf32, compile_mode,
   latency p99 and the median's interval, a second FLOP counter, memory by method, hardware, roofline,
   output agreement, shard;
3. adds the axis cudnn_deterministic, the `structure` kind and typed validation; an eval record's
   `protocol_spec` is required (schema-2 eval records have it).

Fields of a `bench` record, each None when not measured (see bench.worker for how each is measured):
`latency_ms` {median, p10, p90, p99, mean, std, min, max, n, ci95 [low, high] of the median, ci_method,
ci_confidence, ci_coverage, ci_rel (largest half-width / median), target_met, stop_reason, and for a cell
measured in several worker processes: processes, process_medians, process_n, process_ci95,
process_stop_reasons, ci_df, between_rel (see `Latency`)};
`latency_samples_ms` (every timed call); `fps` (batch x 1000 / median ms); `params` (what runs at
inference) and `params_total` (with training-only heads); `macs` (fvcore) and `macs_flop_counter`
(torch.utils.flop_counter FLOPs / 2) with `macs_unsupported_ops`, `flop_counter_uncounted_ops`,
`macs_coverage`, `macs_disagree`; `peak_mem_mb` + `peak_mem_method` and `memory` by method; `hardware`
(CUDA clocks, temperature, power, throttling, energy); `roofline`; `agreement` (output against eager fp32);
`compile_s`; `output_shape`; `calibration` (the fixed workload timed beside the cell); `wall_s`; `shard`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any

from bench.conditions import AXIS_NAMES, EvalProtocol, Execution, SpeedCondition, dataset_key
from bench.errors import UsageError

SCHEMA_VERSION = 3
READABLE_SCHEMAS = (1, 2, 3)
KINDS = ("bench", "eval", "structure")
# Why a cell produced no measurement. "ok" is the only status with numbers.
STATUSES = ("ok", "error", "oom", "timeout", "crashed")
STOP_REASONS = ("ci_target", "time_budget", "max_samples", "sweep_budget", "rounds")


class RecordError(ValueError):
    """A record that does not follow the schema; the message names the field."""


# --------------------------------------------------------------------------------------------- checks


def _percent(value) -> bool:
    return _number(value) and 0 <= value <= 100


# Integers a record may hold: what a 64-bit integer column holds (a count of 10**400 is not one, and it
# would not convert to a float either).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _number(value) -> bool:
    kind = type(value)
    if kind is float:
        return math.isfinite(value)
    return kind is int and _INT_MIN <= value <= _INT_MAX


def _integer(value) -> bool:
    return type(value) is int and _INT_MIN <= value <= _INT_MAX


def _check(record: dict, name: str, ok, what: str, optional: bool = True) -> None:
    """Raise RecordError unless `record[name]` is absent or null (when `optional`) or passes `ok`."""
    value = record.get(name)
    if value is None:
        if not optional:
            raise RecordError(f"field {name!r} is {'null' if name in record else 'missing'}; expected {what}")
        return
    if not ok(value):
        raise RecordError(f"field {name!r} is {json.dumps(value)[:60]}; expected {what}")


def _count(value) -> bool:
    return _integer(value) and value >= 0


def _positive(value) -> bool:
    return _number(value) and value > 0


def _non_negative(value) -> bool:
    return _number(value) and value >= 0


def _text(value) -> bool:
    return isinstance(value, str) and value != ""


def _object(value) -> bool:
    return isinstance(value, dict)


def _counts(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _count(v) for k, v in value.items())


def _shape(value) -> bool:
    return isinstance(value, list) and all(_count(v) for v in value)


def _samples(value) -> bool:
    # _non_negative inlined: a record holds up to a thousand samples, and every record is checked on read
    return isinstance(value, list) and all(type(v) in (int, float) and 0 <= v <= _FLOAT_MAX for v in value)


_FLOAT_MAX = sys.float_info.max  # bounds floats (not NaN or infinity) and integers a float can hold


def _numbers_or_null(value) -> bool:
    return isinstance(value, dict) and all(v is None or _number(v) for v in value.values())


def _numbers(value) -> bool:
    return isinstance(value, list) and all(_number(v) for v in value)


def _interval_positive(value) -> bool:
    return _interval(value) and value[0] > 0


def _check_inside(record: dict, name: str, checks: dict, path: str | None = None) -> None:
    """Check the fields of the object `record[name]` (when it is one) that readers use, each named by its
    path (`calibration.median_ms`): the report, `compare` and the export read them as numbers."""
    inner = record.get(name)
    if not isinstance(inner, dict):
        return
    for key, (ok, what) in checks.items():
        value = inner.get(key)
        if value is not None and not ok(value):
            raise RecordError(f"field '{path or name}.{key}' is {json.dumps(value)[:60]}; expected {what}")


# ------------------------------------------------------------------------------------------- provenance


def _timestamp(value) -> bool:
    if not isinstance(value, str):
        return False
    if value == "":
        return True  # not recorded
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_GPU_CHECKS = {
    "name": (lambda v: isinstance(v, str), "text"),
    "driver": (lambda v: isinstance(v, str), "text"),
    "memory_total_mb": (_number, "a number of MB"),
}
# A calibration workload's result (bench.measure.calibration), in env.calibration.workload and beside a cell
# (`calibration`): compare divides latencies by it, so its median and interval must be positive.
_CALIBRATION_CHECKS = {
    "median_ms": (_positive, "a positive number of ms"),
    "ci95": (_interval_positive, "[low, high] with 0 < low <= high"),
    "n": (_count, "a sample count"),
    "threads": (_count, "a thread count"),
    "workload": (lambda v: isinstance(v, str), "text"),
    "device": (lambda v: isinstance(v, str), "text"),
}


@dataclass(frozen=True)
class Env:
    """Where and with what a record was made (bench.env.collect_env); `extra` holds the other keys."""

    machine: str | None = None
    timestamp: str = ""
    git_commit: str | None = None
    git_dirty: bool | None = None
    torch: str | None = None
    cpu: str | None = None
    gpu: dict | None = None
    calibration: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def commit_label(self) -> str:
        """'0123456789+dirty': the commit's first 10 hex digits, marked when the tree had changes."""
        return (self.git_commit or "")[:10] + ("+dirty" if self.git_dirty else "")

    @property
    def gpu_name(self) -> str | None:
        return self.gpu.get("name") if isinstance(self.gpu, dict) else None

    @classmethod
    def from_dict(cls, env: Any) -> Env:
        if not isinstance(env, dict):
            raise RecordError(f"field 'env' is {json.dumps(env)[:60]}; expected an object")
        for name in ("machine", "git_commit", "torch", "cpu"):
            _check(env, name, lambda v: isinstance(v, str), "text")
        _check(env, "timestamp", _timestamp, "an ISO 8601 time")
        _check(env, "git_dirty", lambda v: isinstance(v, bool), "true or false")
        for name in ("cudnn", "cpu_count"):
            _check(env, name, _count, "a count")
        for name in ("gpu", "calibration"):
            _check(env, name, _object, "an object")
        _check_inside(env, "gpu", _GPU_CHECKS, "env.gpu")
        _check_inside(env, "calibration", {"workload": (_object, "an object")}, "env.calibration")
        _check_inside(
            env.get("calibration") or {}, "workload", _CALIBRATION_CHECKS, "env.calibration.workload"
        )
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            **{k: env[k] for k in known if env.get(k) is not None},
            extra={k: v for k, v in env.items() if k not in known},
        )

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **out}


@dataclass(frozen=True)
class Latency:
    """Summary of a cell's latency samples in ms; `extra`: other keys.

    A cell measured in one process (every record before rounds existed) holds `summarize` of its samples:
    `ci95` is the order-statistic interval of the median. A cell measured in several worker processes
    (bench.run's rounds) holds bench.measure.stats.across_processes: `median` is the mean of the process
    medians, `ci95` the interval a repeat run's median falls in (within- and between-process spread),
    `ci_df` its degrees of freedom, `between_rel` the sweep's pooled between-process relative standard
    deviation; `processes` is the number of processes, and `process_medians`, `process_n` (samples),
    `process_ci95` (each process's own order-statistic interval) and `process_stop_reasons` (which rule ended
    each process's sampling) hold one entry per process, in the order they ran; the percentiles, moments and
    `n` pool every process's samples. `stop_reason` is the rule that ended the cell (STOP_REASONS). The
    per-process fields are None in older records: read `process_count` (1 there).
    """

    median: float
    n: int
    p10: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    ci95: tuple[float, float] | None = None
    ci_rel: float | None = None
    ci_confidence: float | None = None
    ci_coverage: float | None = None
    ci_method: str | None = None
    target_met: bool | None = None
    stop_reason: str | None = None
    processes: int | None = None
    process_medians: tuple[float, ...] | None = None
    process_n: tuple[int, ...] | None = None
    process_ci95: tuple[tuple[float, float], ...] | None = None
    process_stop_reasons: tuple[str, ...] | None = None
    ci_df: float | None = None
    between_rel: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def process_count(self) -> int:
        """How many worker processes measured the cell (1 for records made before rounds existed)."""
        return self.processes or 1

    @classmethod
    def from_dict(cls, latency: dict) -> Latency:
        _check(latency, "median", _positive, "a positive number of ms", optional=False)
        _check(latency, "n", lambda v: _integer(v) and v >= 1, "a positive sample count", optional=False)
        for name in ("p10", "p90", "p99", "mean", "std", "min", "max", "ci_rel"):
            _check(latency, name, _non_negative, "a non-negative number")
        for name in ("ci_confidence", "ci_coverage"):
            _check(latency, name, lambda v: _number(v) and 0 <= v <= 1, "a fraction")
        _check(latency, "ci95", lambda v: _interval(v), "[low, high] with low <= high")
        _check(latency, "target_met", lambda v: isinstance(v, bool), "true or false")
        _check(latency, "stop_reason", lambda v: v in STOP_REASONS, f"one of {', '.join(STOP_REASONS)}")
        _check(latency, "ci_method", lambda v: isinstance(v, str), "text")
        _check_processes(latency)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: latency[k] for k in known if latency.get(k) is not None}
        for name in ("ci95", *_PER_PROCESS):
            if name in values:
                values[name] = _tuples(values[name])
        return cls(**values, extra={k: v for k, v in latency.items() if k not in known})

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        for name in ("ci95", *_PER_PROCESS):
            out[name] = _lists(out[name])
        return {**self.extra, **out}


# One entry per worker process, in `Latency`, each list as long as `processes`.
_PER_PROCESS = ("process_medians", "process_n", "process_ci95", "process_stop_reasons")
PROCESS_STOP_REASONS = ("ci_target", "time_budget", "max_samples")


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _lists(value):
    return [_lists(v) for v in value] if isinstance(value, tuple) else value


def _check_processes(latency: dict) -> None:
    """The per-process fields of a latency summary: types, values, and one entry per process."""
    _check(latency, "processes", lambda v: _integer(v) and v >= 1, "a positive count of processes")
    _check(latency, "ci_df", _positive, "positive degrees of freedom")
    _check(latency, "between_rel", _non_negative, "a non-negative number")
    _check(latency, "process_medians", lambda v: isinstance(v, list) and all(map(_positive, v)), "ms")
    _check(
        latency,
        "process_n",
        lambda v: isinstance(v, list) and all(_integer(n) and n >= 1 for n in v),
        "counts",
    )
    _check(latency, "process_ci95", lambda v: isinstance(v, list) and all(map(_interval, v)), "intervals")
    _check(
        latency,
        "process_stop_reasons",
        lambda v: isinstance(v, list) and all(r in PROCESS_STOP_REASONS for r in v),
        f"a list of {', '.join(PROCESS_STOP_REASONS)}",
    )
    count = latency.get("processes")
    for name in _PER_PROCESS:
        value = latency.get(name)
        if value is not None and len(value) != (count or 0):
            raise RecordError(f"field {name!r} has {len(value)} entries; expected one per process ({count})")
    counts = latency.get("process_n")
    if counts is not None and _integer(latency.get("n")) and sum(counts) != latency["n"]:
        raise RecordError(f"field 'process_n' sums to {sum(counts)}; expected n = {latency['n']}")


def _interval(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(map(_non_negative, value))
        and value[0] <= value[1]
    )


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    """What every record has. `fields` keeps the record's other fields, each checked by the kind's
    `_FIELD_CHECKS`, and is read through the typed properties of the subclasses."""

    model: str
    status: str
    error: str | None
    env: Env
    fields: dict = field(default_factory=dict, repr=False)
    schema_version: int = SCHEMA_VERSION
    source: str = field(default="", compare=False, repr=False)  # the file it was read from; not stored

    kind = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def machine(self) -> str | None:
        return self.env.machine

    @property
    def timestamp(self) -> str:
        return self.env.timestamp

    def get(self, name: str, default=None):
        """A field of the record that has no typed accessor (e.g. 'memory', 'hardware')."""
        value = self.fields.get(name)
        return default if value is None else value

    def to_dict(self) -> dict:
        return {
            **self.fields,
            "schema_version": self.schema_version,
            "kind": self.kind,
            "model": self.model,
            "status": self.status,
            "error": self.error,
            "env": self.env.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)


_COMMON_CHECKS = {
    "model": (_text, "a model name"),
    "status": (lambda v: v in STATUSES, f"one of {', '.join(STATUSES)}"),
    "error": (lambda v: isinstance(v, str), "text"),
}


@dataclass(frozen=True)
class BenchRecord(Record):
    """One sweep cell: a model under one `Execution`, measured on one machine."""

    kind = "bench"
    group: str = ""
    execution: Execution = field(default_factory=lambda: Execution((1, 1)))
    latency: Latency | None = None

    # -------------------------------------------------------------------------------- typed accessors

    @property
    def key(self) -> tuple:
        """What identifies a cell within one results file (--resume, merge, compare)."""
        return (self.model, *self.execution.key)

    def label(self) -> str:
        return f"{self.model} {self.execution.label()}"

    @property
    def threads(self) -> int | None:
        return (self.get("conditions") or {}).get("threads")

    @property
    def speed_condition(self) -> SpeedCondition:
        cpu = self.execution.device == "cpu"
        details = (self.get("conditions") or {}).get("backend_details") or {}
        version = details.get("ort_version") if self.execution.backend == "onnxruntime" else self.env.torch
        return SpeedCondition(
            execution=self.execution,
            machine=self.machine,
            device_model=self.env.cpu if cpu else self.env.gpu_name,
            backend_version=version,
            threads=self.threads,
        )

    @property
    def params(self) -> int | None:
        return self.fields.get("params")

    @property
    def params_total(self) -> int | None:
        return self.fields.get("params_total")

    @property
    def macs(self) -> int | None:
        return self.fields.get("macs")

    @property
    def fps(self) -> float | None:
        return self.fields.get("fps")

    @property
    def peak_mem_mb(self) -> float | None:
        return self.fields.get("peak_mem_mb")

    @property
    def samples(self) -> list[float]:
        return self.fields.get("latency_samples_ms") or []

    def to_dict(self) -> dict:
        return {
            **super().to_dict(),
            "group": self.group,
            **self.execution.to_fields(),
            "latency_ms": self.latency.to_dict() if self.latency else None,
        }


_BENCH_CHECKS = {
    "group": (_text, "a group name"),
    "params": (_count, "a parameter count"),
    "params_total": (_count, "a parameter count"),
    "macs": (_count, "a count of multiply-adds"),
    "macs_flop_counter": (_count, "a count of multiply-adds"),
    "macs_unsupported_ops": (_counts, "{op: count}"),
    "flop_counter_uncounted_ops": (_counts, "{op: count}"),
    "macs_coverage": (_numbers_or_null, "{counter: share of ops}"),
    "macs_disagree": (lambda v: isinstance(v, bool), "true or false"),
    "latency_ms": (_object, "an object"),
    "latency_samples_ms": (_samples, "a list of non-negative ms"),
    "fps": (_positive, "a positive number"),
    "peak_mem_mb": (_number, "a number of MB"),
    "peak_mem_method": (lambda v: isinstance(v, str), "text"),
    "memory": (_object, "an object"),
    "hardware": (_object, "an object"),
    "roofline": (_object, "an object"),
    "agreement": (_object, "an object"),
    "compile_s": (_non_negative, "seconds"),
    "output_shape": (_shape, "a list of sizes"),
    "calibration": (_object, "an object"),
    "conditions": (_object, "an object"),
    "wall_s": (_non_negative, "seconds"),
    "shard": (lambda v: isinstance(v, str), "text like 1/2"),
}


_MEGABYTES = (_number, "a number of MB")
_NON_NEGATIVE = (_non_negative, "a non-negative number")
# Fields inside a record's objects that the report, `compare` and the export read (see `_check_inside`).
_INNER_CHECKS = {
    "bench": {
        "conditions": {
            "threads": (lambda v: _integer(v) and v >= 1, "a positive thread count"),
            "backend_details": (_object, "an object"),
        },
        "calibration": _CALIBRATION_CHECKS,
        "agreement": {
            "max_abs_diff": _NON_NEGATIVE,
            "reference_max_abs": _NON_NEGATIVE,
            "argmax_agreement_pct": (lambda v: _number(v) and 0 <= v <= 100, "a percentage"),
        },
        "roofline": {k: _NON_NEGATIVE for k in ("achieved_tflops", "fraction", "peak_tflops", "peak_gbps")},
        "hardware": {
            "throttled": (lambda v: isinstance(v, bool), "true or false"),
            "energy_j_per_image": _NON_NEGATIVE,
            "before": (_object, "an object"),
            "after": (_object, "an object"),
        },
        "memory": {
            **{k: _MEGABYTES for k in ("cpu_peak_rss_mb", "cuda_max_allocated_mb", "cuda_max_reserved_mb")},
            "nvml_used_mb": _MEGABYTES,
            "peak_mb_per_process": (_numbers, "a list of MB"),
        },
    },
    "eval": {
        "weights": {k: (lambda v: isinstance(v, str), "text") for k in ("source", "path", "sha256")},
        "cost": {
            "latency_ms_per_image": _NON_NEGATIVE,
            "macs_multiplier": _NON_NEGATIVE,
            "macs_whole": (_count, "a count of multiply-adds"),
            "macs_protocol": (_count, "a count of multiply-adds"),
            "threads": (_count, "a thread count"),
        },
        "conventions": {
            **{k: (_percent, "a percentage") for k in ("absent_excluded", "absent_as_1", "per_image_mean")},
            "headline": (lambda v: isinstance(v, str), "text"),
        },
    },
}


@dataclass(frozen=True)
class EvalRecord(Record):
    """One accuracy evaluation of a model on a dataset split."""

    kind = "eval"
    dataset: str = ""
    split: str = ""
    protocol: EvalProtocol = field(default_factory=EvalProtocol)

    @property
    def key(self) -> tuple:
        return ("eval", self.model, self.dataset, self.split, self.protocol.label(), self.weights_source)

    def label(self) -> str:
        return f"{self.model} {self.dataset}/{self.split} {self.protocol.label()}"

    @property
    def weights(self) -> dict:
        weights = self.fields.get("weights")
        return weights if isinstance(weights, dict) else {"source": weights}

    @property
    def weights_source(self) -> str | None:
        return self.weights.get("source")

    @property
    def miou(self) -> float | None:
        return self.fields.get("miou")

    @property
    def dataset_key(self) -> str:
        return dataset_key(self.dataset)

    def to_dict(self) -> dict:
        return {
            **super().to_dict(),
            "dataset": self.dataset,
            "split": self.split,
            "protocol": self.protocol.label(),
            "protocol_spec": self.protocol.to_dict(),
        }


_EVAL_CHECKS = {
    "dataset": (_text, "a dataset name"),
    "split": (_text, "a split name"),
    "protocol": (_text, "a protocol label"),
    "protocol_spec": (_object, "an object"),
    "miou": (_percent, "a percentage"),
    "acc": (_percent, "a percentage"),
    "macc": (_percent, "a percentage"),
    "per_class_iou": (lambda v: isinstance(v, dict) and all(map(_percent, v.values())), "{class: percent}"),
    "person_iou": (_percent, "a percentage"),
    "weights": (lambda v: isinstance(v, (dict, str)), "an object"),
    "n_images": (_count, "a count of images"),
    "pixels": (_count, "a count of pixels"),
    "cost": (_object, "an object"),
    "conventions": (_object, "an object"),
    "preprocess": (_object, "an object"),
}


@dataclass(frozen=True)
class StructureRecord(Record):
    """A model's structure at one input size and batch: params, MACs by both counters, output shape.
    Depends on the model's code (its `digest`) and the counters' versions, never on timing."""

    kind = "structure"
    input_hw: tuple[int, int] = (1, 1)
    batch: int = 1
    digest: str = ""

    @property
    def key(self) -> tuple:
        return ("structure", self.model, self.digest, tuple(self.input_hw), self.batch)

    def label(self) -> str:
        return f"{self.model} {self.input_hw[0]}x{self.input_hw[1]} b{self.batch} (structure {self.digest})"

    @property
    def macs(self) -> int | None:
        return self.fields.get("macs")

    def to_dict(self) -> dict:
        return {
            **super().to_dict(),
            "input_hw": list(self.input_hw),
            "batch": self.batch,
            "digest": self.digest,
        }


_STRUCTURE_CHECKS = {
    "digest": (_text, "a structure digest"),
    **{k: _BENCH_CHECKS[k] for k in ("params", "params_total", "macs", "macs_flop_counter")},
    **{k: _BENCH_CHECKS[k] for k in ("macs_unsupported_ops", "flop_counter_uncounted_ops", "output_shape")},
    "macs_coverage": (_numbers_or_null, "{counter: share of ops}"),
    "macs_disagree": (lambda v: isinstance(v, bool), "true or false"),
}

_KIND_CHECKS = {"bench": _BENCH_CHECKS, "eval": _EVAL_CHECKS, "structure": _STRUCTURE_CHECKS}


# ------------------------------------------------------------------------------------------- reading


def migrate(record: dict) -> dict:
    """A record of an older schema as the current one describes it (its values unchanged)."""
    version = record.get("schema_version")
    if version == 1:
        record = {"kind": "bench", **record}
    if record.get("kind") == "eval" and "protocol_spec" not in record and record.get("protocol") == "whole":
        record = {**record, "protocol_spec": {"name": "whole", "params": {}}}
    return record  # missing axes take their defaults in Execution.from_fields


def from_dict(record: Any) -> Record:
    """A typed record from a JSON object read from disk; RecordError names what is wrong."""
    if not isinstance(record, dict):
        raise RecordError("not a JSON object")
    version = record.get("schema_version")
    if type(version) is not int or version not in READABLE_SCHEMAS:  # not 3.0, not true (== 1)
        raise RecordError(f"schema_version {json.dumps(version)[:20]} is not one of {READABLE_SCHEMAS}")
    record = migrate(record)
    kind = record.get("kind", "bench")
    if kind not in KINDS:
        raise RecordError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
    for name, (ok, what) in _COMMON_CHECKS.items():
        _check(record, name, ok, what, optional=name == "error")
    if "error" not in record:
        raise RecordError("field 'error' is missing")
    for name, (ok, what) in _KIND_CHECKS[kind].items():
        _check(
            record, name, ok, what, optional=name not in ("group", "dataset", "split", "protocol", "digest")
        )
    for name, checks in _INNER_CHECKS.get(kind, {}).items():
        _check_inside(record, name, checks)
    common = {
        "model": record["model"],
        "status": record["status"],
        "error": record["error"],
        "env": Env.from_dict(record.get("env")),
        "schema_version": SCHEMA_VERSION,
    }
    if kind == "bench":
        return _bench(record, common)
    if kind == "eval":
        return _eval(record, common)
    return _structure(record, common)


_OWN = {"schema_version", "kind", "model", "status", "error", "env"}
# The fields each kind keeps typed, not in `fields` (sets built once: every record read goes through them).
_BENCH_OWN = _OWN | {"group", "input_hw", "latency_ms", *AXIS_NAMES}
_EVAL_OWN = _OWN | {"dataset", "split", "protocol", "protocol_spec"}
_STRUCTURE_OWN = _OWN | {"input_hw", "batch", "digest"}


def _execution(record: dict) -> Execution:
    _check(record, "input_hw", lambda v: _shape(v) and len(v) == 2 and min(v) >= 1, "[height, width]", False)
    _check(record, "batch", lambda v: _integer(v) and v >= 1, "a positive batch size")
    try:
        return Execution.from_fields(record).validate()
    except UsageError as exc:  # an axis value this version does not know, or an impossible combination
        raise RecordError(f"cell: {exc}") from None


def _bench(record: dict, common: dict) -> BenchRecord:
    execution = _execution(record)
    latency = record.get("latency_ms")
    rest = {k: v for k, v in record.items() if k not in _BENCH_OWN}
    return BenchRecord(
        **common,
        group=record["group"],
        execution=execution,
        latency=Latency.from_dict(latency) if latency else None,
        fields=rest,
    )


def _eval(record: dict, common: dict) -> EvalRecord:
    spec = record.get("protocol_spec") or {}
    try:
        protocol = EvalProtocol.from_dict(spec).validate()
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise RecordError(f"field 'protocol_spec' is malformed ({type(exc).__name__}: {exc})") from None
    rest = {k: v for k, v in record.items() if k not in _EVAL_OWN}
    return EvalRecord(
        **common, dataset=record["dataset"], split=record["split"], protocol=protocol, fields=rest
    )


def _structure(record: dict, common: dict) -> StructureRecord:
    execution = _execution(record)
    rest = {k: v for k, v in record.items() if k not in _STRUCTURE_OWN}
    return StructureRecord(
        **common, input_hw=execution.input_hw, batch=execution.batch, digest=record["digest"], fields=rest
    )


def parse_line(line: str) -> Record:
    """One line of a results file as a record; NaN and Infinity are not JSON numbers and are refused, and so
    are arrays nested past Python's recursion limit and text that is not Unicode (an unpaired surrogate)."""
    try:
        obj = _DECODER.decode(line)
    except ValueError as exc:
        raise RecordError(str(exc)) from None
    except RecursionError:
        raise RecordError("objects or arrays nested too deeply") from None
    if "\\ud" in line or "\\uD" in line:  # only a \u escape can make a surrogate: UTF-8 cannot hold one
        _check_unicode(obj, "")
    return from_dict(obj)


def _check_unicode(value, path: str) -> None:
    """RecordError naming the field whose text holds an unpaired surrogate (it cannot be written as UTF-8)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RecordError(f"field {path or 'key'!r} holds an unpaired surrogate, not text") from None
    elif isinstance(value, dict):
        for key, inner in value.items():
            _check_unicode(key, path)
            _check_unicode(inner, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _check_unicode(inner, f"{path}.{index}")


def _refuse_constant(name: str):
    raise RecordError(f"{name} is not a number a record may hold")


# One decoder for every line: json.loads with a hook builds a new one per call, which costs as much as the
# parse of a typical record.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


# ------------------------------------------------------------------------------------------- helpers


def latest_per_cell(records: list[Record]) -> list[Record]:
    """The newest record of each cell on each machine (older ones are history), in first-seen order."""
    latest: dict[tuple, Record] = {}
    for record in records:
        key = (record.machine, *record.key)
        if key not in latest or record.timestamp >= latest[key].timestamp:
            latest[key] = record
    return list(latest.values())


def of_kind(records: list[Record], kind: type[Record]) -> list:
    return [r for r in records if isinstance(r, kind)]
