"""MACs (one per multiply-add) from two independent counters, with what each leaves out.

Two counters, because the field's counters disagree and a single number hides it (METHODS.md b.2, b.3):

- fvcore `FlopCountAnalysis` traces the model with torch.jit for the given input and returns MACs despite its
  "flop" names. It has rules for conv, linear/matmul/bmm/einsum, BN, norms, bilinear/nearest upsampling,
  adaptive average pooling and grid_sample; elementwise ops (add, mul, sigmoid, softmax, ...) and pooling
  count as zero and are listed as unsupported.
- torch.utils.flop_counter `FlopCounterMode` watches the aten ops as they run (a dispatch mode, so functional
  calls are seen) and returns FLOPs = 2 x MACs; we divide by 2. It has rules only for matmul-like ops,
  convolution and attention (its SDPA rule is extended here to the CPU kernel): BN, interpolation,
  elementwise and pooling count as zero.

So on conv/linear/attention nets the two agree exactly; BN and upsampling make fvcore a few percent higher on
light models, and a larger gap means an op one counter misses (`macs_disagree`).

Coverage (per counter): the fraction of the *compute op calls* the counter saw that it has a rule for,
``calls with a rule / (calls with a rule + compute calls without one)``. Each counter is judged on its own
view of the forward (fvcore: the nodes of its jit trace; FlopCounterMode: the aten ops that executed after
decomposition), so the denominators differ; a call is not a compute call if its op is in `NON_COMPUTE_OPS`
(views, metadata, allocation, copies, and the ops fvcore ignores by design: relu, cat, max, clamp,
comparisons, indexing, ...) or, under FlopCounterMode, if the op is a view (`OpOverload.is_view`).
A coverage of 1.0 means every compute op was counted; it weighs calls, not their cost, so 0.5 coverage from
an uncounted `add` beside a counted conv still means the total is dominated by the conv.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

with warnings.catch_warnings():  # fvcore scripts a loss function at import; torch deprecates jit.script
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_analysis import _IGNORED_OPS as _FVCORE_IGNORED_OPS

DISAGREE_THRESHOLD = 0.05

# Ops that move, alias, allocate or describe data rather than compute on it, in the "aten::name" form both
# counters report. Together with fvcore's own ignore list (relu, cat, max, clamp, comparisons, indexing,
# reshape/view/permute, ...) they are left out of coverage; an in-place variant ("name_") follows its op.
NON_COMPUTE_OPS = frozenset(_FVCORE_IGNORED_OPS) | {
    "aten::_reshape_alias",
    "aten::_to_copy",
    "aten::_unsafe_index",
    "aten::_unsafe_view",
    "aten::alias",
    "aten::as_strided",
    "aten::clone",
    "aten::empty_like",
    "aten::empty_strided",
    "aten::expand_as",
    "aten::eye",
    "aten::feature_dropout",
    "aten::fill",
    "aten::lift_fresh",
    "aten::lift_fresh_copy",
    "aten::native_dropout",
    "aten::new_ones",
    "aten::ones_like",
    "aten::reflection_pad2d",
    "aten::replication_pad2d",
    "aten::reshape_as",
    "aten::resize",
    "aten::scalar_tensor",
    "aten::view_as",
    "aten::zero",
}


def is_compute_op(name: str) -> bool:
    """False for an op in NON_COMPUTE_OPS (or its in-place variant "name_")."""
    return name not in NON_COMPUTE_OPS and name.removesuffix("_") not in NON_COMPUTE_OPS


def coverage(counted_calls: int, uncounted: dict[str, int]) -> float | None:
    """Fraction of compute op calls with a rule; None when the forward made no compute call at all."""
    missed = sum(n for op, n in uncounted.items() if is_compute_op(op))
    total = counted_calls + missed
    return counted_calls / total if total else None


def _fvcore(model: nn.Module, example: torch.Tensor) -> tuple[int, dict[str, int], float | None]:
    """(MACs, {unsupported op: occurrences}, coverage) from fvcore's trace."""
    analysis = FlopCountAnalysis(model, example)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    counted = Counter()

    def counting(kind, handle):
        def wrapped(inputs, outputs):
            counted[kind] += 1
            return handle(inputs, outputs)

        return wrapped

    # Wrap every rule so that the calls it counted are known: coverage needs the numerator too. The rule
    # table is private to fvcore; without it the count stands and only the coverage is unknown.
    handles = getattr(analysis, "_op_handles", None)
    if isinstance(handles, dict):
        analysis.set_op_handle(**{k: counting(k, h) for k, h in handles.items()})
    # no_grad: the trace needs no autograd graph, which would multiply its memory on big inputs.
    with warnings.catch_warnings(), torch.no_grad():  # tracer warnings concern generality, not this count
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        total = int(analysis.total())
    unsupported = dict(sorted(analysis.unsupported_ops().items()))
    cov = coverage(sum(counted.values()), unsupported) if isinstance(handles, dict) else None
    return total, unsupported, cov


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# FlopCounterMode has SDPA rules for the CUDA kernels only; the CPU kernel gets the same formula, so that an
# attention model's count does not depend on the device it was counted on.
_EXTRA_RULES = {
    getattr(torch.ops.aten, name): _sdpa_cpu_flop
    for name in ("_scaled_dot_product_flash_attention_for_cpu",)
    if hasattr(torch.ops.aten, name)
}


class _OpRecorder(TorchDispatchMode):
    """Counts the aten ops that execute (entered below FlopCounterMode, so after its decompositions)."""

    def __init__(self):
        super().__init__()
        self.calls: Counter[tuple[str, bool]] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[(func._schema.name, bool(getattr(func, "is_view", False)))] += 1
        return func(*args, **(kwargs or {}))


def _flop_counter(model: nn.Module, example: torch.Tensor) -> tuple[int, dict[str, int], float | None]:
    """(MACs, {compute op without a rule: calls}, coverage) from FlopCounterMode."""
    recorder = _OpRecorder()
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_RULES)
    # The recorder is entered first, so it sits below the counter: it sees each op the counter let run.
    with torch.no_grad(), recorder, counter:
        model(example)
    rules = {str(getattr(op, "_qualified_op_name", op)).replace(".", "::", 1) for op in counter.flop_registry}
    counted_calls, uncounted = 0, Counter()
    for (name, view), n in recorder.calls.items():
        if name in rules:
            counted_calls += n
        elif not view and is_compute_op(name):
            uncounted[name] += n
    uncounted = dict(sorted(uncounted.items()))
    return counter.get_total_flops() // 2, uncounted, coverage(counted_calls, uncounted)


def count_macs(model: nn.Module, example: torch.Tensor) -> tuple[int, dict[str, int]]:
    """(total multiply-adds, {unsupported op: occurrences}) from fvcore, for one forward on `example`."""
    macs, unsupported, _ = _fvcore(model, example)
    return macs, unsupported


def count_flop_counter(model: nn.Module, example: torch.Tensor) -> tuple[int, dict[str, int]]:
    """(FlopCounterMode FLOPs / 2, {compute aten op it has no rule for: calls}) for one forward on `example`.

    Runs one real forward under torch.no_grad. Ops that only alias or move data are not listed (see
    `NON_COMPUTE_OPS`).
    """
    macs, uncounted, _ = _flop_counter(model, example)
    return macs, uncounted


def disagree(a: int | None, b: int | None, threshold: float = DISAGREE_THRESHOLD) -> bool | None:
    """|a - b| / max(a, b) > threshold; None when either count is missing, False when both are 0."""
    if a is None or b is None:
        return None
    top = max(a, b)
    return bool(top) and abs(a - b) / top > threshold


def flop_report(model: nn.Module, example: torch.Tensor, threshold: float = DISAGREE_THRESHOLD) -> dict:
    """Both counters' MACs for one forward on `example` (the whole batch), as record fields.

    Never raises for a counter's failure: a failing counter leaves its fields None and names itself in
    `macs_error`, and the other counter's numbers are kept.
    """
    errors = []
    try:
        macs, unsupported, cov_fvcore = _fvcore(model, example)
    except Exception as exc:  # noqa: BLE001 - recorded, not raised
        macs, unsupported, cov_fvcore = None, None, None
        errors.append(f"fvcore: {_one_line(exc)}")
    try:
        macs_fc, uncounted, cov_fc = _flop_counter(model, example)
    except Exception as exc:  # noqa: BLE001 - recorded, not raised
        macs_fc, uncounted, cov_fc = None, None, None
        errors.append(f"flop_counter: {_one_line(exc)}")
    return {
        "macs": macs,
        "macs_counter": "fvcore",
        "macs_unsupported_ops": unsupported,
        "macs_flop_counter": macs_fc,
        "flop_counter_uncounted_ops": uncounted,
        "macs_coverage": {"fvcore": cov_fvcore, "flop_counter": cov_fc},
        "macs_disagree": disagree(macs, macs_fc, threshold),
        "macs_error": "; ".join(errors) or None,
    }


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
