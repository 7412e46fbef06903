"""Tables of measured numbers beside the papers' claims, and the Pareto sets that never mix conditions.

Every function here is pure: typed records (bench.records, as `reports.load` returns them) in, a pandas
DataFrame (or plain data) out. The DataFrames are what the page shows and what the CSV exports hold, so a
number on the page and in its CSV come from one place.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from bench import cards
from bench.comparability import claim_conditions
from bench.conditions import AXES, REFERENCE_MODEL, EvalProtocol, SpeedCondition, dataset_key, is_open
from bench.records import BenchRecord, EvalRecord, Latency, Record, StructureRecord, latest_per_cell, of_kind

MIN_POINTS = 2  # a set of one model has no frontier to show; such a set is named in a note instead


def bench_records(records: Iterable[Record]) -> list[BenchRecord]:
    return of_kind(list(records), BenchRecord)


def eval_records(records: Iterable[Record]) -> list[EvalRecord]:
    return of_kind(list(records), EvalRecord)


def structure_records(records: Iterable[Record]) -> list[StructureRecord]:
    return of_kind(list(records), StructureRecord)


# ---------------------------------------------------------------------------------------------- cards


@functools.cache
def _cards() -> dict:
    return cards.read()


def all_cards() -> dict:
    """name -> card, for every model of the exported cards (bench.cards)."""
    return _cards()


def card_or_none(name: str):
    """The model's card, from the exported cards (bench.cards); None for a model without one."""
    return _cards().get(name)


def paper_values(name: str, metric: str) -> tuple:
    """The card's claims of `metric` about this very network: a claim about another variant
    (`Reported.variant`, e.g. a ResNet-101 figure on a ResNet-50 entry) is never attached to its row."""
    card = card_or_none(name)
    return tuple(r for r in card.reported_values(metric) if not r.variant) if card else ()


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


def same_dataset(a, b) -> bool:
    """Whether two dataset names mean one dataset: the eval harness says "cityscapes", cards "Cityscapes"."""
    return bool(a) and bool(b) and dataset_key(a) == dataset_key(b)


@functools.cache
def _card_dataset_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for model in sorted(_cards()):
        for reported in _cards()[model].reported:
            if reported.dataset:
                names.setdefault(dataset_key(reported.dataset), reported.dataset)
    return names


def dataset_label(name) -> str:
    """A dataset's name as the cards spell it (so a measured "cityscapes" and a paper "Cityscapes" meet)."""
    return _card_dataset_names().get(dataset_key(name), str(name or ""))


def weights_source(record: EvalRecord) -> str:
    return str(record.weights_source or record.weights.get("path") or "")


def network_input(record: EvalRecord) -> tuple[int, int] | None:
    """The size the network saw in an evaluation: the resize of its preprocessing, else the image's (the
    size its protocol's cost was counted at); None where the record does not say."""
    resize = (record.get("preprocess") or {}).get("resize_hw")
    at = resize or (record.get("cost") or {}).get("macs_at_hw")
    return tuple(at) if at else None


# ---------------------------------------------------------------------------------------------- noise


def _round_to(value: float, step_digits: int) -> str:
    return f"{value:,.{max(step_digits, 0)}f}" if step_digits > 0 else f"{round(value, step_digits):,.0f}"


def _digits(half_width: float) -> int:
    """Decimals that keep two significant digits of the interval's half-width: 260 -> -1, 0.031 -> 3."""
    return 1 - math.floor(math.log10(half_width)) if half_width > 0 else 2


def interval_text(value: float, interval, n: int | None, unit: str = "") -> str:
    """'1,100 ± 260 ms, n=3': the value rounded to what its 95% interval supports (two significant digits
    of the half-width); 'n=..., no interval' where the record has none."""
    unit = f" {unit}" if unit else ""
    count = f", n={n}" if n is not None else ""
    if not interval:
        digits = 2 - math.floor(math.log10(abs(value))) if value else 2
        return f"{_round_to(value, digits)}{unit}{count}, no interval"
    half = max(value - interval[0], interval[1] - value)
    digits = _digits(half)
    half_text = _round_to(half, digits) if half > 0 else "0"
    return f"{_round_to(value, digits)} ± {half_text}{unit}{count}"


def latency_flag(latency: Latency | None) -> str:
    """Why a latency is flagged: its 95% interval missed the sweep's target (and what stopped sampling)."""
    if latency is None or latency.target_met is not False:
        return ""
    stop = f", stopped by {latency.stop_reason.replace('_', ' ')}" if latency.stop_reason else ""
    width = f" (±{latency.ci_rel:.1%})" if latency.ci_rel is not None else ""
    return f"missed its interval target{width}{stop}"


def fps_interval(record: BenchRecord) -> tuple[float, float] | None:
    ci = record.latency.ci95 if record.latency else None
    scale = record.execution.batch * 1000.0
    return (scale / ci[1], scale / ci[0]) if ci and ci[0] else None


def machine_checks(checks: Iterable[tuple[str, dict]]) -> dict[str, str]:
    """machine -> its self-checks' verdicts in one line ('timer agreement FAIL; repeatability PASS'),
    from the self-check documents (reports.selfcheck.find)."""
    names = {"timer_agreement": "timer agreement", "compare_runs": "repeatability"}
    found: dict[str, list[str]] = {}
    for _, doc in checks:
        if doc.get("mode") == "interval_calibration":
            spread = f"intervals calibrated across runs ({doc.get('tau_run', 0):.1%} run-to-run)"
            found.setdefault(str(doc.get("machine")), []).append(spread)
            continue
        machines = doc.get("machines") or [(doc.get("env") or {}).get("machine")]
        for machine in machines:
            verdict = f"{names.get(doc.get('mode'), doc.get('mode'))} {'PASS' if doc.get('pass') else 'FAIL'}"
            found.setdefault(str(machine), []).append(verdict)
    return {m: "; ".join(sorted(set(v))) for m, v in found.items()}


# ---------------------------------------------------------------------------------------- leaderboard


def measured_miou(records: Iterable[Record]) -> dict[str, EvalRecord]:
    """Per model, the one successful evaluation shown on the leaderboard.

    Not the best one (that would cherry-pick): the newest evaluation on the dataset of the card's first mIoU
    claim if there is one, else the newest on any dataset, ties broken by name so the choice is stable.
    """
    chosen: dict[str, tuple[EvalRecord, bool]] = {}
    for r in sorted(
        (r for r in latest_per_cell(eval_records(records)) if r.ok and r.miou is not None),
        key=lambda r: (r.timestamp, r.dataset, r.split, weights_source(r)),
    ):
        claim = _paper(r.model, "miou")
        preferred = claim is not None and same_dataset(claim.dataset, r.dataset)
        current = chosen.get(r.model)
        if current is None or preferred or not current[1]:
            chosen[r.model] = (r, preferred)
    return {model: r for model, (r, _) in chosen.items()}


def conditions_text(execution) -> str:
    """The non-default condition axes of an execution, e.g. 'onnxruntime, channels_last'."""
    parts = [execution.backend + (f"({execution.compile_mode})" if execution.compile_mode else "")]
    # The on/off axes that are on, named by their label in bench.conditions (one home for an axis's name).
    parts += [a.metadata["label"] for a in AXES if a.metadata["label"] and getattr(execution, a.name) is True]
    return ", ".join(parts)


def _speed_key(r: BenchRecord) -> tuple:
    """What must match for two latencies to be compared: everything but the model."""
    return r.speed_condition


def reference_latency(records: Iterable[Record]) -> dict[SpeedCondition, float]:
    """Median latency of REFERENCE_MODEL per speed condition (machine, device model, threads, execution)."""
    return {
        _speed_key(r): r.latency.median
        for r in latest_per_cell(bench_records(records))
        if r.model == REFERENCE_MODEL and r.ok and r.latency
    }


def _num(value, scale: float = 1.0):
    return value / scale if value is not None else None


def _hardware(r: BenchRecord) -> str | None:
    return r.env.gpu_name if r.execution.device != "cpu" else r.env.cpu


def leaderboard(records: Iterable[Record], checks: Iterable[tuple[str, dict]] = ()) -> pd.DataFrame:
    """One row per (machine, bench cell), newest record: measured numbers beside the card's paper numbers.
    Latency carries its 95% interval and n, flagged where the interval missed its target; each machine's
    self-check verdicts sit beside its rows (`checks`: reports.selfcheck.find)."""
    records = list(records)
    evals = measured_miou(records)
    refs = reference_latency(records)
    trust = machine_checks(checks)
    rows = []
    for r in latest_per_cell(bench_records(records)):
        lat, ex = r.latency, r.execution
        paper_params, paper_miou = _paper(r.model, "params"), _paper(r.model, "miou")
        ev = evals.get(r.model)
        ref = refs.get(_speed_key(r))
        rows.append(
            {
                "model": r.model,
                "group": r.group,
                "machine": r.machine,
                "hardware": _hardware(r),
                "self_checks": trust.get(str(r.machine), "none found"),
                "device": ex.device,
                "precision": ex.precision,
                "conditions": conditions_text(ex),
                "input": hw_text(ex.input_hw),
                "pixels": ex.input_hw[0] * ex.input_hw[1],
                "batch": ex.batch,
                "status": r.status,
                "error": r.error or "",
                "params_m": _num(r.params, 1e6),
                "paper_params_m": paper_params.value if paper_params else None,
                "paper_params_note": describe(paper_params),
                "gmacs": _num(r.macs, 1e9),
                "gflops": _num(r.macs, 0.5e9),
                "gmacs_flop_counter": _num(r.get("macs_flop_counter"), 1e9),
                "macs_disagree": r.get("macs_disagree"),
                "macs_unsupported": ", ".join(sorted(r.get("macs_unsupported_ops") or {})),
                "latency_p50_ms": lat.median if lat else None,
                "latency": interval_text(lat.median, lat.ci95, lat.n, "ms") if lat else "",
                "latency_ci_low_ms": lat.ci95[0] if lat and lat.ci95 else None,
                "latency_ci_high_ms": lat.ci95[1] if lat and lat.ci95 else None,
                "latency_n": lat.n if lat else None,
                "latency_flag": latency_flag(lat),
                "latency_p90_ms": lat.p90 if lat else None,
                "latency_p99_ms": lat.p99 if lat else None,
                "fps": r.fps,
                "fps_text": interval_text(r.fps, fps_interval(r), None) if r.fps and lat else "",
                "speed_vs_ref": ref / lat.median if ref and lat else None,
                "peak_mem_mb": r.peak_mem_mb,
                "peak_mem_method": r.get("peak_mem_method") or "",
                "miou": ev.miou if ev else None,
                "miou_dataset": " ".join(x for x in (dataset_label(ev.dataset), ev.split) if x) if ev else "",
                "miou_dataset_name": ev.dataset if ev else "",
                "miou_weights": weights_source(ev) if ev else "",
                "paper_miou": paper_miou.value if paper_miou else None,
                "paper_miou_note": describe(paper_miou),
                "paper_miou_dataset": " ".join(x for x in (paper_miou.dataset, paper_miou.split) if x)
                if paper_miou
                else "",
                "paper_miou_dataset_name": (paper_miou.dataset or "") if paper_miou else "",
                "threads": r.threads,
                "commit": r.env.commit_label,
                "timestamp": r.timestamp,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(
        ["group", "machine", "device", "precision", "conditions", "model", "pixels", "input", "batch"],
        kind="stable",
    ).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ Pareto sets


def pareto_mask(xs: Sequence[float], ys: Sequence[float]) -> list[bool]:
    """True where no other point is at least as good on both axes and better on one (lower is better)."""
    points = list(zip(xs, ys, strict=True))
    return [not any(ox <= x and oy <= y and (ox < x or oy < y) for ox, oy in points) for x, y in points]


@dataclass(frozen=True)
class ParetoSet:
    """One plot's points, all under one condition: `rows` has columns x, y, label, kind ("measured" or
    "paper"), model, and the `speed` and `accuracy` keys every row shares (what the tests check)."""

    rows: pd.DataFrame
    x: str
    y: str
    title: str
    xlabel: str
    ylabel: str
    y_higher_better: bool = False
    logy: bool = True


@dataclass(frozen=True)
class _Accuracy:
    """One kind of accuracy: measured (with its weights' source and the network's input) or the paper's."""

    kind: str  # "measured" or "paper"
    dataset: str
    split: str
    protocol: str
    weights: str = ""  # measured only
    input_hw: tuple[int, int] | None = None  # the network's input: where the latency must be measured

    def label(self) -> str:
        what = "paper mIoU" if self.kind == "paper" else "measured mIoU"
        extra = f", weights {self.weights}" if self.weights else ""
        return f"{what} ({dataset_label(self.dataset)} {self.split}, {self.protocol}{extra})"


def _measured_accuracy(records: list[Record]) -> list[tuple[_Accuracy, str, float]]:
    """(kind, model, mIoU) of each successful evaluation, one per model and kind (the newest)."""
    newest: dict[tuple, EvalRecord] = {}
    for r in sorted(latest_per_cell(eval_records(records)), key=lambda r: r.timestamp):
        if r.ok and r.miou is not None:
            key = _Accuracy(
                "measured", r.dataset_key, r.split, r.protocol.label(), weights_source(r), network_input(r)
            )
            newest[(key, r.model)] = r
    return [(key, model, r.miou) for (key, model), r in newest.items()]


def paper_accuracy(name: str) -> list[tuple[_Accuracy, float]]:
    """The card's own mIoU claims whose dataset, split and protocol are all stated (else the kind of
    accuracy is unknown and the claim is not plotted), first claim per kind."""
    out: dict[_Accuracy, float] = {}
    for claim in paper_values(name, "miou"):
        read = claim_conditions(claim)
        if any(is_open(v) for v in read.values()) or not claim.input_hw:
            continue
        protocol: EvalProtocol = read["protocol"]
        kind = _Accuracy("paper", read["dataset"], read["split"], protocol.label(), "", tuple(claim.input_hw))
        out.setdefault(kind, claim.value)
    return list(out.items())


def _speed_title(condition: SpeedCondition) -> str:
    threads = f" · {condition.threads} threads" if condition.threads else ""
    return (
        f"{condition.machine} · {condition.execution.label()} · {condition.device_model}{threads}"
        f" · torch {condition.backend_version}"
    )


def _model_params(records: list[Record]) -> dict[str, float]:
    """Each model's inference params (M), from its newest record that counts them."""
    found: dict[str, tuple[str, int]] = {}
    for r in records:
        params = None if isinstance(r, EvalRecord) or not r.ok else r.get("params")
        if params is not None and (r.model not in found or r.timestamp >= found[r.model][0]):
            found[r.model] = (r.timestamp, params)
    return {m: p / 1e6 for m, (_, p) in found.items()}


def _point(x, y, model: str, label: str, kind: str, speed=None, accuracy=None) -> dict:
    return {
        "x": x,
        "y": y,
        "model": model,
        "label": label,
        "kind": kind,
        "speed": speed,
        "accuracy": accuracy,
    }


def _keep(groups: dict, name, make, min_points: int) -> tuple[list[ParetoSet], list[str]]:
    """A ParetoSet (`make(key, frame)`) per group of points with at least `min_points` models; the names
    (`name(key)`) of the others."""
    sets, left_out = [], []
    for key in sorted(groups, key=name):
        points = groups[key]
        if len({p["model"] for p in points}) < min_points:
            left_out.append(name(key))
            continue
        frame = pd.DataFrame(points).sort_values(["model", "label"], kind="stable").reset_index(drop=True)
        sets.append(make(key, frame))
    return sets, left_out


def _accuracy_set(against: str, xlabel: str):
    def make(kind: _Accuracy, frame: pd.DataFrame) -> ParetoSet:
        return ParetoSet(
            frame, "x", "y", title=f"{kind.label()} vs {against}", xlabel=xlabel,
            ylabel=f"{kind.label().split(' (')[0]} (%)", y_higher_better=True, logy=False,
        )  # fmt: skip

    return make


def _macs_set(group: str, frame: pd.DataFrame) -> ParetoSet:
    return ParetoSet(
        frame,
        "x",
        "y",
        title=f"MACs vs latency · {group}",
        xlabel="median latency (ms)",
        ylabel="GMACs (fvcore)",
    )


def _speed_section(condition: SpeedCondition, cells: list[BenchRecord], measured, papers, min_points) -> dict:
    """The sets of one speed condition: mIoU (per kind of accuracy at this input) and MACs (per group)
    against latency."""
    hw = tuple(condition.execution.input_hw)
    accuracy: dict[_Accuracy, list[dict]] = {}
    macs: dict[str, list[dict]] = {}
    for r in cells:
        x, label = r.latency.median, f"{r.model} {hw_text(hw)}"
        mine = [(k, m, "measured") for k, model, m in measured if model == r.model]
        mine += [(k, m, "paper") for k, m in papers.get(r.model, ())]
        for kind, miou, source in mine:
            if kind.input_hw == hw:
                accuracy.setdefault(kind, []).append(_point(x, miou, r.model, label, source, condition, kind))
        if r.macs is not None:
            macs.setdefault(r.group, []).append(
                _point(x, r.macs / 1e9, r.model, r.model, "measured", condition)
            )
    sets, left_out = _keep(
        accuracy, _Accuracy.label, _accuracy_set("latency", "our median latency (ms)"), min_points
    )
    more, fewer = _keep(macs, lambda g: f"MACs of {g}", lambda g, f: _macs_set(g, f), min_points)
    return {"title": _speed_title(condition), "sets": sets + more, "left_out": left_out + fewer}


def pareto_sections(records: Iterable[Record], min_points: int = MIN_POINTS) -> list[dict]:
    """The index page's Pareto sets, each within one condition, grouped into sections:

        [{"title": section title, "sets": [ParetoSet], "left_out": [names of sets of too few models]}]

    One section per speed condition (machine, device model, threads, torch version, and the execution:
    input size, batch, device, precision, backend, flags): MACs against latency per model group, and mIoU
    against latency per kind of accuracy. A measured mIoU is set beside our latency at the input its
    evaluation ran the network at; a paper's mIoU (hollow, labelled the paper's) beside our latency at the
    claim's input size, only where its dataset, split and protocol are stated. A last section: mIoU against
    parameters, per kind of accuracy.
    """
    records = list(records)
    timed = [r for r in latest_per_cell(bench_records(records)) if r.ok and r.latency]
    measured = _measured_accuracy(records)
    papers = {m: paper_accuracy(m) for m in sorted({r.model for r in timed} | {m for _, m, _ in measured})}
    by_condition: dict[SpeedCondition, list[BenchRecord]] = {}
    for r in sorted(timed, key=lambda r: r.model):
        by_condition.setdefault(r.speed_condition, []).append(r)
    sections = [
        _speed_section(condition, by_condition[condition], measured, papers, min_points)
        for condition in sorted(by_condition, key=_speed_title)
    ]
    params = _model_params(records)
    by_kind: dict[_Accuracy, list[dict]] = {}
    mine = [(k, model, m, "measured") for k, model, m in measured]
    mine += [(k, model, m, "paper") for model, kinds in papers.items() for k, m in kinds]
    for kind, model, miou, source in mine:
        points = by_kind.setdefault(kind, [])
        if model in params:
            points.append(_point(params[model], miou, model, model, source, None, kind))
    sets, left_out = _keep(by_kind, _Accuracy.label, _accuracy_set("params", "parameters (M)"), min_points)
    if sets or left_out:
        sections.append({"title": "mIoU against parameters", "sets": sets, "left_out": left_out})
    return sections


# ------------------------------------------------------------------------------------------- history


def model_history(records: Iterable[Record], model: str) -> pd.DataFrame:
    """Every bench record of `model`, oldest first per cell, with the latency change from the previous one."""
    rows = []
    for r in bench_records(records):
        if r.model != model:
            continue
        lat, ex = r.latency, r.execution
        rows.append(
            {
                "machine": r.machine,
                "input": hw_text(ex.input_hw),
                "pixels": ex.input_hw[0] * ex.input_hw[1],
                "device": ex.device,
                "precision": ex.precision,
                "conditions": conditions_text(ex),
                "batch": ex.batch,
                "timestamp": r.timestamp,
                "commit": r.env.commit_label,
                "status": r.status,
                "error": r.error or "",
                "params_m": _num(r.params, 1e6),
                "gmacs": _num(r.macs, 1e9),
                "latency_p50_ms": lat.median if lat else None,
                "latency": interval_text(lat.median, lat.ci95, lat.n, "ms") if lat else "",
                "latency_flag": latency_flag(lat),
                "peak_mem_mb": r.peak_mem_mb,
                "source_file": r.source,
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
