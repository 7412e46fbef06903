"""Execution backends: how one cell's forward is run (eager, torch.compile, CUDA graph replay, ONNX Runtime).

`prepare(model, x, execution)` does every one-time step (compiling, exporting, capturing) and times it as
`setup_s`, then hands back a `Runner`: a no-argument call that runs one forward and returns the logits as a
torch tensor on the cell's device. The latency timer only ever sees `Runner()`, so setup time can never leak
into latency; it is recorded beside it instead (the record's `compile_s`).

Global settings (cudnn autotuning, TF32, threads) are process-wide in torch; each cell runs in its own
worker process, so `apply_global_flags` sets them once for that process, before the model is built.

Backends and what their timed call contains:

- eager: `model(x)` under `torch.inference_mode()` (and autocast for fp16/bf16; weights stay fp32).
- compile: the same call on `torch.compile(model, mode=..., dynamic=False)`. Setup covers `torch.compile`
  itself and the first `COMPILE_SETUP_CALLS` calls: the first one compiles, and "reduce-overhead" records
  its CUDA graphs on the following ones.
- cuda_graph: one `CUDAGraph.replay()` on a static input captured once; the call returns the graph's
  static output tensor, which the next call overwrites (copy it to keep it).
- onnxruntime: the model exported once with the dynamo exporter (`torch.onnx.export(..., dynamo=True)`,
  which needs onnxscript; the legacy TorchScript exporter is deprecated in torch 2.14 and fails on ops such
  as max_unpool2d that ENet uses), then `InferenceSession.run` on CPUExecutionProvider. The timed call
  includes the torch -> numpy view of the input, ORT's output allocation and the numpy -> torch view of the
  output (both views are zero-copy for contiguous fp32 CPU tensors), i.e. what a torch caller pays.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.conditions import Execution

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

COMPILE_SETUP_CALLS = 3  # compile on the 1st; reduce-overhead warms up and records CUDA graphs after it
CUDA_GRAPH_WARMUP_CALLS = 3  # on a side stream before capture (cuDNN autotuning, allocator growth)


class Runner:
    """One forward per call; `setup_s` and `describe()` say what was done once before the first call."""

    def __init__(self, call: Callable[[], torch.Tensor], setup_s: float, info: dict):
        self._call = call
        self.setup_s = setup_s
        self._info = info

    def __call__(self) -> torch.Tensor:
        return self._call()

    def describe(self) -> dict:
        return dict(self._info)


def apply_global_flags(execution: Execution, threads: int | None = None) -> dict:
    """Set the process-wide torch settings the execution names (None: leave torch's default) and the CPU
    threads; return the state they are in afterwards, which the record keeps."""
    if threads:
        torch.set_num_threads(int(threads))
    if execution.cudnn_benchmark is not None:
        torch.backends.cudnn.benchmark = execution.cudnn_benchmark
    if execution.tf32 is not None:  # both places TF32 can enter an fp32 model: matmuls and cuDNN convolutions
        torch.backends.cuda.matmul.allow_tf32 = execution.tf32
        torch.backends.cudnn.allow_tf32 = execution.tf32
    if execution.cudnn_deterministic is not None:
        torch.backends.cudnn.deterministic = execution.cudnn_deterministic
    return {
        "threads": torch.get_num_threads(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


def precision_context(device: torch.device | str, precision: str):
    """fp32 runs as is; fp16/bf16 run under autocast (weights stay fp32, as in mixed-precision inference)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=DTYPES[precision])


def prepare(
    model: torch.nn.Module, x: torch.Tensor, execution: Execution, threads: int | None = None
) -> Runner:
    """A Runner for `model` on the fixed input `x` under `execution` (validated here); `threads` is ONNX
    Runtime's intra-op thread count (None: torch's current one).

    channels_last converts `model` in place (nn.Module.to does): take an eager fp32 reference output first.
    Raises RuntimeError with a one-line message when a backend cannot handle the model (e.g. ONNX export).
    """
    execution.validate()
    start = time.perf_counter()
    if execution.backend == "onnxruntime":
        call, info = _onnxruntime(model, x, threads)
    else:
        if execution.channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        build = {"eager": _eager, "compile": _compile, "cuda_graph": _cuda_graph}[execution.backend]
        call, info = build(model, x, execution)
    if execution.device == "cuda":
        torch.cuda.synchronize()
    setup_s = time.perf_counter() - start
    return Runner(
        call, setup_s, {"backend": execution.backend, "channels_last": execution.channels_last, **info}
    )


def _forward(model, x, execution):
    amp_device, precision = x.device, execution.precision

    def call():
        with torch.inference_mode(), precision_context(amp_device, precision):
            return model(x)

    return call


def _eager(model, x, execution):
    return _forward(model, x, execution), {}


def _compile(model, x, execution):
    mode = execution.compile_mode or "default"
    first_start = time.perf_counter()
    call = _forward(torch.compile(model, mode=mode, dynamic=False), x, execution)
    call()
    first_call_s = time.perf_counter() - first_start
    for _ in range(COMPILE_SETUP_CALLS - 1):
        call()
    return call, {
        "compile_mode": mode,
        "compile_dynamic": False,
        "compile_first_call_s": round(first_call_s, 4),
        "compile_setup_calls": COMPILE_SETUP_CALLS,
        "torch_version": torch.__version__,
    }


def _cuda_graph(model, x, execution):
    static_x = x.clone()  # the graph reads this buffer on every replay
    forward = _forward(model, static_x, execution)
    side = torch.cuda.Stream(device=static_x.device)
    side.wait_stream(torch.cuda.current_stream(static_x.device))
    with torch.cuda.stream(side):  # warm-up off the default stream, as torch.cuda.graph's docs require
        for _ in range(CUDA_GRAPH_WARMUP_CALLS):
            forward()
    torch.cuda.current_stream(static_x.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = forward()

    def replay():
        graph.replay()
        return static_y

    return replay, {
        "cuda_graph": "torch.cuda.graph capture, replay per call",
        "graph_warmup_calls": CUDA_GRAPH_WARMUP_CALLS,
    }


def _onnxruntime(model, x, threads):
    import onnx
    import onnxruntime as ort

    threads = int(threads) if threads else torch.get_num_threads()
    x = x.detach().to("cpu", torch.float32).contiguous()
    with tempfile.TemporaryDirectory(prefix="segbench-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            # verbose=False keeps the exporter's progress lines out of the worker's output.
            torch.onnx.export(model, (x,), str(path), dynamo=True, external_data=False, verbose=False)
        except Exception as exc:  # noqa: BLE001 - re-raised as one line; the worker records the cell as error
            raise RuntimeError(f"ONNX export failed: {_export_reason(exc)}") from exc
        proto = onnx.load(str(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # sequential execution mode runs one node at a time anyway
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        onnx_bytes = path.stat().st_size
    input_name = session.get_inputs()[0].name

    def call():
        return torch.from_numpy(session.run(None, {input_name: x.numpy()})[0])

    info = {
        "onnx_exporter": "torch.onnx.export(dynamo=True)",
        "onnx_opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        "onnx_bytes": onnx_bytes,
        "onnx_version": onnx.__version__,
        "ort_version": ort.__version__,
        "ort_providers": session.get_providers(),
        "ort_intra_op_threads": threads,
        "ort_inter_op_threads": 1,
        "ort_graph_optimization": str(options.graph_optimization_level).split(".")[-1],
        "timed_call": "numpy view of input + InferenceSession.run + torch.from_numpy of output",
    }
    return call, info


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _export_reason(exc: BaseException) -> str:
    """One line naming why export failed: torch.onnx wraps the real reason (e.g. a data-dependent branch)."""
    root = exc.__cause__ or exc
    lines = _ANSI.sub("", str(root)).strip().splitlines()
    return f"{type(root).__name__}: {lines[0].strip() if lines else ''}".rstrip(": ")
