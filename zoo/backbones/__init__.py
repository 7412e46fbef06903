"""Feature extractors: forward(x) -> list of features by increasing stride, plus `feature_info`."""

from zoo.backbones.hrnet import HRNetTrunk
from zoo.backbones.resnet import ResNetFeatures, projection_unit

__all__ = ["HRNetTrunk", "ResNetFeatures", "projection_unit"]
