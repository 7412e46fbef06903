import contextlib
import time

import pytest
import torch
from torch import nn

import zoo
from bench.conditions import Execution
from bench.errors import UsageError
from bench.measure import backends
from bench.measure.agreement import output_agreement, reference_output
from bench.measure.backends import apply_global_flags, prepare


def small_net():
    """A conv segmenter in miniature: 3 -> 4 classes at the input size, with BN and a non-trivial layout."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)
    ).eval()
    return net, torch.randn(1, 3, 16, 20)


def zoo_model(name="enet"):
    """ENet at 64x64: 19 classes, logits of order 0.1, max-unpooling (the legacy ONNX exporter lacks it)."""
    torch.manual_seed(0)
    return zoo.create_inference_model(name), torch.randn(1, 3, 64, 64)


def assert_agrees(reference, output, rel=1e-4):
    result = output_agreement(reference, output)
    assert result["max_abs_diff"] <= rel * result["reference_max_abs"], result
    assert result["argmax_agreement_pct"] >= 99.9, result


def ex(**fields) -> Execution:
    """An execution of the small net's input size."""
    return Execution((16, 20), **fields)


def test_prepare_validates_first():
    net, x = small_net()
    with pytest.raises(UsageError, match="cuda_graph needs --device cuda"):
        prepare(net, x, ex(backend="cuda_graph"))


# --- apply_global_flags -----------------------------------------------------------------------------


@pytest.fixture
def restore_flags():
    saved = (
        torch.get_num_threads(),
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.deterministic,
    )
    yield
    torch.set_num_threads(saved[0])
    torch.backends.cudnn.benchmark = saved[1]
    torch.backends.cuda.matmul.allow_tf32 = saved[2]
    torch.backends.cudnn.allow_tf32 = saved[3]
    torch.backends.cudnn.deterministic = saved[4]


@pytest.mark.parametrize("on", [True, False])
def test_global_flags_are_set_and_reported(restore_flags, on):
    # The flags are plain process state, settable without a GPU; validate() is not called here.
    torch.backends.cudnn.benchmark = torch.backends.cuda.matmul.allow_tf32 = not on
    torch.backends.cudnn.allow_tf32 = not on
    state = apply_global_flags(
        ex(device="cuda", cudnn_benchmark=on, tf32=on, cudnn_deterministic=on), threads=1
    )
    assert state == {
        "threads": 1,
        "cudnn_benchmark": on,
        "cudnn_deterministic": on,
        "tf32_matmul": on,
        "tf32_cudnn": on,
    }
    assert torch.backends.cudnn.deterministic is on
    assert torch.backends.cudnn.benchmark is on
    assert torch.backends.cuda.matmul.allow_tf32 is on
    assert torch.backends.cudnn.allow_tf32 is on
    assert torch.get_num_threads() == 1


def test_unset_flags_are_left_alone(restore_flags):
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True
    state = apply_global_flags(ex())
    assert (state["cudnn_benchmark"], state["tf32_matmul"], state["tf32_cudnn"]) == (True, False, True)


# --- eager ------------------------------------------------------------------------------------------


def test_eager_is_the_plain_forward():
    net, x = small_net()
    runner = prepare(net, x, ex())
    out = runner()
    with torch.no_grad():
        assert torch.equal(out, net(x))
    assert out.is_inference()  # ran under inference_mode
    assert runner.setup_s >= 0
    assert runner.describe() == {"backend": "eager", "channels_last": False}


def test_eager_bf16_runs_under_autocast():
    net, x = small_net()
    out = prepare(net, x, ex(precision="bf16"))()
    assert out.dtype == torch.bfloat16
    assert net[0].weight.dtype == torch.float32  # weights stay fp32, as in mixed-precision inference
    assert_agrees(reference_output(net, x), out, rel=5e-2)


def test_channels_last_equals_eager_on_a_small_net():
    net, x = small_net()
    reference = reference_output(net, x)
    runner = prepare(net, x, ex(channels_last=True))
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert runner.describe()["channels_last"] is True
    assert_agrees(reference, runner())


def test_channels_last_equals_eager_on_a_zoo_model():
    model, x = zoo_model()
    reference = reference_output(model, x)
    assert_agrees(reference, prepare(model, x, ex(channels_last=True))())


# --- onnxruntime ------------------------------------------------------------------------------------


@pytest.fixture
def counted_export(monkeypatch):
    """Counts torch.onnx.export calls, to show export happens in setup and never inside a call."""
    calls = []
    real = torch.onnx.export

    def export(*args, **kwargs):
        calls.append(kwargs.get("dynamo"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", export)
    return calls


def test_onnxruntime_agrees_with_eager_and_exports_once(counted_export):
    net, x = small_net()
    reference = reference_output(net, x)
    runner = prepare(net, x, ex(backend="onnxruntime"), threads=1)
    assert counted_export == [True]  # the dynamo exporter, once, during prepare
    start = time.perf_counter()
    outputs = [runner() for _ in range(3)]
    calls_s = time.perf_counter() - start
    assert counted_export == [True]
    assert runner.setup_s > calls_s  # export + session build is far slower than three tiny forwards
    for out in outputs:
        assert isinstance(out, torch.Tensor) and out.device.type == "cpu" and out.dtype == torch.float32
        assert_agrees(reference, out, rel=1e-5)
    info = runner.describe()
    assert info["ort_providers"] == ["CPUExecutionProvider"]
    assert info["ort_intra_op_threads"] == 1
    assert isinstance(info["onnx_opset"], int) and info["onnx_opset"] >= 13
    assert info["ort_version"] and info["onnx_exporter"] == "torch.onnx.export(dynamo=True)"


def test_onnxruntime_threads_default_to_torchs(restore_flags):
    torch.set_num_threads(1)
    net, x = small_net()
    assert prepare(net, x, ex(backend="onnxruntime")).describe()["ort_intra_op_threads"] == 1


@pytest.mark.slow
def test_onnxruntime_agrees_with_eager_on_a_zoo_model():
    model, x = zoo_model()
    reference = reference_output(model, x)
    runner = prepare(model, x, ex(backend="onnxruntime"), threads=1)
    assert_agrees(reference, runner())


class DataDependent(nn.Module):
    """torch.export cannot trace a branch on a tensor's value."""

    def forward(self, x):
        return x * 2 if x.sum().item() > 0 else x


def test_unexportable_model_raises_one_line():
    with pytest.raises(RuntimeError, match="^ONNX export failed: ") as info:
        prepare(DataDependent().eval(), torch.randn(1, 3, 4, 4), ex(backend="onnxruntime"))
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message
    assert "data-dependent" in message  # the reason torch.onnx wrapped, not its generic banner


def test_export_reason_takes_the_wrapped_cause():
    try:
        try:
            raise ValueError("real reason\nmore detail")
        except ValueError as inner:
            raise RuntimeError("\x1b[96mgeneric banner\x1b[0m\nsteps") from inner
    except RuntimeError as outer:
        assert backends._export_reason(outer) == "ValueError: real reason"
    assert backends._export_reason(KeyError()) == "KeyError"


# --- compile ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_compile_agrees_and_compiles_only_in_setup():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    net, x = small_net()
    reference = reference_output(net, x)
    runner = prepare(net, x, ex(backend="compile"))
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1  # compiled during prepare ...
    start = time.perf_counter()
    out = runner()
    runner()
    calls_s = time.perf_counter() - start
    assert counters["stats"]["unique_graphs"] == graphs  # ... and never again inside a call
    assert runner.setup_s > calls_s
    assert 0 < runner.describe()["compile_first_call_s"] <= runner.setup_s
    assert runner.describe()["compile_mode"] == "default"
    assert_agrees(reference, out)


# --- cuda_graph -------------------------------------------------------------------------------------


@pytest.mark.cuda
def test_cuda_graph_replay_agrees_with_eager():
    net, x = small_net()
    net, x = net.cuda(), x.cuda()
    reference = reference_output(net, x)
    runner = prepare(net, x, ex(device="cuda", backend="cuda_graph"))
    assert runner.setup_s > 0
    first = runner().clone()
    assert_agrees(reference, first)
    assert torch.equal(runner(), first)  # replay of the same static input
    assert runner.describe()["graph_warmup_calls"] == backends.CUDA_GRAPH_WARMUP_CALLS


class FakeCuda:
    """Enough of torch.cuda for the capture logic: records which stream each forward ran on, and replays."""

    def __init__(self):
        self.log = []
        self.current = "default"
        fake = self

        class Stream:
            def __init__(self, device=None):
                self.name = "side"

            def wait_stream(self, other):
                fake.log.append(f"{self.name} waits for {other.name}")

        class CUDAGraph:
            def replay(self):
                fake.log.append("replay")

        self.Stream, self.CUDAGraph = Stream, CUDAGraph

    def current_stream(self, device=None):
        stream = self.Stream()
        stream.name = self.current
        return stream

    def _switch(self, name):
        @contextlib.contextmanager
        def scope():
            previous, self.current = self.current, name
            yield
            self.current = previous

        return scope()

    def stream(self, stream):
        return self._switch(stream.name)

    def graph(self, graph):
        return self._switch("capture")

    def synchronize(self, device=None):
        self.log.append("synchronize")


def test_cuda_graph_warms_up_on_a_side_stream_then_only_replays(monkeypatch):
    fake = FakeCuda()
    for name in ("Stream", "CUDAGraph", "current_stream", "stream", "graph", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((fake.current, x))
            return x + 1

    x = torch.randn(1, 3, 4, 4)
    runner = prepare(Probe(), x, ex(device="cuda", backend="cuda_graph"))
    streams = [stream for stream, _ in seen]
    assert streams == ["side"] * backends.CUDA_GRAPH_WARMUP_CALLS + ["capture"]
    static_x = seen[0][1]
    assert static_x is not x and torch.equal(static_x, x)  # the graph owns its input buffer
    assert all(inp is static_x for _, inp in seen)
    assert fake.log == ["side waits for default", "default waits for side", "synchronize"]
    assert runner.setup_s > 0

    out = runner()
    assert len(seen) == backends.CUDA_GRAPH_WARMUP_CALLS + 1  # a call replays; the model never runs again
    assert fake.log[-1] == "replay"
    assert torch.equal(out, x + 1) and runner() is out  # the graph's static output, overwritten per replay
