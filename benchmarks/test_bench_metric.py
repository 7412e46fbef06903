"""The evaluation's per-batch metric update: a confusion-matrix bincount (bench.eval.metrics.SegMetric)."""

import torch

from bench.eval.metrics import SegMetric


def test_metric_update_cityscapes_batch(calibrated):
    """One 512x1024 prediction of 19 classes with 5% ignored pixels, as in a Cityscapes evaluation."""
    generator = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 19, (1, 512, 1024), generator=generator)
    target = torch.randint(0, 19, (1, 512, 1024), generator=generator)
    target[torch.rand(target.shape, generator=generator) < 0.05] = 255
    metric = SegMetric(19)
    calibrated(metric.update, args=(pred, target), rounds=30, warmup_rounds=3)
    assert int(metric.cm.sum()) == 33 * int((target != 255).sum())
