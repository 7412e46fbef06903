"""Output agreement: how far a faster condition's logits are from eager fp32's on the same input.

A speed-up that changes the answer is not a speed-up, so every non-reference condition records, next to
its latency, the largest absolute logit difference and the share of pixels whose predicted class (argmax
over the class dimension) is unchanged.

The zoo's models run with random weights here, and their logits span many orders of magnitude
(about 1e-15 for pphumanseg_lite, 1e8 for portraitnet at 64x64), so `max_abs_diff` is reported with
`reference_max_abs`, the scale it should be read against.
"""

from __future__ import annotations

import torch

REFERENCE = "eager fp32"


def reference_output(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The eager fp32 logits: no autocast, TF32 off for the call (restored after), under inference_mode.

    Run it before `bench.measure.backends.prepare`, which may convert the model to channels_last in place.
    """
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.inference_mode():
            return model(x).float().clone()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def output_agreement(reference: torch.Tensor, output: torch.Tensor) -> dict:
    """{reference, max_abs_diff, reference_max_abs, argmax_agreement_pct} of `output` against `reference`.

    Both are logits with classes on dimension 1 (N,C,H,W; N,C for a classifier backbone). Differences are
    taken in fp32 on the reference's device. A non-finite output (an fp16 overflow) gives max_abs_diff None
    and is counted in `nonfinite_values`; its argmax still counts as it falls.
    """
    if reference.shape != output.shape:
        raise ValueError(
            f"output shape {tuple(output.shape)} differs from the reference's {tuple(reference.shape)}"
        )
    if reference.dim() < 2:
        raise ValueError(f"expected logits with classes on dimension 1, got shape {tuple(reference.shape)}")
    ref = reference.detach().float()
    out = output.detach().to(ref.device, torch.float32)
    nonfinite = int((~torch.isfinite(out)).sum())
    max_abs_diff = float((out - ref).abs().max()) if nonfinite == 0 else None
    same_class = ref.argmax(dim=1) == out.argmax(dim=1)
    return {
        "reference": REFERENCE,
        "max_abs_diff": max_abs_diff,
        "reference_max_abs": float(ref.abs().max()),
        "argmax_agreement_pct": 100.0 * float(same_class.float().mean()),
        "nonfinite_values": nonfinite,
    }
