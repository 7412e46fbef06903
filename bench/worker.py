"""Measuring one cell, inside its own worker process (see bench.run for the isolation).

Order matters: peak memory is taken over model construction and the first forward in a fresh process, before
timing and FLOP counting can inflate the high-water mark.
"""

from __future__ import annotations

import contextlib
import importlib

import torch

import zoo
from bench.measure.flops import count_macs
from bench.measure.latency import TimingPolicy, call_timer, sample_latency, timer_name
from bench.measure.memory import PeakMemory
from bench.measure.params import count_params
from bench.measure.stats import summarize
from bench.spec import Cell

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def import_plugins(modules: tuple[str, ...]) -> None:
    """Import modules that register extra models (a user's own, or test fixtures)."""
    for name in modules:
        importlib.import_module(name)


def precision_context(device: torch.device, precision: str):
    """fp32 runs as is; fp16/bf16 run under autocast (weights stay fp32, as in mixed-precision inference)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def conditions(device: torch.device, precision: str) -> dict:
    """Settings that change a latency number, recorded beside it."""
    cuda = device.type == "cuda"
    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "precision_mode": "fp32" if precision == "fp32" else f"autocast {precision}",
        "channels_last": False,
        "compile": None,
        "grad_mode": "inference_mode",
        "timer": timer_name(device),
        "cudnn_benchmark": torch.backends.cudnn.benchmark if cuda else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if cuda else None,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32 if cuda else None,
    }


def measure_cell(cell: Cell, policy: TimingPolicy, threads: int | None = None) -> dict:
    """All measurements of one cell, as record fields."""
    device = torch.device(cell.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA requested but torch.cuda.is_available() is False on this machine")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    amp = precision_context(device, cell.precision)

    with PeakMemory(device) as memory:
        # Built outside inference_mode: fvcore traces the same model afterwards.
        model = zoo.create_inference_model(cell.model).to(device)
        x = torch.randn(cell.batch, 3, *cell.input_hw, device=device)
        with torch.inference_mode(), amp:
            output_shape = list(model(x).shape)

    def forward():
        with torch.inference_mode(), amp:
            return model(x)

    samples, warmup = sample_latency(forward, policy, call_timer(device))
    latency = summarize(samples)

    fields = {
        "params": count_params(model, include_aux=False),  # what runs at inference
        "params_total": count_params(model),  # with training-only heads
        "output_shape": output_shape,
        "latency_ms": latency,
        "latency_samples_ms": [round(s, 4) for s in samples],
        "fps": cell.batch * 1000.0 / latency["median"],
        "peak_mem_mb": round(memory.peak_mb, 2),
        "peak_mem_method": memory.method,
        "conditions": {**conditions(device, cell.precision), **warmup, "timing_policy": policy.as_dict()},
    }
    # FLOP counting is a trace of its own; its failure must not lose the timing above.
    try:
        macs, unsupported = count_macs(model, x)
        fields.update(macs=macs, macs_counter="fvcore", macs_unsupported_ops=unsupported, macs_error=None)
    except Exception as exc:  # noqa: BLE001 - recorded, not raised
        fields.update(macs=None, macs_counter="fvcore", macs_unsupported_ops=None, macs_error=one_line(exc))
    return fields


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return "out of memory" in text or "can't allocate memory" in text
