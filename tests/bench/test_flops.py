import torch
from torch import nn

from bench.measure.flops import count_macs


def test_macs_of_conv_and_linear_equal_hand_arithmetic():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 16x16 -> 8x8
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise
        nn.Conv2d(8, 4, 1),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )
    macs, unsupported = count_macs(net, torch.randn(2, 3, 16, 16))
    per_image = (
        8 * 8 * 8 * (3 * 3 * 3)  # output elements x (Cin/groups x kh x kw); bias adds are not multiply-adds
        + 8 * 8 * 8 * (1 * 3 * 3)
        + 4 * 8 * 8 * 8
        + 4 * 8 * 8 * 10
    )
    assert macs == 2 * per_image
    assert unsupported == {}


def test_unsupported_ops_are_listed():
    class AddNet(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x) + x

    macs, unsupported = count_macs(AddNet(), torch.randn(1, 3, 4, 4))
    assert macs == 0
    assert set(unsupported) == {"aten::sigmoid", "aten::add"}
