"""`segbench eval`: a model's accuracy on a dataset split under a protocol, as one eval record.

The model is built from the zoo (random init, or a local checkpoint through its converter), fed the way its
authors preprocessed (`zoo.registry.get_preprocess`, registered with its builder), run under the protocol,
and scored from one dataset-level confusion matrix. Under torchrun each process scores every WORLD_SIZE-th
image and the matrices are summed (all_reduce; gloo on CPU), so the numbers equal a one-process run. The
record carries the protocol's measured cost: its MACs relative to one whole-image forward (counted at the
first image's size) and its latency per image (preprocessing + protocol + argmax, data loading excluded).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.conditions import WEIGHT_SOURCES, EvalProtocol
from bench.env import portable_path
from bench.errors import UsageError
from bench.eval.datasets import DataError, load_dataset
from bench.eval.metrics import SegMetric
from bench.eval.protocols import run
from bench.records import SCHEMA_VERSION, EvalRecord, from_dict
from zoo.registry import get_preprocess


class NonFiniteScores(ValueError):
    """The model produced NaN or infinite scores (NaN weights, an overflow): the evaluation has no result."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_info(checkpoint: Path | None, source: str | None = None) -> dict:
    """How the weights were obtained: a checkpoint with our training sidecar (`<file>.json`) was trained
    here, any other checkpoint is taken to be the authors' (a port), none is random init."""
    if source is not None and source not in WEIGHT_SOURCES:
        raise UsageError(f"unknown weights source {source!r} ({', '.join(WEIGHT_SOURCES)})")
    if checkpoint is None:
        if source not in (None, "random init"):  # the record would credit weights that were never loaded
            raise UsageError(f"weights source {source!r} needs --checkpoint (without one: random init)")
        return {"source": "random init", "path": None, "sha256": None}
    if not checkpoint.is_file():
        raise UsageError(f"checkpoint {checkpoint} does not exist")
    if source is None:
        source = "trained here" if checkpoint.with_name(checkpoint.name + ".json").is_file() else "authors"
    return {"source": source, "path": portable_path(checkpoint), "sha256": sha256(checkpoint)}


def build_model(name: str, num_classes: int, checkpoint: Path | None, device):
    """The zoo model in eval mode with the checkpoint loaded (converter applied), padded to its divisor."""
    import zoo
    from zoo.registry import padded
    from zoo.weights import CheckpointError, load_weights

    torch.manual_seed(0)  # random init is then the same in every process and run
    try:
        model = zoo.create_model(name, num_classes=num_classes)
    except (zoo.UnknownModelError, zoo.MissingLibraryError) as exc:
        raise UsageError(str(exc)) from None
    if checkpoint is not None:
        try:
            load_weights(model, checkpoint, name)
        except CheckpointError as exc:
            raise UsageError(str(exc)) from None
    return padded(name, model.eval()).to(device)


def count_protocol_macs(model, protocol: EvalProtocol, hw, resize_hw, device) -> dict:
    """MACs of the protocol on an image of size hw vs one whole-image forward (fvcore, one count per size)."""
    from bench.measure.flops import count_macs

    base_hw = tuple(resize_hw) if resize_hw else tuple(hw)
    cache: dict[tuple, int] = {}

    def macs(size):
        if size not in cache:
            cache[size] = count_macs(model, torch.zeros(1, 3, *size, device=device))[0]
        return cache[size]

    try:
        whole = macs(base_hw)
        total = sum(macs(tuple(s)) for s in protocol.forward_sizes(base_hw))
    except Exception as exc:  # a counter failure leaves the cost unknown, never invented
        return {
            "macs_whole": None,
            "macs_protocol": None,
            "macs_multiplier": None,
            "macs_at_hw": list(base_hw),
            "macs_error": f"{type(exc).__name__}: {exc}",
        }
    return {
        "macs_whole": whole,
        "macs_protocol": total,
        "macs_multiplier": round(total / whole, 4) if whole else None,
        "macs_at_hw": list(base_hw),
    }


def _dist(device: str) -> tuple[int, int]:
    """(rank, world size) under torchrun, initialising the process group (gloo on CPU, nccl on CUDA)."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return rank, world


def evaluate(
    model_name: str,
    dataset_name: str,
    data_root: Path,
    split: str,
    protocol: EvalProtocol,
    checkpoint: Path | None = None,
    weights_source: str | None = None,
    device: str = "cpu",
    limit: int | None = None,
    progress=None,
) -> EvalRecord:
    """Evaluate and return the eval record (not yet stored). Bad input raises UsageError up front; a data
    error met while scoring gives a record with status "error" naming the file."""
    from bench.env import collect_env

    rank, world = _dist(device)
    dev = torch.device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    dataset = load_dataset(dataset_name, data_root, split)
    weights = weights_info(Path(checkpoint) if checkpoint else None, weights_source)
    model = build_model(model_name, dataset.num_classes, Path(checkpoint) if checkpoint else None, dev)
    pre = get_preprocess(model_name)
    n = min(len(dataset), limit) if limit else len(dataset)
    metric = SegMetric(dataset.num_classes, dev)
    timing = torch.zeros(2, dtype=torch.float64)  # [seconds, images] of the protocol on this process
    record = {
        "schema_version": SCHEMA_VERSION,
        "kind": "eval",
        "model": model_name,
        "dataset": dataset_name,
        "split": split,
        "protocol": protocol.label(),
        "protocol_spec": protocol.to_dict(),
        "status": "ok",
        "error": None,
        "miou": None,
        "weights": weights,
        "preprocess": pre.to_dict(),
        "device": dev.type,
        "world_size": world,
        "data_root": portable_path(data_root),
    }
    cost = None
    try:
        with torch.inference_mode():
            for i in range(rank, n, world):
                sample = dataset[i]
                if cost is None and rank == 0:
                    cost = count_protocol_macs(model, protocol, sample.label.shape, pre.resize_hw, dev)
                label = torch.from_numpy(sample.label).to(dev)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                t0 = time.perf_counter()
                x = pre(torch.from_numpy(sample.image).to(dev))
                if pre.resize_hw:
                    x = F.interpolate(x, size=pre.resize_hw, mode="bilinear", align_corners=False)
                scores = run(protocol, model, x, dataset.num_classes)
                if not torch.isfinite(scores).all():  # NaN weights or an overflow: no score is an answer
                    raise NonFiniteScores(
                        f"the model's scores on image {i} of {dataset_name}/{split} are not finite"
                    )
                if tuple(scores.shape[-2:]) != tuple(label.shape):
                    scores = F.interpolate(scores, size=label.shape, mode="bilinear", align_corners=False)
                pred = scores.argmax(1)[0]
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                timing += torch.tensor([time.perf_counter() - t0, 1.0], dtype=torch.float64)
                metric.update(pred, label)
                if progress is not None:
                    progress(i, n)
    except (DataError, NonFiniteScores) as exc:
        record.update(status="error", error=str(exc))
    if world > 1:
        metric.all_reduce()
        timing = timing.to(dev)
        torch.distributed.all_reduce(timing)
        timing = timing.cpu()
    if record["status"] == "ok":
        s = metric.compute()
        record.update(
            miou=s["miou"],
            per_class_iou=dict(zip(dataset.class_names, s["per_class_iou"], strict=True)),
            acc=s["acc"],
            macc=s["macc"],
            conventions=s["conventions"],
            pixels=s["pixels"],
        )
        if dataset_name == "portrait":
            record["person_iou"] = s["per_class_iou"][1]
    record["n_images"] = n
    record["cost"] = {
        **(cost or {}),
        "latency_ms_per_image": round(1000 * float(timing[0] / timing[1]), 3) if timing[1] else None,
        "latency_scope": "preprocess + protocol + argmax, data loading excluded; mean over images",
        "threads": torch.get_num_threads(),
    }
    record["env"] = collect_env(dev.type)
    return from_dict(record)  # checked against the schema before anyone stores it
