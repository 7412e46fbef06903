"""Measuring one cell, inside one worker process (bench.isolation); a cell is measured in several such
processes, one per round of the sweep (bench.run), which combines them.

Order matters: peak memory is taken over model construction, backend setup and the first forward in a fresh
process, before timing, the reference forward and structure counting can inflate the high-water mark. The
first forward is also the first warm-up call. What the model is (params, MACs by both counters, output
shape) does not depend on the process: it is counted once per model, input and batch (bench.structure),
after the timing, and only when the runner's structure store has no count for this model's digest.

A worker that shares its GPU with other workers (the GPU window, bench.window_turns) is given `turns`: it
builds the model on the CPU first, then asks for a turn before each part that touches the device, the
timed part being the only one that needs the device to itself (see `Turns`).
"""

from __future__ import annotations

import contextlib
import importlib
import time

import torch

import zoo
from bench.measure.agreement import output_agreement, reference_output
from bench.measure.backends import apply_global_flags, prepare
from bench.measure.calibration import PROCESS_POLICY, calibration_samples, time_calibration
from bench.measure.hardware import HardwareMonitor
from bench.measure.latency import TimingPolicy, call_timer, sample_latency, timer_name
from bench.measure.memory import PeakMemory
from bench.measure.roofline import measure_peaks
from bench.measure.stats import summarize
from bench.spec import Cell
from bench.structure import measure_structure, structure_digest


def import_plugins(modules: tuple[str, ...]) -> None:
    """Import modules that register extra models (a user's own, or test fixtures), after the installed
    packages' `segbench.models` entry points (zoo.plugins)."""
    zoo.load_entry_points()
    for name in modules:
        try:
            importlib.import_module(name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a SyntaxError, sys.exit(), a failed registration
            lines = str(exc).strip().splitlines()
            if isinstance(exc, ImportError) and lines and name in lines[0]:  # "No module named 'name'"
                raise ImportError(lines[0]) from exc
            raise ImportError(
                f"{name}: {type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
            ) from exc


def conditions(cell: Cell, runner, flags: dict) -> dict:
    """Settings that change a latency number as they were while measuring (beyond the cell's own axes,
    which the record holds), recorded beside it. `flags`: torch's global settings after applying them."""
    cuda = cell.execution.device == "cuda"
    return {
        "threads": flags["threads"],
        "interop_threads": torch.get_num_interop_threads(),
        "precision_mode": "fp32"
        if cell.execution.precision == "fp32"
        else f"autocast {cell.execution.precision}",
        "backend_details": runner.describe(),
        "grad_mode": "inference_mode",
        "timer": timer_name(cell.execution.device),
        **{name: flags[name] if cuda else None for name in flags if name != "threads"},
        "peak_mem_scope": "model build, backend setup and first forward",
    }


class Turns:
    """When a worker may use its device. Workers that share one GPU (the GPU window) ask for a turn before
    each part of their work that touches it: `setup` (moving the model, backend set-up, first forward) and
    `after` (output agreement) may share the GPU with other workers' set-up, `timed` (warm-up, sampling and
    the calibration beside them) has it to itself. `waited_s`: seconds spent waiting for turns so far, left
    out of the process's set-up time. This base class gives every turn at once."""

    waited_s = 0.0

    def setup(self):
        return contextlib.nullcontext()

    def timed(self):
        return contextlib.nullcontext()

    def after(self):
        return contextlib.nullcontext()


def _build_on_cpu(cell: Cell) -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.create_inference_model(cell.model)


def _on_device(cell: Cell, model: torch.nn.Module, device: torch.device):
    model = model.to(device)
    return model, torch.randn(cell.execution.batch, 3, *cell.execution.input_hw, device=device)


def _build(cell: Cell, device: torch.device):
    """The cell's model and input; seeded, so that a second build has the same weights and input (the model
    is built on the CPU and moved; the input drawn on the device, from its generator seeded alike)."""
    model = _build_on_cpu(cell)
    return _on_device(cell, model, device)


def reference_output_of(cell: Cell, device: torch.device) -> torch.Tensor:
    """The eager fp32 output of a fresh build of the same model on the same input: built anew after timing,
    so that neither the condition's in-place changes (channels_last) nor a second forward touch the cell."""
    return reference_output(*_build(cell, device))


def measure_cell(
    cell: Cell,
    policy: TimingPolicy,
    threads: int | None = None,
    started: float | None = None,
    agreement: bool = True,
    known_structures: frozenset[str] | None = None,
    turns: Turns | None = None,
) -> dict:
    """One worker process's measurements of `cell`, as fields that bench.run combines over processes.

    `started`: `time.monotonic()` when the runner started this process, so that its set-up time (start,
    build, first forward) is known and the sampling is at least `policy.setup_ratio` times as long
    (`TimingPolicy.for_setup`). `agreement`: compare the output with a fresh eager fp32 build (once per
    cell is enough). `known_structures`: None to skip structure; else the digests already counted at this
    input and batch: the model's digest is returned as `structure_digest`, and unless it is among them the
    structure is counted after the timing and returned as `structure` (a StructureRecord's dict).
    `turns`: when this worker shares its device (see `Turns`); None: it has it to itself. With turns, the
    model is built on the CPU before the first turn (on CUDA the peak memory, device memory only, is the
    same; on the CPU it then leaves the build out).
    """
    started = time.monotonic() if started is None else started
    execution = cell.execution.validate()
    device = torch.device(execution.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA requested but torch.cuda.is_available() is False on this machine")
    flags = apply_global_flags(execution, threads)
    zoo.check_model(cell.model)  # imports a library model's library now, outside the memory peak
    timer = call_timer(device)

    built = _build_on_cpu(cell) if turns is not None else None
    turns = turns or Turns()

    with turns.setup():
        with PeakMemory(device) as memory:
            model, x = _build(cell, device) if built is None else _on_device(cell, built, device)
            runner = prepare(model, x, execution, threads)  # compile/export/capture: timed apart, as setup_s
            first = {}
            first_ms = timer(lambda: first.setdefault("output", runner()))
        output = first["output"]
        gpu_index = (
            (device.index if device.index is not None else torch.cuda.current_device())
            if device.type == "cuda"
            else None
        )
    digest = structure_digest(model) if known_structures is not None else None

    monitor = HardwareMonitor(gpu_index) if device.type == "cuda" else contextlib.nullcontext()
    with turns.timed():
        # The calibration workload is timed right before and after the sampling, so that `segbench compare`
        # can divide out what the machine did meanwhile (a noisy neighbour, a clock change).
        calibration = calibration_samples(device, threads, PROCESS_POLICY)
        setup_s = time.monotonic() - started - turns.waited_s
        with monitor:
            samples, timing = sample_latency(runner, policy.for_setup(setup_s), timer, first_ms=first_ms)
        calibration += calibration_samples(device, threads, PROCESS_POLICY)
    latency = summarize(samples, confidence=policy.confidence, target_rel=policy.ci_target_rel)
    latency["stop_reason"] = timing.pop("stop_reason")

    fields = {
        "output_shape": list(output.shape),
        "latency_ms": latency,
        "latency_samples_ms": [round(s, 4) for s in samples],
        "peak_mem_mb": round(memory.peak_mb, 2),
        "peak_mem_method": memory.method,
        "memory": memory.details,
        # The monitor spans warm-up and sampling, so energy is divided by the images of both.
        "hardware": (
            monitor.result(images=execution.batch * (timing["warmup_iters"] + len(samples)))
            if device.type == "cuda"
            else None
        ),
        "compile_s": round(runner.setup_s, 3),
        "calibration_samples_ms": [round(s, 4) for s in calibration],
        "agreement": None,
        "conditions": {**conditions(cell, runner, flags), **timing, "timing_policy": policy.as_dict()},
        "process": {"setup_s": round(setup_s, 4), "first_call_ms": round(first_ms, 4), **timing},
        "structure_digest": digest,
        "structure": None,
    }
    if agreement and not execution.is_reference:
        reference = _build_on_cpu(cell) if built is not None else None
        with turns.after():
            if reference is None:
                expected = reference_output_of(cell, device)
            else:
                expected = reference_output(*_on_device(cell, reference, device))
            fields["agreement"] = output_agreement(expected, output.float())
    if digest is not None and digest not in known_structures:
        del model, runner, output, first  # the count builds its own seeded eager model, on this device
        begin = time.monotonic()
        try:
            with turns.after():
                record = measure_structure(
                    cell.model, execution.input_hw, execution.batch, device=execution.device
                )
            fields["structure"] = record.to_dict()
        except Exception as exc:  # noqa: BLE001 - the timing stands; the next cell of this model counts again
            fields["process"]["structure_error"] = one_line(exc)
        fields["process"]["structure_s"] = round(time.monotonic() - begin, 3)
    return fields


def calibrate(device: str, precisions: tuple[str, ...], threads: int | None = None) -> dict:
    """The run's calibration: the fixed reference workload's latency and the device's measured peaks."""
    if threads:
        torch.set_num_threads(threads)
    return {
        "workload": time_calibration(device, threads),
        "peaks": measure_peaks(device, precisions, threads),
    }


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return "out of memory" in text or "can't allocate memory" in text
