"""What evaluating and training a model needs beyond its network: how its authors turned pixels into its
input (`Preprocess`) and how they trained it (`Recipe`).

Both are registered with the model's builder, beside its card and converter
(`register_model(card, preprocess=..., recipe=...)`), and read with `zoo.registry.get_preprocess(name)` /
`get_recipe(name)`, which give `IMAGENET` / `DEFAULT_RECIPE` for a model that registered none. A recipe is
data; `bench.eval.train` interprets it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Preprocess:
    """Channel order, scaling, mean/std and resize policy of a model's input:
    input = ((pixels * pre_scale) - mean) / std * post_scale, on channels in `channel_order`.

    The default (`IMAGENET`) is ImageNet mean/std on RGB in [0, 1] at native size, what the zoo's models
    trained here use too.
    """

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channel_order: str = "RGB"  # or "BGR" (OpenCV pipelines)
    pre_scale: float = 1 / 255
    post_scale: float = 1.0
    # None: the image at its own size. (H, W): resized (bilinear) to it, logits resized back to the label.
    resize_hw: tuple[int, int] | None = None
    source: str = "ImageNet statistics (default)"

    def to_dict(self) -> dict:
        return asdict(self)

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 NxHxWx3 RGB (or HxWx3) -> float32 NCHW model input (no resizing; protocols resize)."""
        x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
        if x.dim() == 3:
            x = x[None]
        x = x.permute(0, 3, 1, 2).float()
        if self.channel_order == "BGR":
            x = x.flip(1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        return ((x * self.pre_scale) - mean) / std * self.post_scale


IMAGENET = Preprocess()


@dataclass(frozen=True)
class Recipe:
    """A training recipe: the paper's (or official code's) optimizer, LR schedule, crop, augmentation and
    loss, each setting with its source; `DEFAULT_RECIPE` (SGD + poly, the common real-time recipe) for a
    model whose paper gives none."""

    optimizer: str = "sgd"  # "sgd" (momentum 0.9) or "adam"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "poly"  # "poly" (lr * (1 - it/max_it) ** power) or "constant"
    power: float = 0.9
    warmup_iters: int = 0
    batch_size: int = 8
    crop_hw: tuple[int, int] = (512, 512)
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    # Class weighting of the cross entropy: None, or "enet" (w = 1 / ln(c + p_class), ENet Sec. 5.1) with c.
    class_weighting: str | None = None
    class_weight_c: float = 1.02
    # Online hard example mining (BiSeNetV2/STDC style): keep pixels with p_true < thresh, at least min_kept.
    ohem_thresh: float | None = None
    ohem_min_kept: int = 100_000
    # Loss weight of each training-only head the model returns in train mode (model.aux_heads order);
    # one number applies to all of them.
    aux_weight: float = 0.4
    iterations: int = 10_000
    source: str = "SegBench default (no paper recipe)"

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> Recipe:
        return dataclasses.replace(self, **changes)


DEFAULT_RECIPE = Recipe()
