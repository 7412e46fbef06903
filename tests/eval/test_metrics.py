"""Metric arithmetic on hand-made confusion matrices, and agreement with an independent numpy version."""

import math

import numpy as np
import pytest
import torch

from bench.eval.metrics import IGNORE, SegMetric, confusion_matrix, scores


def test_confusion_matrix_counts_and_ignores():
    target = torch.tensor([[0, 0, 1, IGNORE], [2, 2, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 2], [2, 0, 1, 0]])
    cm = confusion_matrix(pred, target, 3)
    # rows = truth, cols = prediction; the ignored pixel (predicted 2) counts nowhere
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 1]]
    assert cm.sum() == 7


def test_confusion_matrix_rejects_ids_out_of_range():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 3]), 3)


def test_scores_on_a_hand_made_matrix():
    cm = torch.tensor([[3, 1, 0], [0, 4, 2], [0, 0, 0]])  # class 2 never true, but predicted twice
    s = scores(cm)
    iou0, iou1, iou2 = 3 / 4, 4 / 7, 0 / 2
    assert s["per_class_iou"] == pytest.approx([100 * iou0, 100 * iou1, 100 * iou2], abs=1e-3)
    assert s["miou"] == pytest.approx(100 * (iou0 + iou1 + iou2) / 3, abs=1e-3)
    assert s["acc"] == pytest.approx(100 * 7 / 10, abs=1e-3)
    # mAcc over classes with ground truth only (class 2 has none)
    assert s["macc"] == pytest.approx(100 * (3 / 4 + 4 / 6) / 2, abs=1e-3)
    assert s["conventions"]["absent_classes"] == []


def test_absent_class_conventions_differ_as_stated():
    cm = torch.tensor([[5, 0, 0], [1, 2, 0], [0, 0, 0]])  # class 2: neither true nor predicted
    s = scores(cm)
    iou0, iou1 = 5 / 6, 2 / 3
    assert s["per_class_iou"][2] is None
    assert s["conventions"]["absent_classes"] == [2]
    assert (
        s["miou"] == s["conventions"]["absent_excluded"] == pytest.approx(100 * (iou0 + iou1) / 2, abs=1e-3)
    )
    assert s["conventions"]["absent_as_1"] == pytest.approx(100 * (iou0 + iou1 + 1) / 3, abs=1e-3)


def test_per_image_mean_differs_from_dataset_level():
    m = SegMetric(2)
    # image 1: perfect, large; image 2: all wrong, small
    m.update(torch.zeros(10, 10, dtype=torch.long), torch.zeros(10, 10, dtype=torch.long))
    m.update(torch.ones(1, 2, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long))
    s = m.compute()
    # per image: image 1 has only class 0 present (IoU 1); image 2 has classes 0 and 1 at IoU 0
    assert s["conventions"]["per_image_mean"] == pytest.approx(50.0)
    # dataset level: class 0 IoU 100/102, class 1 IoU 0/2
    assert s["miou"] == pytest.approx(100 * (100 / 102) / 2, abs=1e-3)


def test_all_ignored_gives_no_numbers():
    m = SegMetric(3)
    m.update(torch.zeros(4, 4, dtype=torch.long), torch.full((4, 4), IGNORE))
    s = m.compute()
    assert s["miou"] is None and s["acc"] is None and s["conventions"]["per_image_mean"] is None


def _numpy_reference(preds, targets, k, ignore):
    """Written from the definitions, sharing nothing with bench.eval.metrics."""
    inter = np.zeros(k)
    union = np.zeros(k)
    correct = total = 0
    per_image = []
    for p, t in zip(preds, targets, strict=True):
        valid = t != ignore
        p, t = p[valid], t[valid]
        correct += (p == t).sum()
        total += t.size
        img = []
        for c in range(k):
            i = np.logical_and(p == c, t == c).sum()
            u = np.logical_or(p == c, t == c).sum()
            inter[c] += i
            union[c] += u
            if u:
                img.append(i / u)
        if img:
            per_image.append(np.mean(img))
    present = union > 0
    ious = np.where(present, inter / np.maximum(union, 1), np.nan)
    return {
        "miou": 100 * np.nanmean(ious),
        "absent_as_1": 100 * np.where(present, ious, 1.0).mean(),
        "acc": 100 * correct / total,
        "per_image": 100 * np.mean(per_image),
        "ious": ious,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_independent_numpy_implementation(seed):
    rng = np.random.default_rng(seed)
    k = 6
    preds, targets = [], []
    m = SegMetric(k)
    for _ in range(5):
        h, w = rng.integers(5, 30, size=2)
        t = rng.integers(0, k - 1, size=(h, w))  # class k-1 never true ...
        t[rng.random((h, w)) < 0.1] = IGNORE
        p = np.where(rng.random((h, w)) < 0.6, t, rng.integers(0, k - 2, size=(h, w)))  # ... nor predicted
        p[p == IGNORE] = 0
        preds.append(p)
        targets.append(t)
        m.update(torch.from_numpy(p), torch.from_numpy(t))
    ref = _numpy_reference(preds, targets, k, IGNORE)
    s = m.compute()
    assert s["miou"] == pytest.approx(ref["miou"], abs=1e-3)
    assert s["conventions"]["absent_as_1"] == pytest.approx(ref["absent_as_1"], abs=1e-3)
    assert s["conventions"]["per_image_mean"] == pytest.approx(ref["per_image"], abs=1e-3)
    assert s["acc"] == pytest.approx(ref["acc"], abs=1e-3)
    for ours, theirs in zip(s["per_class_iou"], ref["ious"], strict=True):
        assert (ours is None) == math.isnan(theirs)
        if ours is not None:
            assert ours == pytest.approx(100 * theirs, abs=1e-3)
