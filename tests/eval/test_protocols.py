"""Inference protocols: window layout, equivalence to whole-image inference for a pointwise model, flip
handling, and the forward sizes the cost is measured from."""

import pytest
import torch
from torch import nn

from bench.errors import UsageError
from bench.eval.protocols import make_protocol, run


class Pointwise(nn.Module):
    """A 1x1 conv: its output at a pixel depends only on that pixel, so every protocol at scale 1 agrees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


def test_slide_windows_cover_the_image_and_stay_inside():
    p = make_protocol("slide", crop=(4, 6), stride=(3, 4))
    windows = p.windows((10, 13))
    covered = torch.zeros(10, 13)
    for y1, y2, x1, x2 in windows:
        assert 0 <= y1 < y2 <= 10 and 0 <= x1 < x2 <= 13
        assert (y2 - y1, x2 - x1) == (4, 6)
        covered[y1:y2, x1:x2] += 1
    assert (covered > 0).all()
    assert len(windows) == 3 * 3  # rows: ceil((10-4)/3)+1 = 3; cols: ceil((13-6)/4)+1 = 3


def test_slide_on_an_image_smaller_than_the_crop_is_one_window():
    p = make_protocol("slide", crop=(64, 64), stride=(32, 32))
    assert p.windows((20, 30)) == [(0, 20, 0, 30)]
    assert p.forward_sizes((20, 30)) == [(20, 30)]


def test_slide_and_whole_agree_for_a_pointwise_model():
    model, x = Pointwise(), torch.randn(1, 3, 10, 13)
    whole = run(make_protocol("whole"), model, x, 4)
    slide = run(make_protocol("slide", crop=(4, 6), stride=(3, 4)), model, x, 4)
    assert torch.allclose(whole, slide, atol=1e-5)


def test_msflip_at_scale_1_is_softmax_of_whole_and_flip_is_undone():
    model, x = Pointwise(), torch.randn(1, 3, 8, 8)
    p = make_protocol("msflip", scales=(1.0,), flip=True)
    assert torch.allclose(run(p, model, x, 4), model(x).softmax(1), atol=1e-5)

    class LeftHalf(nn.Module):  # not flip-equivariant: class 1 on the left half of its input
        def forward(self, x):
            out = torch.zeros(x.shape[0], 2, *x.shape[-2:])
            out[:, 1, :, : x.shape[-1] // 2] = 10
            return out

    probs = run(make_protocol("msflip", scales=(1.0,), flip=True), LeftHalf(), x, 2)
    # the mirrored pass votes for the right half, un-mirrored: both halves end at p = (1 + e^-10)/2-ish
    assert torch.allclose(probs[0, 1, :, :4], probs[0, 1, :, 4:], atol=1e-4)


def test_forward_sizes_give_the_cost_multiplier():
    assert make_protocol("whole").forward_sizes((360, 480)) == [(360, 480)]
    ms = make_protocol("msflip", scales=(0.5, 1.0), flip=True)
    assert ms.forward_sizes((360, 480)) == [(180, 240), (180, 240), (360, 480), (360, 480)]
    slide = make_protocol("slide", crop=(360, 360), stride=(240, 240))
    assert slide.forward_sizes((360, 480)) == [(360, 360), (360, 360)]


def test_protocol_records_name_and_params():
    assert make_protocol("whole").to_dict() == {"name": "whole", "params": {}}
    assert make_protocol("slide", crop=(512, 512)).to_dict() == {
        "name": "slide",
        "params": {"crop": [512, 512], "stride": [341, 341]},
    }
    assert make_protocol("msflip", scales=(0.75, 1.0)).to_dict() == {
        "name": "msflip",
        "params": {"scales": [0.75, 1.0], "flip": True},
    }
    assert make_protocol("msflip", scales=(0.75, 1.0)).label() == "msflip(scales=0.75,1, flip)"
    assert make_protocol("slide", crop=(512, 512)).label() == "slide(crop=512x512, stride=341x341)"
    assert make_protocol("whole").label() == "whole"


def test_bad_protocols_are_usage_errors():
    with pytest.raises(UsageError, match="needs --crop"):
        make_protocol("slide")
    with pytest.raises(UsageError, match="unknown protocol"):
        make_protocol("tta")
    with pytest.raises(UsageError, match="must be positive"):
        make_protocol("msflip", scales=(0.0, 1.0))
