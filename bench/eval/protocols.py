"""Inference protocols: how one image becomes class scores at its label's size.

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

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.errors import UsageError


def _resize(x: torch.Tensor, hw) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=tuple(hw), mode="bilinear", align_corners=False)


def _logits(model, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, (tuple, list)):  # a model left in train mode with aux heads: the main output
        out = out[0]
    return out


@dataclass(frozen=True)
class Protocol:
    name: str = "whole"
    crop: tuple[int, int] | None = None  # slide
    stride: tuple[int, int] | None = None  # slide
    scales: tuple[float, ...] = (1.0,)  # msflip
    flip: bool = False  # msflip

    def to_dict(self) -> dict:
        if self.name == "slide":
            return {"name": "slide", "params": {"crop": list(self.crop), "stride": list(self.stride)}}
        if self.name == "msflip":
            return {"name": "msflip", "params": {"scales": list(self.scales), "flip": self.flip}}
        return {"name": "whole", "params": {}}

    def label(self) -> str:
        """One string naming the protocol and its parameters: the record's `protocol` (part of its cell key,
        so two slide evaluations with different windows are different cells)."""
        if self.name == "slide":
            return f"slide(crop={self.crop[0]}x{self.crop[1]}, stride={self.stride[0]}x{self.stride[1]})"
        if self.name == "msflip":
            return f"msflip(scales={','.join(f'{s:g}' for s in self.scales)}{', flip' if self.flip else ''})"
        return "whole"

    def windows(self, hw) -> list[tuple[int, int, int, int]]:
        """(y1, y2, x1, x2) of each slide window for an input of size hw."""
        h, w = hw
        ch, cw = min(self.crop[0], h), min(self.crop[1], w)
        sh, sw = self.stride
        rows = max(h - ch + sh - 1, 0) // sh + 1
        cols = max(w - cw + sw - 1, 0) // sw + 1
        out = []
        for r in range(rows):
            for c in range(cols):
                y2, x2 = min(r * sh + ch, h), min(c * sw + cw, w)
                out.append((max(y2 - ch, 0), y2, max(x2 - cw, 0), x2))
        return out

    def forward_sizes(self, hw) -> list[tuple[int, int]]:
        """The input size of every forward the protocol runs on an input of size hw."""
        if self.name == "slide":
            return [(y2 - y1, x2 - x1) for y1, y2, x1, x2 in self.windows(hw)]
        if self.name == "msflip":
            sizes = [(round(hw[0] * s), round(hw[1] * s)) for s in self.scales]
            return [s for s in sizes for _ in range(2 if self.flip else 1)]
        return [tuple(hw)]

    def __call__(self, model, x: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Scores N x num_classes x H x W for input x (N x 3 x H x W), at x's size."""
        hw = x.shape[-2:]
        if self.name == "whole":
            return _resize(_logits(model, x), hw)
        if self.name == "slide":
            scores = x.new_zeros(x.shape[0], num_classes, *hw)
            count = x.new_zeros(1, 1, *hw)
            for y1, y2, x1, x2 in self.windows(hw):
                window = x[..., y1:y2, x1:x2]
                scores[..., y1:y2, x1:x2] += _resize(_logits(model, window), window.shape[-2:])
                count[..., y1:y2, x1:x2] += 1
            return scores / count
        scores = x.new_zeros(x.shape[0], num_classes, *hw)
        n = 0
        for scale in self.scales:
            size = (round(hw[0] * scale), round(hw[1] * scale))
            xs = _resize(x, size)
            for flipped in (False, True) if self.flip else (False,):
                inp = xs.flip(-1) if flipped else xs
                logits = _logits(model, inp)
                if flipped:
                    logits = logits.flip(-1)
                scores += _resize(logits, hw).softmax(1)
                n += 1
        return scores / n


def make_protocol(name: str, crop=None, stride=None, scales=None, flip: bool = True) -> Protocol:
    """A checked protocol; slide needs crop (and takes stride = 2/3 of crop by default)."""
    if name == "whole":
        return Protocol("whole")
    if name == "slide":
        if crop is None:
            raise UsageError("--protocol slide needs --crop HxW")
        crop = tuple(int(v) for v in crop)
        stride = (
            tuple(int(v) for v in stride) if stride is not None else tuple(max(1, c * 2 // 3) for c in crop)
        )
        if min(crop) < 1 or min(stride) < 1:
            raise UsageError(f"slide crop {crop} and stride {stride} must be positive")
        return Protocol("slide", crop=crop, stride=stride)
    if name == "msflip":
        scales = tuple(float(s) for s in (scales or (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)))
        if min(scales) <= 0:
            raise UsageError(f"msflip scales {scales} must be positive")
        return Protocol("msflip", scales=scales, flip=flip)
    raise UsageError(f"unknown protocol {name!r} (whole, slide or msflip)")
