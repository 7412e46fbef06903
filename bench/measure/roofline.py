"""Roofline: how much of the machine's achievable compute a cell used.

`measure_peaks` runs once per device and sweep: the achievable (not the datasheet) compute peak per precision
from a large square matmul, and the memory bandwidth from a large device copy, timed the way cells are timed
(CPU: perf_counter_ns with the sweep's thread count; CUDA: CUDA events). A peak is the *best* of its repeats
(the shortest time): a peak is what the machine can do, and a disturbed repeat only ever makes it look lower.
`roofline` then places one cell against those peaks: achieved TFLOP/s = 2 x MACs / median latency, and its
fraction of the peak for the cell's precision. A small fraction is normal for segmentation nets (depthwise
convs, BN, upsampling and elementwise ops are memory-bound); it says how far a model is from what the
hardware can do, not a defect. No fraction above 1 is given: where the achieved rate exceeds the measured
peak (a peak measured too low, or a convolution algorithm such as Winograd that does fewer multiplies than
the MACs counted), or the peak was measured under other threads than the cell's, the fraction is None and
`fraction_note` says why.
"""

from __future__ import annotations

import contextlib
import time

import torch

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# Sizes: large enough to reach the peak, small enough to keep the calibration to seconds. A 1024 matmul on
# CPU is 2.1 GFLOP (tens of ms on 2 cores); the copy must be well above the last-level cache (105 MiB here).
DEFAULT_MATMUL_N = {"cpu": 1024, "cuda": 8192}
DEFAULT_COPY_MB = {"cpu": 256, "cuda": 2048}
DEFAULT_REPEATS = {"cpu": 5, "cuda": 10}
WARMUP = 2
TF32_NOTE = "fp32 with torch.backends.cuda.matmul.allow_tf32 off, tf32 with it on"


def peak_keys(device_type: str, precisions) -> list[str]:
    """The peaks to measure for a sweep's precisions: on CUDA fp32 is measured with TF32 off ("fp32") and
    on ("tf32"), since cuDNN convolutions use TF32 by default; TF32 does not exist on CPU."""
    keys = []
    for p in precisions:
        if p not in DTYPES:
            raise ValueError(f"unknown precision {p!r}; expected one of {', '.join(DTYPES)}")
        wanted = ["fp32", "tf32"] if p == "fp32" and device_type == "cuda" else [p]
        keys += [k for k in wanted if k not in keys and not (k == "tf32" and device_type != "cuda")]
    return keys


@contextlib.contextmanager
def _tf32(enabled: bool | None):
    if enabled is None:
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


@contextlib.contextmanager
def _threads(n: int | None):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _time_ms(fn, device: torch.device, repeats: int) -> float:
    """The best (shortest) milliseconds of `fn()` over `repeats` timed calls, after WARMUP untimed ones."""
    for _ in range(WARMUP):
        fn()
    samples = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter_ns()
            fn()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    return min(samples)


def matmul_tflops(device: torch.device, key: str, n: int, repeats: int) -> float:
    """Achieved TFLOP/s of an n x n x n matmul in precision `key`: 2 n^3 / best seconds."""
    a = torch.randn(n, n, device=device).to(DTYPES[key])
    b = torch.randn(n, n, device=device).to(DTYPES[key])
    out = torch.empty(n, n, device=device, dtype=DTYPES[key])
    with _tf32(key == "tf32" if device.type == "cuda" else None):
        ms = _time_ms(lambda: torch.mm(a, b, out=out), device, repeats)
    return 2 * n**3 / (ms / 1e3) / 1e12


def copy_gbps(device: torch.device, megabytes: int, repeats: int) -> float:
    """Achieved GB/s of a device-to-device copy of `megabytes` MiB: 2 x bytes (read + write) / best s."""
    src = torch.ones(megabytes * 2**20 // 4, device=device)  # touched, so the pages are resident
    dst = torch.empty_like(src)
    ms = _time_ms(lambda: dst.copy_(src), device, repeats)
    return 2 * src.numel() * src.element_size() / (ms / 1e3) / 1e9


def measure_peaks(
    device: str | torch.device,
    precisions=("fp32",),
    threads: int | None = None,
    budget_s: float = 60.0,
    matmul_n: int | None = None,
    copy_mb: int | None = None,
    repeats: int | None = None,
) -> dict:
    """The device's achievable peaks, for env["calibration"]:

        {"device", "tflops": {key: TFLOP/s or None}, "gbps": GB/s or None, "method": {...}}

    Keys are from `peak_keys`. On CPU `threads` sets the thread count for the measurement (use the sweep's),
    restored afterwards. The first measurement always runs; a later one not started within `budget_s` of
    the start, or one that fails, is None and named in method["skipped"] or method["errors"]; this never
    raises for a measurement (only for an unknown precision name).
    """
    device = torch.device(device)
    kind = device.type
    n = matmul_n or DEFAULT_MATMUL_N.get(kind, 1024)
    mb = copy_mb or DEFAULT_COPY_MB.get(kind, 256)
    reps = repeats or DEFAULT_REPEATS.get(kind, 5)
    keys = peak_keys(kind, precisions)
    start = time.perf_counter()
    tflops: dict[str, float | None] = {}
    skipped, errors = [], {}

    def attempt(name, fn):
        if (tflops or skipped or errors) and time.perf_counter() - start > budget_s:  # the first always runs
            skipped.append(name)
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a calibration must not stop a sweep
            lines = str(exc).strip().splitlines()
            errors[name] = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
            return None

    with _threads(threads if kind == "cpu" else None), torch.inference_mode():
        used_threads = torch.get_num_threads()
        for key in keys:
            tflops[key] = attempt(key, lambda k=key: matmul_tflops(device, k, n, reps))
        gbps = attempt("copy", lambda: copy_gbps(device, mb, reps))
        if kind == "cuda":
            torch.cuda.empty_cache()  # give the calibration's memory back before cells run
    return {
        "device": str(device),
        "tflops": tflops,
        "gbps": gbps,
        "method": {
            "matmul": f"square torch.mm, n={n}, FLOPs 2n^3",
            "copy": f"dst.copy_(src) of {mb} MiB fp32, bytes 2x (read + write)",
            "repeats": reps,
            "warmup": WARMUP,
            "statistic": "best (shortest time) of the repeats",
            "timer": "cuda_event" if kind == "cuda" else "perf_counter_ns",
            "threads": used_threads if kind == "cpu" else None,
            "tf32": TF32_NOTE if kind == "cuda" else None,
            "seconds": round(time.perf_counter() - start, 2),
            "skipped": skipped,
            "errors": errors,
        },
    }


def roofline(
    macs: int | None,
    median_ms: float | None,
    batch: int,
    peaks: dict | None,
    precision: str,
    tf32: bool = False,
    threads: int | None = None,
) -> dict | None:
    """One cell against the measured peaks; None without MACs or latency.

    `macs` is for the whole batch (the worker counts them on the batch input x, and `median_ms` times one
    forward of that batch), so the achieved rate is 2 x macs / median seconds: `batch` does not multiply it
    (it is in the signature so that the convention is stated where the call is made). `tf32`: the cell ran
    fp32 with TF32 allowed for its dominant ops (convolutions: torch.backends.cudnn.allow_tf32, on by default
    on CUDA), so it is compared with the TF32 peak. `threads`: the cell's CPU threads; a peak measured with
    other threads gives no fraction. Never raises.

        {achieved_tflops, peak_tflops, fraction (achieved / peak, at most 1, or None), fraction_note (why
         None), peak_gbps, peak_key}
    """
    if macs is None or not median_ms:
        return None
    key = "tf32" if precision == "fp32" and tf32 else precision
    achieved = 2 * macs / (median_ms / 1e3) / 1e12
    peak = ((peaks or {}).get("tflops") or {}).get(key)
    peak_threads = ((peaks or {}).get("method") or {}).get("threads")
    fraction, note = fraction_of(achieved, peak)
    if fraction is not None and threads and peak_threads and threads != peak_threads:
        fraction, note = None, f"peak measured with {peak_threads} threads, the cell ran with {threads}"
    return {
        "achieved_tflops": achieved,
        "peak_tflops": peak,
        "fraction": fraction,
        "fraction_note": note,
        "peak_gbps": (peaks or {}).get("gbps"),
        "peak_key": key,
    }


def fraction_of(achieved: float | None, peak: float | None) -> tuple[float | None, str | None]:
    """(achieved / peak, None), or (None, why) where no fraction can be given: no peak, or an achieved
    rate above it (the peak is too low for this cell: it is never reported as a fraction above 1)."""
    if achieved is None or not peak:
        return None, "no measured peak for this precision"
    if achieved > peak:
        return None, f"peak too low: achieved {achieved:.3g} TFLOP/s above the measured peak {peak:.3g}"
    return achieved / peak, None
