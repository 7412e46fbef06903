"""Segmentation metrics from a dataset-level confusion matrix, accumulated on the device with bincount.

Conventions, stated because they move the headline number:

- `miou` (the headline, mmsegmentation's and Cityscapes' convention): IoU per class from the confusion
  matrix summed over the whole dataset; a class absent from both prediction and ground truth (0/0) is
  excluded from the mean.
- `miou_absent_as_1`: the same, but such a class counts as IoU 1 (some portrait and older codebases).
- `miou_per_image`: mIoU of each image (over the classes present in its prediction or ground truth), then
  averaged over images (what per-image loops compute; it weights small images and rare classes differently).

Pixels whose label is the ignore index count nowhere. Rows of the matrix are ground truth, columns prediction.
"""

from __future__ import annotations

import math

import torch

IGNORE = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE):
    """KxK int64 counts on pred's device; entry [t, p] counts pixels of class t predicted as p."""
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} differs from label shape {tuple(target.shape)}"
        )
    valid = target != ignore_index
    t = target[valid].long()
    p = pred[valid].long()
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"label ids outside 0..{num_classes - 1} (and {ignore_index} ignored)")
    return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).view(
        num_classes, num_classes
    )


def iou_per_class(cm: torch.Tensor) -> list[float]:
    """IoU of each class as a fraction; NaN for a class absent from both prediction and ground truth."""
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    return [float(t / u) if u > 0 else math.nan for t, u in zip(tp.tolist(), union.tolist(), strict=True)]


def _nanmean(values: list[float]) -> float | None:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


class SegMetric:
    """Accumulates the dataset confusion matrix and the per-image mIoU sum; merge across processes with
    `all_reduce` (sums, so any split of the images gives the same totals)."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu", ignore_index: int = IGNORE):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        # [sum of per-image mIoU, number of images that had any scored pixel]
        self.per_image = torch.zeros(2, dtype=torch.float64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one image (HxW) or a batch (NxHxW) of predicted and true class ids."""
        if pred.dim() == 2:
            pred, target = pred[None], target[None]
        for p, t in zip(pred, target, strict=True):
            cm = confusion_matrix(p, t.to(p.device), self.num_classes, self.ignore_index)
            self.cm += cm
            image_miou = _nanmean(iou_per_class(cm))
            if image_miou is not None:
                self.per_image += torch.tensor([image_miou, 1.0], dtype=torch.float64, device=self.cm.device)

    def all_reduce(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.cm)
            dist.all_reduce(self.per_image)

    def compute(self) -> dict:
        return scores(self.cm, self.per_image)


def scores(cm: torch.Tensor, per_image: torch.Tensor | None = None) -> dict:
    """All metrics in percent (None where undefined): miou, per-class IoU, aAcc, mAcc, the conventions."""
    cm = cm.detach().cpu().double()
    ious = iou_per_class(cm)
    total = float(cm.sum())
    gt = cm.sum(1)
    accs = [float(cm[k, k] / gt[k]) if gt[k] > 0 else math.nan for k in range(cm.shape[0])]
    miou = _nanmean(ious)
    absent_as_1 = sum(1.0 if math.isnan(v) else v for v in ious) / len(ious) if ious else None
    per_image_mean = None
    if per_image is not None and float(per_image[1]) > 0:
        per_image_mean = float(per_image[0] / per_image[1])

    def pct(v):
        return None if v is None or math.isnan(v) else round(100 * v, 4)

    return {
        "miou": pct(miou),
        "per_class_iou": [pct(v) for v in ious],
        "acc": pct(float(cm.diag().sum()) / total) if total else None,
        "macc": pct(_nanmean(accs)),
        "per_class_acc": [pct(v) for v in accs],
        "conventions": {
            "headline": "absent_excluded",
            "absent_excluded": pct(miou),
            "absent_as_1": pct(absent_as_1),
            "per_image_mean": pct(per_image_mean),
            "absent_classes": [k for k, v in enumerate(ious) if math.isnan(v)],
        },
        "pixels": int(total),
    }
