import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.measure import flops
from bench.measure.flops import count_flop_counter, count_macs, disagree, flop_report


def conv_linear_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 16x16 -> 8x8
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise
        nn.Conv2d(8, 4, 1),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    ).eval()


# output elements x (Cin/groups x kh x kw); bias adds are not multiply-adds
CONV_LINEAR_MACS_PER_IMAGE = (
    8 * 8 * 8 * (3 * 3 * 3) + 8 * 8 * 8 * (1 * 3 * 3) + 4 * 8 * 8 * 8 + 4 * 8 * 8 * 10
)


class Attention(nn.Module):
    """Single-head self-attention over the pixels, written with bmm as the zoo's attention heads are."""

    def forward(self, x):
        t = x.flatten(2)  # N, C, HW
        attn = torch.bmm(t.transpose(1, 2), t)  # N, HW, HW: HW*HW*C MACs
        return torch.bmm(t, attn.softmax(-1)).view_as(x)  # N, C, HW: C*HW*HW MACs


class ConvBN(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def test_macs_of_conv_and_linear_equal_hand_arithmetic():
    macs, unsupported = count_macs(conv_linear_net(), torch.randn(2, 3, 16, 16))
    assert macs == 2 * CONV_LINEAR_MACS_PER_IMAGE
    assert unsupported == {}


def test_flop_counter_gives_the_same_macs_for_conv_and_linear():
    macs, uncounted = count_flop_counter(conv_linear_net(), torch.randn(2, 3, 16, 16))
    assert macs == 2 * CONV_LINEAR_MACS_PER_IMAGE
    assert uncounted == {}


def test_both_counters_count_attention_bmm():
    x = torch.randn(2, 4, 3, 5)  # C=4, HW=15
    per_image = 15 * 15 * 4 + 4 * 15 * 15
    assert count_macs(Attention(), x)[0] == 2 * per_image
    macs, uncounted = count_flop_counter(Attention(), x)
    assert macs == 2 * per_image
    assert set(uncounted) == {"aten::_softmax"}  # transpose/flatten/view_as are views, not listed


def test_flop_counter_counts_sdpa_on_cpu():
    class SDPA(nn.Module):
        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q)

    q = torch.randn(1, 2, 16, 8)  # heads 2, tokens 16, dim 8: QK^T and AV, 16*16*8 MACs each per head
    assert count_flop_counter(SDPA(), q)[0] == 2 * (2 * 16 * 16 * 8)


def test_unsupported_ops_are_listed():
    class AddNet(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x) + x

    macs, unsupported = count_macs(AddNet(), torch.randn(1, 3, 4, 4))
    assert macs == 0
    assert set(unsupported) == {"aten::sigmoid", "aten::add"}
    macs, uncounted = count_flop_counter(AddNet(), torch.randn(1, 3, 4, 4))
    assert macs == 0
    assert uncounted == {"aten::sigmoid": 1, "aten::add": 1}


def test_report_agrees_and_covers_everything_on_a_conv_linear_net():
    report = flop_report(conv_linear_net(), torch.randn(2, 3, 16, 16))
    assert report["macs"] == report["macs_flop_counter"] == 2 * CONV_LINEAR_MACS_PER_IMAGE
    assert report["macs_counter"] == "fvcore"
    assert report["macs_coverage"] == {"fvcore": 1.0, "flop_counter": 1.0}
    assert report["macs_disagree"] is False
    assert report["macs_error"] is None
    assert report["macs_unsupported_ops"] == {} and report["flop_counter_uncounted_ops"] == {}


def test_batchnorm_only_fvcore_counts_sets_the_flag_when_it_weighs_much():
    # 1x1 conv with one channel: 1 MAC per element; eval BN with affine: fvcore counts 2 per element.
    x = torch.randn(1, 1, 8, 8)
    report = flop_report(ConvBN(1, 1, 1).eval(), x)
    assert report["macs"] == 3 * 64 and report["macs_flop_counter"] == 64
    assert report["macs_disagree"] is True
    assert "aten::_native_batch_norm_legit_no_training" in report["flop_counter_uncounted_ops"]
    cov = report["macs_coverage"]["flop_counter"]
    assert 0 < cov < 1  # conv counted, BN not; relu is ignored by design
    assert cov == pytest.approx(0.5)
    assert report["macs_coverage"]["fvcore"] == 1.0  # fvcore has rules for conv and BN


def test_batchnorm_beside_a_real_conv_stays_under_the_threshold():
    # 3x3 conv 8->8: 72 MACs per element against BN's 2: 2.7% apart.
    report = flop_report(ConvBN(8, 8, 3).eval(), torch.randn(1, 8, 8, 8))
    assert report["macs"] == 8 * 64 * 74 and report["macs_flop_counter"] == 8 * 64 * 72
    assert report["macs_disagree"] is False
    strict = flop_report(ConvBN(8, 8, 3).eval(), torch.randn(1, 8, 8, 8), threshold=0.01)
    assert strict["macs_disagree"] is True


def test_coverage_is_a_fraction_of_compute_calls():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            y = torch.sigmoid(y) * y  # two uncounted elementwise calls
            return F.interpolate(y, scale_factor=2, mode="bilinear")  # fvcore counts this, flop counter not

    report = flop_report(Mixed().eval(), torch.randn(1, 3, 4, 4))
    assert report["macs_coverage"]["flop_counter"] == pytest.approx(1 / 4)
    assert report["macs_coverage"]["fvcore"] == pytest.approx(2 / 4)
    for value in report["macs_coverage"].values():
        assert 0 <= value <= 1


def test_a_failing_counter_keeps_the_other_numbers(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("trace failed\nsecond line")

    monkeypatch.setattr(flops, "FlopCountAnalysis", broken)
    report = flop_report(conv_linear_net(), torch.randn(1, 3, 16, 16))
    assert report["macs"] is None and report["macs_unsupported_ops"] is None
    assert report["macs_flop_counter"] == CONV_LINEAR_MACS_PER_IMAGE
    assert report["macs_coverage"] == {"fvcore": None, "flop_counter": 1.0}
    assert report["macs_disagree"] is None
    assert report["macs_error"] == "fvcore: RuntimeError: trace failed"


def test_a_model_that_fails_leaves_both_counts_empty():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("no forward")

    report = flop_report(Broken(), torch.randn(1, 3, 4, 4))
    assert report["macs"] is None and report["macs_flop_counter"] is None
    assert report["macs_error"] == "fvcore: ValueError: no forward; flop_counter: ValueError: no forward"


def test_disagree_arithmetic():
    assert disagree(100, 106) is True  # 6 / 106 = 5.7%
    assert disagree(100, 105) is False  # 5 / 105 = 4.8%
    assert disagree(0, 0) is False
    assert disagree(None, 5) is None
