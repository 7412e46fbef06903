"""MACs with fvcore: one per multiply-add (fvcore's convention, despite its "flop" names).

fvcore traces the model with torch.jit for the given input, so the count is for that input size. Ops it has
no rule for count as zero; they are returned so that every record says what the number leaves out.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

with warnings.catch_warnings():  # fvcore scripts a loss function at import; torch deprecates jit.script
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis


def count_macs(model: nn.Module, example: torch.Tensor) -> tuple[int, dict[str, int]]:
    """(total multiply-adds, {unsupported op: occurrences}) for one forward of `model` on `example`."""
    analysis = FlopCountAnalysis(model, example)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    # no_grad: the trace needs no autograd graph, which would multiply its memory on big inputs.
    with warnings.catch_warnings(), torch.no_grad():  # tracer warnings concern generality, not this count
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        total = int(analysis.total())
    return total, dict(sorted(analysis.unsupported_ops().items()))
