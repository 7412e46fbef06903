"""The one home of blocks used by more than one model. A block unique to one paper stays in its model file."""

from zoo.layers.aspp import ASPP
from zoo.layers.conv import ConvBNAct, SeparableConvBNAct
from zoo.layers.resize import resize_to

__all__ = ["ASPP", "ConvBNAct", "SeparableConvBNAct", "resize_to"]
