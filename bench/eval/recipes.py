"""Training recipes per model: the paper's (or official code's) optimizer, LR schedule, crop, augmentation
and loss, each setting with its source; `budgeted` states how a run here departs from it.

A recipe is data; train.py interprets it. Models without an entry get `DEFAULT` (SGD + poly, the common
real-time recipe), said so in the run's sidecar.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Recipe:
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


DEFAULT = Recipe()

RECIPES: dict[str, Recipe] = {
    # Paszke et al. 2016, Sec. 5.1: Adam, lr 5e-4, L2 weight decay 2e-4, batch 10, class weights
    # 1/ln(1.02 + p). No LR schedule or augmentation is stated.
    "enet": Recipe(
        optimizer="adam",
        lr=5e-4,
        weight_decay=2e-4,
        schedule="constant",
        batch_size=10,
        crop_hw=(360, 480),
        scale_range=(1.0, 1.0),
        flip=False,
        class_weighting="enet",
        class_weight_c=1.02,
        aux_weight=0.0,
        source="ENet paper Sec. 5.1",
    ),
    # wutianyiRosun/CGNet camvid_train.py: Adam (0.9, 0.999) lr 1e-3, weight decay 5e-4, poly 0.9, crop
    # 360x360, batch 8, random scale + mirror, class-weighted CE from the train+val histogram (1.10).
    "cgnet": Recipe(
        optimizer="adam",
        lr=1e-3,
        weight_decay=5e-4,
        schedule="poly",
        power=0.9,
        batch_size=8,
        crop_hw=(360, 360),
        scale_range=(0.5, 2.0),
        flip=True,
        class_weighting="enet",
        class_weight_c=1.10,
        aux_weight=0.0,
        source="wutianyiRosun/CGNet@ebc812c camvid_train.py",
    ),
    # Poudel et al. 2019, Sec. 4.1: SGD momentum 0.9, lr 0.045, weight decay 4e-5, poly 0.9, batch 12,
    # random scale 0.5-2, crop, flip, auxiliary losses weighted 0.4 (Cityscapes; no CamVid recipe given).
    "fastscnn": Recipe(
        optimizer="sgd",
        lr=0.045,
        weight_decay=4e-5,
        schedule="poly",
        power=0.9,
        batch_size=12,
        crop_hw=(768, 768),
        scale_range=(0.5, 2.0),
        flip=True,
        aux_weight=0.4,
        source="Fast-SCNN paper Sec. 4.1",
    ),
    # Yu et al. 2021 (BiSeNetV2), Sec. 4.1: SGD lr 0.05, wd 5e-4, poly 0.9, OHEM, crop 1024x2048 -> 512x1024
    # Cityscapes, batch 16, booster heads (weight 1 each).
    "bisenetv2": Recipe(
        optimizer="sgd",
        lr=0.05,
        weight_decay=5e-4,
        batch_size=16,
        crop_hw=(512, 1024),
        scale_range=(0.25, 2.0),
        ohem_thresh=0.7,
        aux_weight=1.0,
        source="BiSeNetV2 paper Sec. 4.1",
    ),
}


def get_recipe(model_name: str) -> Recipe:
    return RECIPES.get(model_name, DEFAULT)
