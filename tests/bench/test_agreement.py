import pytest
import torch
from torch import nn

from bench.measure.agreement import output_agreement, reference_output


def logits(classes_per_pixel, num_classes=3):
    """N=1 logits whose argmax at each pixel of a 2x2 image is the given class (a one-hot of height 1)."""
    x = torch.zeros(1, num_classes, 2, 2)
    for i, c in enumerate(classes_per_pixel):
        x[0, c, i // 2, i % 2] = 1.0
    return x


def test_three_of_four_pixels_agree():
    ref = logits([0, 1, 2, 0])
    out = logits([0, 1, 2, 1])
    result = output_agreement(ref, out)
    assert result["argmax_agreement_pct"] == 75.0
    assert result["reference"] == "eager fp32"
    # Pixel 3 moves its 1.0 from class 0 to class 1: two logits differ by exactly 1.
    assert result["max_abs_diff"] == 1.0
    assert result["reference_max_abs"] == 1.0
    assert result["nonfinite_values"] == 0


def test_identical_outputs():
    ref = torch.randn(2, 5, 3, 4)
    result = output_agreement(ref, ref.clone())
    assert result["max_abs_diff"] == 0.0
    assert result["argmax_agreement_pct"] == 100.0


def test_difference_is_taken_in_fp32():
    ref = torch.full((1, 2, 1, 1), 1.0)
    out = torch.tensor([[[[1.0]], [[1.0 + 2**-10]]]], dtype=torch.float16)  # representable in fp16
    result = output_agreement(ref, out)
    assert result["max_abs_diff"] == pytest.approx(2**-10, rel=0, abs=0)
    assert result["argmax_agreement_pct"] == 0.0  # class 1 now wins; the reference ties, argmax picks 0


def test_classifier_logits_count_per_image():
    ref = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    out = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert output_agreement(ref, out)["argmax_agreement_pct"] == 75.0


def test_nonfinite_output_has_no_max_diff():
    ref = torch.zeros(1, 2, 1, 2)
    out = ref.clone()
    out[0, 0, 0, 0] = float("inf")
    result = output_agreement(ref, out)
    assert result["max_abs_diff"] is None
    assert result["nonfinite_values"] == 1


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differs from the reference"):
        output_agreement(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))


def test_reference_output_is_fp32_and_restores_tf32_flags():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return x.half()

    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        out = reference_output(Probe(), torch.ones(1, 2, 1, 1))
        assert seen == [(False, False)]
        assert out.dtype == torch.float32
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
