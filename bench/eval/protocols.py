"""Inference protocols: how one image becomes class scores at its label's size (what each protocol is, its
parameters and label, is bench.conditions.EvalProtocol; this module runs it).

- `whole`: one forward on the whole (preprocessed, possibly resized) image.
- `slide` (crop, stride): mmsegmentation's sliding window; windows overlap, their logits are summed and
  divided by how many windows covered each pixel. A window never leaves the image (the last one in each
  row/column is shifted back inside); an image smaller than the crop is one window.
- `msflip` (scales, flip): the image resized by each scale (and mirrored), softmax probabilities resized back
  and averaged.

Each protocol also says which input sizes it runs the model at (`forward_sizes`), from which the evaluator
measures the protocol's MACs relative to one whole-image forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.conditions import EvalProtocol


def _resize(x: torch.Tensor, hw) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=tuple(hw), mode="bilinear", align_corners=False)


def _logits(model, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, (tuple, list)):  # a model left in train mode with aux heads: the main output
        out = out[0]
    return out


def run(protocol: EvalProtocol, model, x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Scores N x num_classes x H x W for input x (N x 3 x H x W), at x's size."""
    hw = x.shape[-2:]
    if protocol.name == "whole":
        return _resize(_logits(model, x), hw)
    if protocol.name == "slide":
        scores = x.new_zeros(x.shape[0], num_classes, *hw)
        count = x.new_zeros(1, 1, *hw)
        for y1, y2, x1, x2 in protocol.windows(hw):
            window = x[..., y1:y2, x1:x2]
            scores[..., y1:y2, x1:x2] += _resize(_logits(model, window), window.shape[-2:])
            count[..., y1:y2, x1:x2] += 1
        return scores / count
    scores = x.new_zeros(x.shape[0], num_classes, *hw)
    n = 0
    for scale in protocol.scales:
        size = (round(hw[0] * scale), round(hw[1] * scale))
        xs = _resize(x, size)
        for flipped in (False, True) if protocol.flip else (False,):
            inp = xs.flip(-1) if flipped else xs
            logits = _logits(model, inp)
            if flipped:
                logits = logits.flip(-1)
            scores += _resize(logits, hw).softmax(1)
            n += 1
    return scores / n


make_protocol = EvalProtocol.make  # a checked protocol from command-line values
