"""One architecture family per module; importing a module registers its builders."""

from zoo.models import bisenetv2, deeplabv3, mobilenetv2, pphumanseg  # noqa: F401
