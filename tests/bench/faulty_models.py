"""Models that misbehave on purpose, registered through `segbench run --plugins tests.bench.faulty_models`."""

import os
import signal
import time

import torch
from torch import nn

from zoo.card import ModelCard, Paper
from zoo.registry import register_model

CARD = ModelCard(
    group="realtime",
    paper=Paper("Test fixtures", "none", 2026),
    official_code=None,
    implementation="test",
    num_classes=2,
    input_hw=(32, 32),
    notes="Test fixture; no paper params.",
)


class Tiny(nn.Module):
    def __init__(self, num_classes=2):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class Raises(Tiny):
    def forward(self, x):
        raise RuntimeError("this model always fails")


# A worker running `fault_sleeps` writes its pid here first, when the variable is set (tests that signal it).
PIDFILE = "SEGBENCH_TEST_PIDFILE"
# `fault_flaky` fails while this variable is set (a cell that fails once, then measures).
FAIL = "SEGBENCH_TEST_FAIL"


class Sleeps(Tiny):
    def forward(self, x):
        if os.environ.get(PIDFILE):
            with open(os.environ[PIDFILE], "a") as f:
                f.write(f"{os.getpid()}\n")
        time.sleep(3600)
        return self.conv(x)


class KillsItself(Tiny):
    """Its worker dies by a signal: SIGKILL (as the OOM killer, or `kill -9`, would) or SIGUSR1."""

    def __init__(self, num_classes=2, signum=signal.SIGKILL):
        super().__init__(num_classes)
        self.signum = signum

    def forward(self, x):
        os.kill(os.getpid(), self.signum)
        time.sleep(60)
        return self.conv(x)


class Flaky(Tiny):
    def forward(self, x):
        if os.environ.get(FAIL):
            raise RuntimeError("failing while SEGBENCH_TEST_FAIL is set")
        return self.conv(x)


class OutOfMemory(Tiny):
    def forward(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (fake)")


@register_model(card=CARD)
def fault_tiny(num_classes: int = 2) -> nn.Module:
    return Tiny(num_classes)


@register_model(card=CARD)
def fault_raises(num_classes: int = 2) -> nn.Module:
    return Raises(num_classes)


@register_model(card=CARD)
def fault_sleeps(num_classes: int = 2) -> nn.Module:
    return Sleeps(num_classes)


@register_model(card=CARD)
def fault_oom(num_classes: int = 2) -> nn.Module:
    return OutOfMemory(num_classes)


class OutOfMemoryWhenLarge(Tiny):
    """Runs at small inputs, raises CUDA OOM above 32x32: a sweep must record the OOM and go on."""

    def forward(self, x):
        if x.shape[-2] * x.shape[-1] > 32 * 32:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake, input too large)")
        return self.conv(x)


@register_model(card=CARD)
def fault_oom_large(num_classes: int = 2) -> nn.Module:
    return OutOfMemoryWhenLarge(num_classes)


@register_model(card=CARD)
def fault_sigkill(num_classes: int = 2) -> nn.Module:
    return KillsItself(num_classes, signal.SIGKILL)


@register_model(card=CARD)
def fault_signal(num_classes: int = 2) -> nn.Module:
    return KillsItself(num_classes, signal.SIGUSR1)


@register_model(card=CARD)
def fault_flaky(num_classes: int = 2) -> nn.Module:
    return Flaky(num_classes)
