"""Fixture results for the report tests: schema-1 and schema-2 bench records, eval and structure records,
failed cells.

Numbers are made up for the tests (they never reach results/); names are real zoo models so that the cards'
paper numbers join in, plus one name containing markup that must render as text.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench.conditions import EvalProtocol
from bench.records import from_dict

EVIL = "<script>alert(1)</script>"


def env(machine="cpu-test-2c", timestamp="2026-01-01T00:00:00+00:00", commit="abc1234", gpu=None):
    return {
        "machine": machine,
        "timestamp": timestamp,
        "git_commit": commit,
        "git_dirty": False,
        "gpu": gpu,
        "cpu": "Test CPU",
        "torch": "2.14.1",
    }


def bench(model, latency=10.0, macs=1e9, *, status="ok", error=None, group="realtime", hw=(360, 480),
          device="cpu", precision="fp32", machine="cpu-test-2c", timestamp=None, commit="abc1234",
          schema=2, n=10, ci=None, target_met=None, stop_reason=None, gpu="NVIDIA Test GPU",
          **extra):  # fmt: skip
    ok = status == "ok"
    record = {
        "schema_version": schema,
        "model": model,
        "group": group,
        "input_hw": list(hw),
        "batch": 1,
        "device": device,
        "precision": precision,
        "status": status,
        "error": error,
        "params": 1_000_000 if ok else None,
        "macs": int(macs) if ok else None,
        "latency_ms": {"median": latency, "p10": latency, "p90": 1.1 * latency, "n": n,
                       "ci95": list(ci) if ci else None, "target_met": target_met,
                       "stop_reason": stop_reason} if ok else None,
        "fps": 1000 / latency if ok else None,
        "peak_mem_mb": 12.5 if ok else None,
        "peak_mem_method": "rss_hwm" if ok else None,
        "env": env(machine, timestamp or "2026-01-01T00:00:00+00:00", commit,
                   gpu={"name": gpu} if device == "cuda" else None),
    }  # fmt: skip
    if schema == 2:
        record.update({"kind": "bench", "backend": "eager", "channels_last": False, "cudnn_benchmark": None,
                       "tf32": None, "compile_mode": None})  # fmt: skip
    record.update(extra)
    return record


def evaluation(model, miou, dataset="cityscapes", split="val", source="authors", status="ok",
               protocol=None, resize=None, at=(1024, 2048)):  # fmt: skip
    protocol = protocol or EvalProtocol("whole")
    return {
        "schema_version": 3,
        "kind": "eval",
        "model": model,
        "dataset": dataset,
        "split": split,
        "protocol": protocol.label(),
        "protocol_spec": protocol.to_dict(),
        "status": status,
        "error": None,
        "miou": miou,
        "weights": {"source": source, "path": "/weights/x.pth"},
        "preprocess": {"resize_hw": list(resize) if resize else None},
        "cost": {"macs_at_hw": list(resize or at)},
        "env": env(),
    }


def structure(model, hw, macs, *, params=1_000_000, params_total=None, macs_flop_counter=None, batch=1,
              status="ok", timestamp="2026-01-01T00:00:00+00:00"):  # fmt: skip
    ok = status == "ok"
    return {
        "schema_version": 3,
        "kind": "structure",
        "model": model,
        "input_hw": list(hw),
        "batch": batch,
        "digest": "0123456789abcdef",
        "status": status,
        "error": None if ok else "RuntimeError: too small",
        "params": params,
        "params_total": params_total or params,
        "macs": int(macs) if ok else None,
        "macs_flop_counter": int(macs_flop_counter) if ok and macs_flop_counter else None,
        "env": env(timestamp=timestamp),
    }


MSFLIP = EvalProtocol("msflip", scales=(0.75, 1.0, 1.25), flip=True)


def records():
    """The fixture set. Expected frontier facts are asserted in the tests, by hand. It holds each defect
    the ledger and the plots once got wrong: an evaluation on another dataset than the claim's and a
    multi-scale one against a single-scale claim (hrnetv2_w18_small), ResNet-101 claims on a ResNet-50
    model (deeplabv3_r50's card), a TensorRT GPU FPS claim (bisenetv2's) with CPU records only on the CPU
    machine, a 1024x2048 FLOPs claim with MACs counted at 256x512 only (hrnetv2_w18_small), and latencies
    at mixed input sizes on one machine (256x512, 360x480, 1024x2048)."""
    return [
        bench("bisenetv2", 20.0, 25e9, ci=(19.0, 21.5), n=12, target_met=False, stop_reason="time_budget"),
        bench("fastscnn", 5.0, 1e9),
        bench("enet", 8.0, 4e9),  # dominated on MACs vs latency by fastscnn (slower and costlier)
        bench("deeplabv3_r50", 900.0, 100e9, group="semantic", hw=(256, 512), schema=1),
        bench("mobilenetv2", 30.0, 0.3e9, group="backbone", hw=(224, 224)),
        bench("bisenetv2", 4.0, 25e9, device="cuda", machine="gpu-test", precision="fp16",
              macs_flop_counter=int(27e9), macs_disagree=True,
              agreement={"reference": "eager fp32", "max_abs_diff": 0.01, "argmax_agreement_pct": 99.9},
              hardware={"before": {"sm_clock_mhz": 1980, "temperature_c": 40, "power_w": 80},
                        "after": {"sm_clock_mhz": 1755, "temperature_c": 61, "power_w": 290},
                        "throttled": True, "energy_j_per_image": 0.4},
              memory={"cpu_peak_rss_mb": None, "cuda_max_allocated_mb": 120.0, "cuda_max_reserved_mb": 160.0,
                      "nvml_used_mb": 900.0}),
        bench("fastscnn", 1.0, 1e9, device="cuda", machine="gpu-test", precision="fp16"),
        bench("bisenetv2", 22.0, 25e9, timestamp="2025-12-01T00:00:00+00:00", commit="old0001"),  # history
        bench(EVIL, status="error", error="<b>boom</b> & more"),
        bench("enet", status="oom", error="CUDA out of memory", device="cuda", machine="gpu-test",
              precision="fp16"),
        evaluation("bisenetv2", 70.1, source="official checkpoint"),
        evaluation("fastscnn", 60.0, dataset="camvid", split="test", source="trained by SegBench <i>"),
        bench("hrnetv2_w18_small", 300.0, 5e9, group="semantic", hw=(256, 512)),
        bench("hrnetv2_w18_small", 2000.0, 80e9, group="semantic", hw=(1024, 2048), ci=(1990.0, 2012.0)),
        bench("ocrnet_r101", 9000.0, 900e9, group="semantic", hw=(1024, 2048)),
        evaluation("hrnetv2_w18_small", 60.0, dataset="camvid", split="test", at=(360, 480)),
        evaluation("hrnetv2_w18_small", 72.0, protocol=MSFLIP),
        structure("hrnetv2_w18_small", (256, 512), 5e9, params=1_540_820, macs_flop_counter=4.8e9),
        structure("bisenetv2", (512, 1024), 21.0e9, params=3_341_016),
    ]  # fmt: skip


def rows(recs=None) -> list:
    """The fixture records as `reports.load` hands them to the tables: typed, each with its `source`."""
    return [dataclasses.replace(from_dict(r), source="fixture.jsonl") for r in (recs or records())]


def write(path: Path, recs=None) -> Path:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in (recs or records())))
    return path
