"""Results as data: every record as one row of a pandas DataFrame, and its export to CSV or Parquet.

`load_results(paths)` reads results files or folders through `bench.store.load` (so every committed schema
version is read, migrated and validated exactly as the report and `compare` read it) and returns one row per
record: the cell's conditions, its statistics and its environment, each a column of `COLUMNS`. A column is
declared once, with its dtype, the kinds of record that fill it, its meaning and how it is read from a typed
record; the README's table of columns is `columns_markdown()` (a test keeps them equal). Every column is
present in every frame, empty (NA) where a record does not have it, so code written against one results set
runs on another. The raw latency samples are left out unless asked (`samples=True`).

Torch-free: `import segbench` and this module import neither torch nor the models.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench import intervals, store
from bench.conditions import AXES, ON_OFF_AXES
from bench.errors import UsageError
from bench.records import BenchRecord, EvalRecord, Record, StructureRecord, latest_per_cell

FORMATS = ("csv", "parquet")
SAMPLES = "latency_samples_ms"


STR, INT, FLOAT, BOOL, TIME = "string", "Int64", "float64", "boolean", "datetime64[ns, UTC]"
ALL, BENCH, EVAL, STRUCT = "all", "bench", "eval", "structure"
BENCH_STRUCT, BENCH_EVAL = "bench, structure", "bench, eval"
VERSIONS = ("python", "torch", "torchvision", "timm", "fvcore")


@dataclass(frozen=True)
class Column:
    """One column of the results frame: its name, pandas dtype, the kinds of record that fill it, its
    meaning, and where its value is: a path into the stored record ("latency_ms.median", "env.gpu.name": the
    record's JSON as `Record.to_dict` gives it, dots going into objects and list positions) or a function of
    the typed record. Missing anywhere on the way is NA."""

    name: str
    dtype: str
    kinds: str
    doc: str
    get: str | Callable[[Record], Any]

    def value(self, record: Record, stored: dict):
        if callable(self.get):
            return self.get(record)
        value = stored
        for part in self.get.split("."):
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        return value


def _speed(name: str) -> Callable[[Record], Any]:
    """A field of a bench record's SpeedCondition (what its latency depends on besides the cell)."""
    return lambda r: getattr(r.speed_condition, name) if isinstance(r, BenchRecord) else None


def _input_text(record: Record) -> str | None:
    hw = record.input_hw if isinstance(record, StructureRecord) else None
    hw = record.execution.input_hw if isinstance(record, BenchRecord) else hw
    return f"{hw[0]}x{hw[1]}" if hw else None


def _threads(record: Record) -> int | None:
    if isinstance(record, BenchRecord):
        return record.threads
    return (record.get("cost") or {}).get("threads") if isinstance(record, EvalRecord) else None


def _weights(key: str) -> Callable[[Record], Any]:
    return lambda r: r.weights.get(key) if isinstance(r, EvalRecord) else None


def _axis_column(axis) -> Column:
    """The column of an `Execution` axis, so that a new axis is a new column with no edit here."""
    meta, kinds = axis.metadata, {"batch": BENCH_STRUCT, "device": BENCH_EVAL}.get(axis.name, BENCH)
    if meta["choices"]:
        named = meta["help"] == " or ".join(meta["choices"])
        doc = meta["help"] if named else f"{meta['help']}; one of {', '.join(meta['choices'])}"
        return Column(axis.name, STR, kinds, doc, axis.name)
    if axis.name in ON_OFF_AXES:
        found = "empty: as torch found it" + (", or a cpu cell" if meta["cuda"] else "")
        return Column(axis.name, BOOL, kinds, f"{meta['help']} ({found})", axis.name)
    return Column(axis.name, INT, kinds, meta["help"], axis.name)


# fmt: off
COLUMNS: tuple[Column, ...] = (
    # ------------------------------------------------------------------------------- what the record is
    Column("kind", STR, ALL, "bench (a timed cell), eval (accuracy) or structure", "kind"),
    Column("model", STR, ALL, "zoo id or library spec (smp:Unet:resnet34)", "model"),
    Column("group", STR, BENCH, "backbone, portrait, realtime, semantic or external", "group"),
    Column("status", STR, ALL, "ok, error, oom, timeout or crashed; only ok has numbers", "status"),
    Column("error", STR, ALL, "why a record that is not ok failed (one line)", "error"),
    # ------------------------------------------------------------------------------- the cell's conditions
    Column("input_hw", STR, BENCH_STRUCT, "input size HEIGHTxWIDTH, e.g. 512x1024", _input_text),
    Column("height", INT, BENCH_STRUCT, "input height (px)", "input_hw.0"),
    Column("width", INT, BENCH_STRUCT, "input width (px)", "input_hw.1"),
    *(_axis_column(axis) for axis in AXES),
    Column("machine", STR, ALL, "machine name (`segbench.machine()`: this one's)", "env.machine"),
    Column("device_model", STR, BENCH, "GPU name on cuda, CPU model on cpu", _speed("device_model")),
    Column("backend_version", STR, BENCH, "torch's version, or ONNX Runtime's", _speed("backend_version")),
    Column("threads", INT, BENCH_EVAL, "CPU threads torch (or ONNX Runtime) used", _threads),
    Column("shard", STR, BENCH, "I/N: the shard of a split sweep that measured it", "shard"),
    Column("dataset", STR, EVAL, "camvid, cityscapes, ade20k, voc2012, portrait ...", "dataset"),
    Column("split", STR, EVAL, "dataset split (val, test ...)", "split"),
    Column("protocol", STR, EVAL, "whole, slide(crop=..., stride=...), msflip(...)", "protocol"),
    Column("weights_source", STR, EVAL, "authors, trained here or random init", _weights("source")),
    Column("weights_path", STR, EVAL, "the checkpoint evaluated, as given", _weights("path")),
    # ------------------------------------------------------------------------------- statistics
    Column("latency_ms", FLOAT, BENCH, "median latency of one batch forward (ms)", "latency_ms.median"),
    Column("latency_ci_low", FLOAT, BENCH, "95% interval of the median: low end (ms)", "latency_ms.ci95.0"),
    Column("latency_ci_high", FLOAT, BENCH, "95% interval of the median: high end (ms)", "latency_ms.ci95.1"),
    Column("latency_ci_rel", FLOAT, BENCH, "the interval's largest half-width / median", "latency_ms.ci_rel"),
    Column("latency_run_spread", FLOAT, BENCH, "the machine's run-to-run spread the interval is widened by "
           "(`segbench calibrate-intervals`); empty: as recorded in one sweep",
           "latency_ms.calibration.tau_run"),
    Column("latency_n", INT, BENCH, "timed calls (samples)", "latency_ms.n"),
    Column("latency_p10", FLOAT, BENCH, "10th percentile (ms)", "latency_ms.p10"),
    Column("latency_p90", FLOAT, BENCH, "90th percentile (ms)", "latency_ms.p90"),
    Column("latency_p99", FLOAT, BENCH, "99th percentile (ms)", "latency_ms.p99"),
    Column("latency_mean", FLOAT, BENCH, "mean (ms)", "latency_ms.mean"),
    Column("latency_std", FLOAT, BENCH, "standard deviation (ms)", "latency_ms.std"),
    Column("latency_min", FLOAT, BENCH, "fastest call (ms)", "latency_ms.min"),
    Column("latency_max", FLOAT, BENCH, "slowest call (ms)", "latency_ms.max"),
    Column("latency_target_met", BOOL, BENCH, "the interval reached its 1% target", "latency_ms.target_met"),
    Column("latency_stop_reason", STR, BENCH, "why sampling stopped (ci_target...)",
           "latency_ms.stop_reason"),
    Column("fps", FLOAT, BENCH, "batch x 1000 / median ms (images per second)", "fps"),
    Column("params", INT, BENCH_STRUCT, "parameters that run at inference", "params"),
    Column("params_total", INT, BENCH_STRUCT, "parameters with training-only heads", "params_total"),
    Column("macs", INT, BENCH_STRUCT, "multiply-adds of a forward, fvcore (FLOPs = 2 x macs)", "macs"),
    Column("macs_flop_counter", INT, BENCH_STRUCT, "torch's flop counter: FLOPs / 2", "macs_flop_counter"),
    Column("macs_coverage", FLOAT, BENCH_STRUCT, "share of ops fvcore counts", "macs_coverage.fvcore"),
    Column("macs_disagree", BOOL, BENCH_STRUCT, "the two MAC counters differ by over 5%", "macs_disagree"),
    Column("peak_mem_mb", FLOAT, BENCH, "peak memory (MB), as peak_mem_method says", "peak_mem_mb"),
    Column("peak_mem_method", STR, BENCH, "how peak_mem_mb was measured", "peak_mem_method"),
    Column("compile_s", FLOAT, BENCH, "compile or export time (s), outside latency", "compile_s"),
    Column("agreement_max_abs_diff", FLOAT, BENCH, "largest logit difference from eager fp32",
           "agreement.max_abs_diff"),
    Column("agreement_argmax_pct", FLOAT, BENCH, "pixels of eager fp32's class (%)",
           "agreement.argmax_agreement_pct"),
    Column("achieved_tflops", FLOAT, BENCH, "2 x macs / latency (TFLOP/s)", "roofline.achieved_tflops"),
    Column("roofline_fraction", FLOAT, BENCH, "achieved / measured peak", "roofline.fraction"),
    Column("throttled", BOOL, BENCH, "the GPU reported a throttle reason in the cell", "hardware.throttled"),
    Column("energy_j_per_image", FLOAT, BENCH, "GPU energy per image (J), where counted",
           "hardware.energy_j_per_image"),
    Column("wall_s", FLOAT, BENCH, "the cell's wall time, worker start to record (s)", "wall_s"),
    Column("miou", FLOAT, EVAL, "mean IoU (%), classes absent from prediction and truth excluded", "miou"),
    Column("acc", FLOAT, EVAL, "pixel accuracy, aAcc (%)", "acc"),
    Column("macc", FLOAT, EVAL, "mean class accuracy (%)", "macc"),
    Column("person_iou", FLOAT, EVAL, "person IoU (%), portrait datasets", "person_iou"),
    Column("n_images", INT, EVAL, "images evaluated", "n_images"),
    Column("eval_ms_per_image", FLOAT, EVAL, "protocol time per image (ms)", "cost.latency_ms_per_image"),
    Column("eval_macs_multiplier", FLOAT, EVAL, "protocol MACs / one forward's", "cost.macs_multiplier"),
    Column("digest", STR, STRUCT, "digest of the model structure counted", "digest"),
    # ------------------------------------------------------------------------------- environment
    Column("timestamp", TIME, ALL, "when the run started (UTC)", lambda r: r.timestamp or None),
    Column("git_commit", STR, ALL, "SegBench commit that measured it", "env.git_commit"),
    Column("git_dirty", BOOL, ALL, "the checkout had uncommitted changes", "env.git_dirty"),
    Column("segbench_version", STR, ALL, "SegBench's package version", "env.segbench"),
    *(Column(name, STR, ALL, f"{name} version", f"env.{name}") for name in VERSIONS),
    Column("cuda", STR, ALL, "CUDA version torch was built with", "env.cuda"),
    Column("cudnn", INT, ALL, "cuDNN version", "env.cudnn"),
    Column("os", STR, ALL, "operating system", "env.os"),
    Column("cpu", STR, ALL, "CPU model", "env.cpu"),
    Column("cpu_count", INT, ALL, "CPUs the process could use", "env.cpu_count"),
    Column("gpu", STR, ALL, "GPU name (NVML); empty on cpu runs", "env.gpu.name"),
    Column("gpu_driver", STR, ALL, "GPU driver version", "env.gpu.driver"),
    Column("gpu_memory_mb", INT, ALL, "GPU memory (MB)", "env.gpu.memory_total_mb"),
    Column("calibration_ms", FLOAT, BENCH, "the run's calibration workload: median (ms)",
           "env.calibration.workload.median_ms"),
    Column("source", STR, ALL, "the results file the record was read from", lambda r: r.source),
)
# fmt: on

SAMPLES_COLUMN = Column(SAMPLES, "object", BENCH, "every timed call (ms); with samples=True only", SAMPLES)


def _series(column: Column, values: list) -> pd.Series:
    if column.dtype == TIME:
        return pd.to_datetime(pd.Series(values, dtype=object), utc=True, format="ISO8601").astype(TIME)
    if column.dtype == STR:
        values = [None if v is None else str(v) for v in values]
    return pd.Series(values, dtype=column.dtype)


def _frame(records: list[Record], columns: tuple[Column, ...]) -> pd.DataFrame:
    stored = [r.to_dict() for r in records]
    return pd.DataFrame(
        {c.name: _series(c, [c.value(r, d) for r, d in zip(records, stored, strict=True)]) for c in columns},
        columns=[c.name for c in columns],
    )


def load_results(
    paths: Path | str | Iterable[Path | str], samples: bool = False, latest: bool = False
) -> pd.DataFrame:
    """Every record under `paths` (results files or folders; a folder is searched for *.jsonl) as one row
    of a DataFrame with the columns of `COLUMNS` (the README's "Results as data" table), in file order.

    Every committed schema version is read (bench.records migrates them). A bad line raises
    bench.errors.UsageError naming the file, the line and the field; files in a folder that are another
    tool's JSON Lines (a training log) are skipped. `samples=True` adds `latency_samples_ms`, the list of
    every timed call of a bench record. History is kept (a cell measured in several runs has a row per run)
    unless `latest=True`, which keeps the newest record of each cell on each machine, as the report's
    leaderboard does (bench.records.latest_per_cell). Latency intervals are those the report and `segbench
    compare` use: widened by the machine's run-to-run spread where a folder read holds an interval
    calibration for it (bench.intervals; `latency_run_spread` says by how much).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    calibrations = intervals.find(paths)
    records = [intervals.calibrated(r, calibrations) for r in store.load(paths)[0]]
    if latest:
        records = latest_per_cell(records)
    return _frame(records, COLUMNS + ((SAMPLES_COLUMN,) if samples else ()))


def columns_markdown() -> str:
    """The table of columns, as the README shows it."""
    rows = ["| column | type | records | meaning |", "|---|---|---|---|"]
    for column in (*COLUMNS, SAMPLES_COLUMN):
        dtype = {"object": "list of float", "datetime64[ns, UTC]": "datetime (UTC)"}.get(
            column.dtype, column.dtype
        )
        rows.append(f"| `{column.name}` | {dtype} | {column.kinds} | {column.doc} |")
    return "\n".join(rows) + "\n"


# -------------------------------------------------------------------------------------------- export

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP: CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_safe(value):
    """A text cell a spreadsheet shows as text: one that would start a formula gets a leading apostrophe
    (OWASP's advice); a number written as text (-1.5) and every other value are returned as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_cell(value):
    """A value as the CSV writer takes it: text through `csv_safe`, numbers and booleans as they are, a
    missing value (None, NaN, NA) empty, a list as a JSON array, a numpy scalar as its Python value."""
    kind = type(value)
    if kind is str:
        return csv_safe(value)
    if kind is int or kind is bool:
        return value
    if kind is float:
        return "" if value != value else value
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if kind is list:
        return csv_safe(json.dumps(value))
    if hasattr(value, "item") and not isinstance(value, pd.Timestamp):  # a numpy scalar
        return csv_cell(value.item())
    return csv_safe(str(value))


def to_csv(frame: pd.DataFrame) -> str:
    """The frame as CSV that is safe to open in a spreadsheet: every text cell quoted (a carriage return in
    it cannot start a row) and passed through `csv_safe`; numbers as they are, a missing value empty; lists
    (samples) as JSON arrays. The one CSV writer: `segbench export` and the report's CSVs."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([str(c) for c in frame.columns])
    writer.writerows([csv_cell(v) for v in row] for row in frame.itertuples(index=False, name=None))
    return buffer.getvalue()


def check_format(fmt: str) -> None:
    """UsageError (one line) unless `fmt` can be written here: a known format, and pyarrow for Parquet."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError("--format parquet needs pyarrow: pip install 'segbench[parquet]'") from None


def export(frame: pd.DataFrame, out: Path | str, fmt: str = "csv") -> None:
    """Write `frame` to `out` as CSV (text cells neutralised, `csv_safe`) or Parquet, whole or not at all."""
    check_format(fmt)
    if fmt == "csv":
        data: str | bytes = to_csv(frame)
    else:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, engine="pyarrow", index=False)
        data = buffer.getvalue()
    store.write_atomic(Path(out), data)
