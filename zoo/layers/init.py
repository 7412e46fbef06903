"""Weight initialisation shared by models trained from scratch (or whose heads are)."""

from __future__ import annotations

from torch import nn


def kaiming_init_(module: nn.Module, mode: str = "fan_out", skip: str | None = None) -> None:
    """Kaiming-normal conv weights (ReLU gain) and zero conv biases, BN weight 1 and bias 0, in place.

    `skip`: a submodule name prefix left untouched (e.g. a pretrained-style backbone with its own init).
    """
    for name, m in module.named_modules():
        if skip is not None and name.startswith(skip):
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
