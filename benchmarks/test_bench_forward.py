"""Forward latency of one representative model per group, at small inputs (the whole file: ~15 s, 1 thread).

Each is built as the harness builds it (`zoo.create_inference_model`, seeded), timed under
`torch.inference_mode()` with 3 warm-up rounds and one call per round, so the rounds are the samples
`segbench compare` tests (the calibration workload timed between rounds: conftest's `calibrated`). The
calibration workload runs here too, so its history sits beside the models'.
"""

import pytest
import torch

import zoo
from bench.measure.calibration import build_workload

CASES = [
    ("mobilenetv2", (224, 224)),  # backbone
    ("pphumanseg_lite", (224, 224)),  # portrait
    ("bisenetv2", (360, 480)),  # real-time, CamVid's size
    ("deeplabv3plus_r50", (128, 256)),  # semantic: dilated ResNet-50, Cityscapes' aspect ratio
]


@pytest.mark.parametrize("name,hw", CASES, ids=[f"{n}-{h}x{w}" for n, (h, w) in CASES])
def test_forward(benchmark, calibrated, name, hw):
    torch.manual_seed(0)
    model = zoo.create_inference_model(name)
    x = torch.randn(1, 3, *hw)

    def forward():
        with torch.inference_mode():
            return model(x)

    out = calibrated(forward, rounds=20, warmup_rounds=3)
    benchmark.extra_info.update(model=name, input_hw=list(hw), group=zoo.get_card(name).group)
    assert out.shape[0] == 1


def test_calibration_workload(calibrated):
    module, x, a = build_workload()

    def forward():
        with torch.inference_mode():
            return module(x, a)

    calibrated(forward, rounds=50, warmup_rounds=5)
