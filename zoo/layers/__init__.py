"""The one home of blocks used by more than one model. A block unique to one paper stays in its model file."""

from zoo.layers.aspp import ASPP
from zoo.layers.conv import ConvBNAct, SeparableConvBNAct
from zoo.layers.heads import BlockHead, SegHead
from zoo.layers.pad import PadToMultiple
from zoo.layers.ppm import PyramidPooling
from zoo.layers.refine import AttentionRefinement, FeatureFusion
from zoo.layers.resize import resize_to
from zoo.layers.se import SqueezeExcite

__all__ = [
    "ASPP",
    "AttentionRefinement",
    "BlockHead",
    "ConvBNAct",
    "FeatureFusion",
    "PadToMultiple",
    "PyramidPooling",
    "SegHead",
    "SeparableConvBNAct",
    "SqueezeExcite",
    "resize_to",
]
