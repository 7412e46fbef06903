from torch import nn

from bench.measure.params import count_params
from zoo.layers import PadToMultiple


class WithAux(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)  # 8 parameters
        self.aux_heads = nn.ModuleList([nn.Conv2d(3, 2, 1)])  # 8 more, training only


def test_aux_heads_are_excluded_on_request_also_inside_a_wrapper():
    model = WithAux()
    assert count_params(model) == 16 and count_params(model, include_aux=False) == 8
    padded = PadToMultiple(model, 8)
    assert count_params(padded) == 16 and count_params(padded, include_aux=False) == 8


def test_buffers_are_not_parameters():
    bn = nn.BatchNorm2d(4)  # weight + bias; running stats are buffers
    assert count_params(bn) == 8
