"""Resizing helpers."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_to(
    x: torch.Tensor, like: torch.Tensor | tuple[int, int], mode: str = "bilinear", align_corners: bool = False
) -> torch.Tensor:
    """Resize `x` to the spatial size of `like` (a tensor or an (H, W) pair).

    Interpolating to an explicit size, rather than by a scale factor, keeps models correct for inputs whose
    sides are not multiples of their total stride (e.g. CamVid's 360x480). `align_corners=True` where a
    port must match official code that resizes that way.
    """
    size = tuple(like.shape[-2:]) if isinstance(like, torch.Tensor) else tuple(like)
    if mode == "nearest":
        return F.interpolate(x, size=size, mode=mode)
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)
