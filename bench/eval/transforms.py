"""Training augmentations on (uint8 HxWx3 image, int64 HxW label) pairs: random scale, crop, flip.

Numpy/PIL on the CPU, driven by one `numpy.random.Generator` so a seeded run is repeatable. The label is
always resized nearest and padded with IGNORE, so augmentation never invents class ids.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from bench.eval.datasets import IGNORE


def random_scale(image, label, rng, scale_range):
    lo, hi = scale_range
    if lo == hi == 1.0:
        return image, label
    s = rng.uniform(lo, hi)
    h, w = label.shape
    size = (max(1, round(w * s)), max(1, round(h * s)))
    image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    label = np.asarray(Image.fromarray(label.astype(np.uint8)).resize(size, Image.NEAREST)).astype(np.int64)
    return image, label


def random_crop(image, label, rng, crop_hw):
    """A crop_hw window; an image smaller than it is padded (image with 0, label with IGNORE) first."""
    ch, cw = crop_hw
    h, w = label.shape
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        label = np.pad(label, ((0, ph), (0, pw)), constant_values=IGNORE)
        h, w = label.shape
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return image[y : y + ch, x : x + cw], label[y : y + ch, x : x + cw]


def random_flip(image, label, rng):
    if rng.random() < 0.5:
        return image[:, ::-1], label[:, ::-1]
    return image, label


def augment(image, label, rng, crop_hw, scale_range=(1.0, 1.0), flip=True):
    image, label = random_scale(image, label, rng, scale_range)
    image, label = random_crop(image, label, rng, crop_hw)
    if flip:
        image, label = random_flip(image, label, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)
