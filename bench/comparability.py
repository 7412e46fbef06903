"""Whether a paper's claim and our measurement may stand side by side, and what follows: a table of rules.

One `Rule` per metric says which conditions must match, which may be converted and how, and the tolerance
within which a claim counts as reproduced; `assess(claim, card, evidence)` applies it and gives the claim
exactly one verdict:

- reproduced: a measurement under the claim's conditions lies within the rule's tolerance;
- differs: such a measurement lies outside it (the delta, with our interval);
- not comparable: the claim's conditions are open (the card leaves one unstated, or states one SegBench
  cannot set), or no measurement of ours matches them (the conditions that differ, and the `segbench`
  command that would measure it where one can);
- not measured: SegBench has no measurement of this metric for this model (and the command that would).

The claim's conditions are read from its card through bench.conditions (`claim_*`), ours from the typed
records. A claim about another network (`Reported.variant`) is never compared. Nothing here picks the
*closest* measurement to stand in for a comparable one: the closest is named only to say what differs.

Pure Python, no torch: the report imports it.
"""

from __future__ import annotations

import decimal
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench.conditions import (
    PRECISIONS,
    REFERENCE_MODEL,
    ClaimBackend,
    ClaimDevice,
    EvalProtocol,
    FlopConvention,
    NoEquivalent,
    NotStated,
    UnreadableCondition,
    claim_backend,
    claim_dataset,
    claim_device,
    claim_flop_convention,
    claim_precision,
    claim_protocol,
    claim_split,
    is_open,
)
from bench.eval.datasets import DATASETS
from bench.records import BenchRecord, EvalRecord, Record, StructureRecord

if TYPE_CHECKING:
    from zoo.card import ModelCard, Reported

VERDICTS = ("reproduced", "differs", "not comparable", "not measured")
MACS_RTOL = 0.05  # MAC counters agree within 0.3-6% (METHODS b.3); records flag a >5% gap (macs_disagree)
MIOU_ATOL = 0.5  # points: `segbench compare`'s default --miou-tol
SPEED_RTOL = 0.10  # `segbench compare`'s default --latency-threshold


@dataclass(frozen=True)
class Evidence:
    """Our records of one model (newest per cell, every machine), and the reference model's bench records
    and card, for speed ratios."""

    bench: tuple[BenchRecord, ...] = ()
    evals: tuple[EvalRecord, ...] = ()
    structure: tuple[StructureRecord, ...] = ()
    reference_bench: tuple[BenchRecord, ...] = ()
    reference_card: ModelCard | None = None


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict. `paper` is the claim in the unit compared (after conversion), `ours` our number
    with its 95% `interval` and sample count `n` (None for exact counts); `delta` = ours - paper (points for
    mIoU) and `delta_rel` = ours / paper - 1; `differs` names each condition that differs or is open;
    `command` would measure the claim ("" where no segbench command can); `record` is the measurement
    compared, or for a claim not comparable the nearest one (what `differs` is about)."""

    model: str
    claim: Reported
    verdict: str
    unit: str
    paper: float | None = None
    ours: float | None = None
    interval: tuple[float, float] | None = None
    n: int | None = None
    delta: float | None = None
    delta_rel: float | None = None
    differs: tuple[str, ...] = ()
    command: str = ""
    note: str = ""
    record: Record | None = None
    ours_vs_ref: float | None = None  # across devices: our speed / the reference model's, same conditions
    paper_vs_ref: float | None = None  # the paper's, from the same table
    ratio_condition: str = ""

    @property
    def variant(self) -> bool:
        return bool(self.claim.variant)


@dataclass(frozen=True)
class Rule:
    """How one metric's claims are compared: conditions that must match, what is converted and how, the
    tolerance for "reproduced" (as text for the ledger, and `assess` applying all of it)."""

    metrics: tuple[str, ...]
    must_match: tuple[str, ...]
    converted: str
    tolerance: str
    assess: Callable[..., Verdict] = field(repr=False, compare=False)


# ------------------------------------------------------------------------------------------- helpers


def _hw(hw) -> str:
    return f"{hw[0]}x{hw[1]}" if hw else "not stated"


def _half_unit(value: float) -> float:
    """Half a unit in the last digit the card states: 0.37 -> 0.005 (what its rounding allows)."""
    exponent = decimal.Decimal(repr(float(value))).normalize().as_tuple().exponent
    return 0.5 * 10.0 ** min(int(exponent), 0)


def _newest(records):
    return max(records, key=lambda r: (r.timestamp, r.machine or "", r.source), default=None)


def _verdict(model, claim, unit, paper, ours, within: bool, **more) -> Verdict:
    return Verdict(
        model=model, claim=claim, verdict="reproduced" if within else "differs", unit=unit, paper=paper,
        ours=ours, delta=ours - paper, delta_rel=ours / paper - 1 if paper else None, **more,
    )  # fmt: skip


def _open(model, claim, unit, reasons: list[str], command: str = "", note: str = "", paper=None) -> Verdict:
    return Verdict(
        model, claim, "not comparable", unit, paper=paper, differs=tuple(reasons), command=command, note=note
    )


# The card fields each metric's rule reads, and how (bench.conditions).
READERS: dict[str, dict[str, Callable]] = {
    "miou": {"dataset": claim_dataset, "split": claim_split, "protocol": claim_protocol},
    "fps": {"device": claim_device, "backend": claim_backend, "precision": claim_precision},
    "macs": {"convention": lambda text: claim_flop_convention("macs", text)},
    "flops": {"convention": lambda text: claim_flop_convention("flops", text)},
}
READERS["latency_ms"] = READERS["fps"]


def claim_conditions(claim: Reported, strict: bool = False) -> dict:
    """The claim's conditions that its rule reads, each a value or open (NotStated / NoEquivalent).
    Text no rule recognises raises UnreadableCondition when `strict` (the test over every committed card),
    else reads as NotStated (a new card's new wording must not stop the report)."""
    out = {}
    for name, read in READERS.get(claim.metric, {}).items():
        try:
            out[name] = read(getattr(claim, name))
        except UnreadableCondition as exc:
            if strict:
                raise UnreadableCondition(f"{claim.metric} claim ({claim.source}): {exc}") from None
            out[name] = NotStated(f"unreadable {exc}")
    return out


def _phrase(name: str, value) -> str:
    """'protocol not stated (the card says ...)', 'backend: no SegBench equivalent (...)'."""
    if isinstance(value, NotStated):
        return f"{name} not stated ({value.reason})"
    return f"{name}: no SegBench equivalent ({value.reason})"


def _q(text: str) -> str:
    return shlex.quote(str(text))


# ---------------------------------------------------------------------------------------------- params


def _assess_params(model: str, claim: Reported, card: ModelCard, ev: Evidence) -> Verdict:
    with_heads = card.params_counts_aux_heads
    name = "params_total" if with_heads else "params"
    counts = [r for r in (*ev.structure, *ev.bench) if r.ok and r.get(name) is not None]
    convention = "with training-only heads" if with_heads else "without training-only heads"
    if not counts:
        return Verdict(
            model, claim, "not measured", "M", paper=claim.value,
            command=f"segbench structure --models {_q(model)}", note=f"counted {convention} (card)",
        )  # fmt: skip
    record = _newest(counts)
    ours = record.get(name) / 1e6
    tolerance = _half_unit(claim.value)
    return _verdict(
        model, claim, "M", claim.value, ours, abs(ours - claim.value) <= tolerance + 1e-12, record=record,
        note=f"{name}: counted {convention}, as the card's figure is",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------- MACs, FLOPs


def _assess_macs(model: str, claim: Reported, card: ModelCard, ev: Evidence) -> Verdict:
    convention = claim_conditions(claim)["convention"]
    reasons = []
    if is_open(convention):
        reasons.append(_phrase("FLOPs convention", convention))
    if not claim.input_hw:
        reasons.append("input size not stated")
    if reasons:
        return _open(model, claim, "GMACs", reasons, note="a count at an unstated size or unit is no claim")
    assert isinstance(convention, FlopConvention)
    paper = convention.to_gmacs(claim.value)
    counter = "macs" if convention.scope == "all" else "macs_flop_counter"
    ours = (
        "fvcore (macs)"
        if counter == "macs"
        else "torch.utils.flop_counter, conv and linear (macs_flop_counter)"
    )
    note = f"paper's {convention.label()} as 1e9 multiply-adds; ours: {ours}"
    command = f"segbench structure --models {_q(model)} --resolutions {_hw(claim.input_hw)}"
    at_size = [r for r in ev.structure if tuple(r.input_hw) == tuple(claim.input_hw) and r.batch == 1]
    here = [r for r in at_size if r.ok and r.get(counter) is not None]
    if not here:
        elsewhere = [r for r in ev.structure if r.ok and r.get(counter) is not None]
        if at_size or not elsewhere:  # never counted, or counted at this size without a result
            failed = _newest(at_size)
            why = "" if failed is None else f"; our count there: {failed.error or f'no {counter}'}"
            return Verdict(
                model, claim, "not measured", "GMACs", paper=paper, command=command, note=note + why
            )
        sizes = sorted({_hw(r.input_hw) + (f" b{r.batch}" if r.batch != 1 else "") for r in elsewhere})
        return _open(
            model, claim, "GMACs",
            [f"input size: ours {', '.join(sizes)} vs paper {_hw(claim.input_hw)} (MACs are never scaled)"],
            command=command, note=note, paper=paper,
        )  # fmt: skip
    record = _newest(here)
    ours = record.get(counter) / 1e9
    within = abs(ours / paper - 1) <= MACS_RTOL or abs(ours - paper) <= convention.to_gmacs(
        _half_unit(claim.value)
    )
    return _verdict(model, claim, "GMACs", paper, ours, within, record=record, note=note)


# ------------------------------------------------------------------------------------------------ mIoU


def _eval_args(protocol: EvalProtocol) -> str:
    if protocol.name == "slide":
        return f"--protocol slide --crop {_hw(protocol.crop)} --stride {_hw(protocol.stride)}"
    if protocol.name == "msflip":
        flip = "" if protocol.flip else " --no-flip"
        return f"--protocol msflip --scales {','.join(f'{s:g}' for s in protocol.scales)}{flip}"
    return "--protocol whole"


def _eval_differences(record: EvalRecord, dataset: str, split: str, protocol: EvalProtocol) -> list[str]:
    out = []
    if record.dataset_key != dataset:
        out.append(f"dataset: ours {record.dataset} vs paper {dataset}")
    if record.split != split:
        out.append(f"split: ours {record.split} vs paper {split}")
    if record.protocol != protocol:
        out.append(f"protocol: ours {record.protocol.label()} vs paper {protocol.label()}")
    resize = (record.get("preprocess") or {}).get("resize_hw")
    if resize:
        out.append(f"input: ours resized to {_hw(resize)} vs paper the image itself")
    return out


def _assess_miou(model: str, claim: Reported, card: ModelCard, ev: Evidence) -> Verdict:
    read = claim_conditions(claim)
    dataset, split, protocol = read["dataset"], read["split"], read["protocol"]
    opened = [(n, v) for n, v in read.items() if is_open(v)]
    if opened:
        unsettable = any(isinstance(v, NoEquivalent) for _, v in opened)
        return _open(
            model, claim, "%", [_phrase(n, v) for n, v in opened],
            note="no segbench eval can run this protocol" if unsettable else "the card leaves it open",
        )  # fmt: skip
    command = ""
    if dataset in DATASETS and dataset != "portrait":
        command = (
            f"segbench eval --model {_q(model)} --dataset {dataset} --split {split} {_eval_args(protocol)} "
            f"--checkpoint <authors' checkpoint> --weights-source authors --data-root <{dataset} folder>"
        )
    note = "" if command else f"segbench eval has no {claim.dataset} dataset of its own"
    authors = [r for r in ev.evals if r.ok and r.miou is not None and r.weights_source == "authors"]
    if not authors:
        trained = any(r.weights_source == "trained here" for r in ev.evals)
        why = "no evaluation with the authors' weights"
        if trained:
            why += " (evaluations of weights trained here are reported apart, never against a paper)"
        note = "; ".join(x for x in (why, note) if x)
        return Verdict(model, claim, "not measured", "%", paper=claim.value, command=command, note=note)
    ranked = sorted(authors, key=lambda r: (len(_eval_differences(r, dataset, split, protocol)), r.timestamp))
    matching = [r for r in ranked if not _eval_differences(r, dataset, split, protocol)]
    if not matching:
        nearest = ranked[0]
        return Verdict(
            model, claim, "not comparable", "%", paper=claim.value, record=nearest, command=command,
            note=note, differs=tuple(_eval_differences(nearest, dataset, split, protocol)),
        )  # fmt: skip
    record = _newest(matching)
    return _verdict(
        model, claim, "%", claim.value, record.miou, abs(record.miou - claim.value) <= MIOU_ATOL,
        record=record, note="authors' weights; mIoU has no sampling interval (one pass over the split)",
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------- speed


@dataclass(frozen=True)
class _SpeedClaim:
    device: ClaimDevice
    backend: ClaimBackend
    precision: str
    input_hw: tuple[int, int]


def _read_speed(claim: Reported) -> _SpeedClaim | list[str]:
    """The claim's speed conditions, or the reasons it cannot be compared (each open condition)."""
    read = claim_conditions(claim)
    device, backend, precision = read["device"], read["backend"], read["precision"]
    reasons = [_phrase(n, v) for n, v in (("device", device), ("backend", backend), ("precision", precision))
               if is_open(v)]  # fmt: skip
    if not claim.input_hw:
        reasons.append("input size not stated")
    if reasons:
        return reasons
    if device.kind == "cpu" and device.threads is None:
        return ["threads not stated (a CPU figure depends on them)"]
    return _SpeedClaim(device, backend, precision, tuple(claim.input_hw))


def _speed_command(model: str, want: _SpeedClaim) -> tuple[str, str]:
    """The `segbench run` that measures the claim, and a note; ("", why) where segbench cannot (a backend
    it lacks: the note then names the nearest run it can make, which does not measure the claim)."""
    if want.precision not in PRECISIONS:
        return "", f"segbench runs no {want.precision}"
    if want.device.kind not in ("cuda", "cpu"):
        return "", f"segbench runs on NVIDIA GPUs and CPUs, not on {want.device.name}"
    parts = ["segbench run", f"--models {_q(model)}", f"--device {want.device.kind}",
             f"--precision {want.precision}", f"--resolutions {_hw(want.input_hw)}"]  # fmt: skip
    if want.backend.segbench not in (None, "eager"):
        parts.append(f"--backend {want.backend.segbench}")
    if want.device.kind == "cpu":
        parts.append(f"--threads {want.device.threads}")
    command = " ".join(parts)
    if want.backend.segbench is None:
        return "", (
            f"segbench has no {want.backend.label()} backend; the nearest it measures (PyTorch eager, not "
            f"the claim): {command} on a {want.device.name}"
        )
    return command, f"on a {want.device.name}"


def _speed_differences(record: BenchRecord, want: _SpeedClaim) -> list[str]:
    ex, speed = record.execution, record.speed_condition
    out = []
    if not want.device.matches(speed.device_model):
        out.append(f"device model: ours {speed.device_model or ex.device} vs paper {want.device.name}")
    if ex.backend != want.backend.segbench:
        out.append(f"backend: ours {ex.backend} vs paper {want.backend.label()}")
    if ex.precision != want.precision:
        out.append(f"precision: ours {ex.precision} vs paper {want.precision}")
    if tuple(ex.input_hw) != want.input_hw:
        out.append(f"input size: ours {_hw(ex.input_hw)} vs paper {_hw(want.input_hw)}")
    if ex.batch != 1:
        out.append(f"batch: ours {ex.batch} vs paper 1")
    if want.device.kind == "cpu" and speed.threads != want.device.threads:
        out.append(f"threads: ours {speed.threads} vs paper {want.device.threads}")
    return out


def _speed_value(record: BenchRecord, metric: str) -> tuple[float, tuple[float, float] | None]:
    """(value, 95% interval) of a record in the claim's metric: FPS = batch x 1000 / latency."""
    latency = record.latency
    if metric == "latency_ms":
        return latency.median, latency.ci95
    scale = record.execution.batch * 1000.0
    ci = latency.ci95
    return scale / latency.median, (scale / ci[1], scale / ci[0]) if ci and ci[0] else None


_SAME_TABLE = ("device", "backend", "precision", "input_hw")


def _paper_ratio(claim: Reported, card: ModelCard, ref_card: ModelCard | None) -> float | None:
    """The claim over the reference model's number from the same paper and table, measured under the same
    conditions (device, backend, precision, input); None where the paper has no such number."""
    if ref_card is None or card.name == REFERENCE_MODEL:
        return None
    for ref in ref_card.reported_values(claim.metric):
        same_table = ref_card.paper == card.paper and ref.source == claim.source
        same = all(getattr(ref, k) == getattr(claim, k) for k in _SAME_TABLE)
        if same_table and same and not ref.variant and ref.value:
            return claim.value / ref.value if claim.metric == "fps" else ref.value / claim.value
    return None


def _our_ratio(record: BenchRecord, ev: Evidence) -> float | None:
    """Our speed over the reference model's, measured on the same machine under the same conditions."""
    condition = record.speed_condition
    ref = _newest([r for r in ev.reference_bench if r.ok and r.latency and r.speed_condition == condition])
    return ref.latency.median / record.latency.median if ref else None


def _assess_speed(model: str, claim: Reported, card: ModelCard, ev: Evidence) -> Verdict:
    unit = "FPS" if claim.metric == "fps" else "ms"
    want = _read_speed(claim)
    if isinstance(want, list):
        return _open(model, claim, unit, want, note="no measurement can match an unstated condition")
    command, why = _speed_command(model, want)
    timed = [r for r in ev.bench if r.ok and r.latency is not None]
    if not timed:
        return Verdict(model, claim, "not measured", unit, paper=claim.value, command=command, note=why)
    ranked = sorted(timed, key=lambda r: (len(_speed_differences(r, want)), r.machine or "", r.label()))
    matching = [r for r in ranked if not _speed_differences(r, want)]
    if matching:
        record = _newest(matching)
        ours, interval = _speed_value(record, claim.metric)
        inside = interval is not None and interval[0] <= claim.value <= interval[1]
        return _verdict(
            model, claim, unit, claim.value, ours, inside or abs(ours / claim.value - 1) <= SPEED_RTOL,
            record=record, interval=interval, n=record.latency.n,
            note=f"backend version: ours {record.speed_condition.backend_version}, "
            f"paper {want.backend.version or 'not stated'}",
        )  # fmt: skip
    nearest = ranked[0]
    differs = tuple(_speed_differences(nearest, want))
    ratio = {}
    paper_ratio = _paper_ratio(claim, card, ev.reference_card)
    if paper_ratio is not None:
        # Across devices only as a ratio to the reference model in the same paper table, beside ours at the
        # claim's input size (any of our machines and conditions, named).
        at_size = [r for r in ranked if r.execution.input_hw == want.input_hw and r.execution.batch == 1]
        ours_ratio = [(r, _our_ratio(r, ev)) for r in at_size]
        ours_ratio = [(r, x) for r, x in ours_ratio if x is not None]
        if ours_ratio:
            r, x = ours_ratio[0]
            ratio = {"ours_vs_ref": x, "ratio_condition": f"{r.machine} {r.execution.label()}"}
        ratio["paper_vs_ref"] = paper_ratio
    return Verdict(
        model, claim, "not comparable", unit, paper=claim.value, differs=differs, command=command,
        note=why, record=nearest, **ratio,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------- not measured


def _assess_unmeasured(model: str, claim: Reported, card: ModelCard, ev: Evidence) -> Verdict:
    return Verdict(
        model, claim, "not measured", claim.unit, paper=claim.value,
        note=f"SegBench does not measure {claim.metric} (a classifier's ImageNet accuracy)",
    )  # fmt: skip


# ------------------------------------------------------------------------------------------- the table

RULES: dict[str, Rule] = {
    rule.metrics[0]: rule
    for rule in (
        Rule(
            ("params",),
            must_match=("counting convention: with or without training-only heads, as the card says",),
            converted="nothing: params (inference) or params_total (with training-only heads), in M",
            tolerance="equal at the precision the card states (half a unit of its last digit)",
            assess=_assess_params,
        ),
        Rule(
            ("macs", "flops"),
            must_match=("input size", "batch 1", "a stated counting convention"),
            converted="paper FLOPs = 2 x MACs halved, G = 2^30 scaled to 1e9; conv+linear-only counts are "
            "set against torch.utils.flop_counter's (macs_flop_counter), others against fvcore's; counted "
            "at the claim's own input (segbench structure), never scaled from another size",
            tolerance=f"within {MACS_RTOL:.0%} (the spread of MAC counters) or the card's rounding",
            assess=_assess_macs,
        ),
        Rule(
            ("miou",),
            must_match=(
                "dataset",
                "split",
                "protocol (whole / slide crop+stride / scales+flip)",
                "the authors' weights",
                "the image itself (no resize before the network)",
            ),
            converted="nothing; weights trained here are reported apart, never against a paper",
            tolerance=f"within {MIOU_ATOL:g} points (segbench compare's --miou-tol)",
            assess=_assess_miou,
        ),  # fmt: skip
        Rule(
            ("fps", "latency_ms"),
            must_match=(
                "device model",
                "backend",
                "precision",
                "batch 1",
                "input size",
                "threads (CPU figures)",
            ),
            converted="FPS = 1000 / median latency (batch 1), interval likewise; across devices only as a "
            "ratio to the reference model measured in the same paper table, beside ours, never a delta",
            tolerance=f"within {SPEED_RTOL:.0%} (segbench compare's --latency-threshold) or inside our 95% "
            "interval; the backend's version may differ (shown)",
            assess=_assess_speed,
        ),  # fmt: skip
        Rule(
            ("top1",),
            must_match=(),
            converted="",
            tolerance="not measured by SegBench",
            assess=_assess_unmeasured,
        ),
    )
}
RULE_OF = {metric: rule for rule in RULES.values() for metric in rule.metrics}


def assess(claim: Reported, card: ModelCard, evidence: Evidence) -> Verdict:
    """The claim's one verdict under its metric's rule. A claim about another network is not compared."""
    model = card.name
    if claim.variant:
        return Verdict(
            model, claim, "not comparable", claim.unit, paper=claim.value,
            differs=(f"another network: {claim.variant}",), note="never attached to this model's numbers",
        )  # fmt: skip
    rule = RULE_OF.get(claim.metric)
    if rule is None:
        return _assess_unmeasured(model, claim, card, evidence)
    return rule.assess(model, claim, card, evidence)
