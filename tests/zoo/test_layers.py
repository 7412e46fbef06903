import pytest
import torch
from torch import nn

from zoo.backbones import ResNetFeatures
from zoo.layers import PadToMultiple, PyramidPooling


class Stride32(nn.Module):
    """Fails unless H and W are multiples of 32, like a decoder that inverts exact strides."""

    def forward(self, x):
        h, w = x.shape[-2:]
        assert h % 32 == 0 and w % 32 == 0
        return x[:, :2]


def test_pad_to_multiple_pads_then_crops_back():
    model = PadToMultiple(Stride32(), 32)
    x = torch.randn(1, 3, 360, 480)
    out = model(x)
    assert out.shape == (1, 2, 360, 480)
    assert torch.equal(out, x[:, :2])  # zero padding at bottom/right does not move the image


def test_pad_to_multiple_leaves_classifier_logits_alone():
    model = PadToMultiple(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), 32)
    assert model(torch.randn(2, 3, 20, 20)).shape == (2, 3)


@pytest.mark.parametrize("deep_stem", [False, True])
@pytest.mark.parametrize("depth, output_stride, strides", [(18, 32, [4, 8, 16, 32]), (50, 8, [4, 8, 8, 8])])
def test_resnet_features_strides_and_feature_info(depth, output_stride, strides, deep_stem):
    net = ResNetFeatures(depth, output_stride, deep_stem=deep_stem).eval()
    with torch.inference_mode():
        feats = net(torch.randn(1, 3, 64, 96))
    assert [64 // f.shape[-2] for f in feats] == strides
    assert [f.shape[1] for f in feats] == [i["channels"] for i in net.feature_info]
    assert [i["reduction"] for i in net.feature_info] == strides


def test_resnet_basic_blocks_cannot_dilate():
    with pytest.raises(ValueError, match="cannot be dilated"):
        ResNetFeatures(18, output_stride=8)


def test_pyramid_pooling_concatenates_input_and_branches():
    ppm = PyramidPooling(16, 4, bins=(1, 2, 3, 6)).eval()
    out = ppm(torch.randn(1, 16, 12, 20))
    assert out.shape == (1, ppm.out_channels, 12, 20) and ppm.out_channels == 32
