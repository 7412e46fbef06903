"""A fixed calibration workload, timed in the same run as the models, to normalise latency across runs.

On a shared or throttled machine every latency of a run can be uniformly slower (a noisy neighbour, a lower
clock). Timing one fixed workload in the same run measures that factor: the ratio of a model's median to the
calibration median cancels it, so `bench.compare` can tell a model that got slower from a machine that did.
The workload is what segmentation models spend their time on (3x3 convolutions, a pointwise projection, a
matmul), a few milliseconds on one CPU core, on fixed-seed weights and input. Its `WORKLOAD` string names
its version: change the workload, bump the version, and comparisons refuse to normalise across versions.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.measure.latency import TimingPolicy, call_timer, sample_latency
from bench.measure.stats import summarize

WORKLOAD = "segbench-calibration-v1: 3x conv3x3 32ch + conv1x1 on 1x32x64x64, 256x256 matmul, fp32"

# Short: the calibration is a reference, timed on every sweep; one to three seconds on a CPU.
CALIBRATION_POLICY = TimingPolicy(
    warmup_iters=5,
    warmup_s=0.2,
    warmup_max_s=1.0,
    min_samples=30,
    min_time_s=0.5,
    max_samples=500,
    max_time_s=2.0,
)
# Shorter, for timing it right beside each measurement (benchmarks/conftest.py): load on a shared machine
# changes within seconds, so a calibration next to the measurement tracks it better than one per run.
ADJACENT_POLICY = TimingPolicy(
    warmup_iters=3,
    warmup_s=0.05,
    warmup_max_s=0.3,
    min_samples=15,
    min_time_s=0.15,
    max_samples=200,
    max_time_s=0.4,
)

# Shortest, timed before and after each worker process's sampling in a sweep: a cell is measured in several
# processes spread over the sweep, so its calibration pools every process's (bench.run), and each costs
# about 0.1 s of the process's set-up rather than half a second.
PROCESS_POLICY = TimingPolicy(
    warmup_iters=2,
    warmup_s=0.02,
    warmup_max_s=0.1,
    min_samples=10,
    min_time_s=0.04,
    max_samples=100,
    max_time_s=0.08,
)


class _Workload(nn.Module):
    def __init__(self, channels: int = 32):
        super().__init__()
        self.convs = nn.Sequential(
            *(m for _ in range(3) for m in (nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.convs(x).mean() + (a @ a).mean()


def build_workload(device: torch.device | str = "cpu") -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The workload module and its two inputs, identical on every call (own seeded generator)."""
    generator = torch.Generator().manual_seed(1234)
    module = _Workload()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    x = torch.randn(1, 32, 64, 64, generator=generator)
    a = torch.randn(256, 256, generator=generator) / 16
    return module.eval().to(device), x.to(device), a.to(device)


def calibration_samples(
    device: torch.device | str = "cpu", threads: int | None = None, policy: TimingPolicy = CALIBRATION_POLICY
) -> list[float]:
    """Latency samples (ms) of the calibration workload on this machine, now.

    `threads` sets torch's intra-op threads for the timing (restored after), so that it runs under the same
    condition as the models it normalises.
    """
    device = torch.device(device)
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        module, x, a = build_workload(device)

        def forward():
            with torch.inference_mode():
                return module(x, a)

        samples, _ = sample_latency(forward, policy, call_timer(device))
        return samples
    finally:
        torch.set_num_threads(previous)


def calibration_summary(samples: list[float], threads: int | None, device: torch.device | str) -> dict:
    """{workload, median_ms, ci95, n, threads, device}: what results store and `bench.compare` reads."""
    summary = summarize(samples)
    return {
        "workload": WORKLOAD,
        "median_ms": summary["median"],
        "ci95": list(summary["ci95"]),
        "n": summary["n"],
        "threads": threads,
        "device": torch.device(device).type,
    }


def time_calibration(
    device: torch.device | str = "cpu", threads: int | None = None, policy: TimingPolicy = CALIBRATION_POLICY
) -> dict:
    """{workload, median_ms, ci95, n, threads, device} of the calibration workload on this machine, now."""
    samples = calibration_samples(device, threads, policy)
    return calibration_summary(samples, threads or torch.get_num_threads(), device)
