"""Padding for models that need input sides divisible by some number (e.g. max-unpooling decoders)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PadToMultiple(nn.Module):
    """Zero-pads H and W up to a multiple of `divisor` (bottom/right), runs `model`, crops the logits back.

    The padding and crop are part of the measured forward, as they would be in deployment.
    """

    def __init__(self, model: nn.Module, divisor: int):
        super().__init__()
        self.model = model
        self.divisor = divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % self.divisor, -w % self.divisor
        out = self.model(F.pad(x, (0, pad_w, 0, pad_h)))
        return out[..., :h, :w] if out.dim() == 4 else out  # classifiers' (N, C) logits have no H, W
