"""`segbench train`: a zoo model trained on a dataset with its recipe, on CPU or CUDA, DDP through torchrun.

The run is resumable: every `save_every` iterations (and on a time limit or an interruption) the model,
optimizer and iteration are written atomically to `<out>.resume.pt`; starting the same command again
continues from it. A run that completes its iterations removes it.
Batches are a pure function of (seed, iteration, rank), so a resumed run sees the same data as an
uninterrupted one. At the end the model's state_dict goes to `<out>` (atomically) with a JSON sidecar
`<out>.json` (recipe, iterations, dataset, seed, commit, budget, stop reason) and a JSON Lines log
`<out>.log` (loss, lr, elapsed and CPU seconds every `log_every` iterations; not `.jsonl`, which in a results
folder means a results file).

The budget is `recipe.iterations` and optionally a wall-clock `time_limit_s`, whichever ends first; the
poly schedule follows the larger of the two fractions (see `schedule_progress`), and the sidecar states
which one ended the run.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import UsageError
from bench.eval.datasets import IGNORE, SegDataset, load_dataset
from bench.eval.transforms import augment
from bench.store import save_checkpoint, save_torch, write_atomic
from zoo.evaluation import Recipe
from zoo.registry import get_preprocess


@dataclass
class TrainConfig:
    model: str
    dataset: str
    data_root: Path
    split: str
    out: Path
    recipe: Recipe
    seed: int = 0
    device: str = "cpu"
    time_limit_s: float | None = None  # wall-clock cap: stop (resumably) when reached
    save_every: int = 50
    log_every: int = 10


def class_weights(dataset: SegDataset, c: float) -> torch.Tensor:
    """ENet's weighting w_k = 1 / ln(c + p_k), p_k the frequency of class k over the (non-ignored) pixels."""
    counts = np.zeros(dataset.num_classes, dtype=np.int64)
    for i in range(len(dataset)):
        label = dataset[i].label
        counts += np.bincount(label[label != IGNORE].ravel(), minlength=dataset.num_classes)[
            : dataset.num_classes
        ]
    p = counts / max(counts.sum(), 1)
    return torch.tensor(1.0 / np.log(c + p), dtype=torch.float32)


def seg_loss(logits: torch.Tensor, target: torch.Tensor, recipe: Recipe, weight: torch.Tensor | None):
    """Cross entropy with IGNORE, optional class weights, optional OHEM (hard pixels with p_true < thresh)."""
    if recipe.ohem_thresh is None:
        return F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE)
    pixel = F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE, reduction="none").flatten()
    valid = target.flatten() != IGNORE
    pixel = pixel[valid]
    if pixel.numel() == 0:
        return logits.sum() * 0
    thresh = -math.log(recipe.ohem_thresh)
    hard = pixel[pixel > thresh]
    if hard.numel() < min(recipe.ohem_min_kept, pixel.numel()):
        hard = pixel.topk(min(recipe.ohem_min_kept, pixel.numel())).values
    return hard.mean()


def total_loss(output, target, recipe: Recipe, weight) -> torch.Tensor:
    """Main loss plus `aux_weight` x each training-only head's loss (a model returns (logits, [aux]) in train
    mode when it has aux heads; see the zoo's `aux_heads`)."""
    if isinstance(output, (tuple, list)):
        main, aux = output[0], list(output[1]) if len(output) > 1 else []
    else:
        main, aux = output, []
    loss = seg_loss(main, target, recipe, weight)
    for head in aux:
        loss = loss + recipe.aux_weight * seg_loss(head, target, recipe, weight)
    return loss


def schedule_progress(recipe: Recipe, it: int, elapsed_s: float, time_limit_s: float | None) -> float:
    """How far through its budget a run is: the iteration fraction, or the time fraction when a wall-clock
    limit is set and binds first (so a time-budgeted run still anneals its LR to the end)."""
    progress = it / recipe.iterations
    if time_limit_s:
        progress = max(progress, elapsed_s / time_limit_s)
    return min(progress, 1.0)


def lr_at(recipe: Recipe, it: int, progress: float | None = None) -> float:
    if recipe.warmup_iters and it < recipe.warmup_iters:
        return recipe.lr * (it + 1) / recipe.warmup_iters
    if recipe.schedule == "constant":
        return recipe.lr
    progress = it / recipe.iterations if progress is None else progress
    return recipe.lr * (1 - progress) ** recipe.power


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
        )
    raise UsageError(f"unknown optimizer {recipe.optimizer!r} in the recipe (sgd or adam)")


def batch_at(dataset: SegDataset, recipe: Recipe, seed: int, it: int, rank: int, world: int, preprocess):
    """The (inputs, targets) of iteration `it` on `rank`: epochs are seeded permutations, each rank takes its
    own slice of the global batch, augmentation draws from a generator seeded by (seed, it, rank)."""
    n = len(dataset)
    per_rank = recipe.batch_size
    start = it * per_rank * world + rank * per_rank
    images, labels = [], []
    rng = np.random.default_rng([seed, it, rank])
    for k in range(start, start + per_rank):
        epoch, pos = divmod(k, n)
        index = int(np.random.default_rng([seed, epoch]).permutation(n)[pos])
        sample = dataset[index]
        image, label = augment(
            sample.image, sample.label, rng, recipe.crop_hw, recipe.scale_range, recipe.flip
        )
        images.append(image)
        labels.append(label)
    return preprocess(np.stack(images)), torch.from_numpy(np.stack(labels))


def _dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns the sidecar dict written next to the final checkpoint."""
    import zoo
    from bench.env import git_state

    rank, world = _dist_info()
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        device = torch.device("cuda", torch.cuda.current_device())

    dataset = load_dataset(cfg.dataset, cfg.data_root, cfg.split)
    recipe = cfg.recipe
    torch.manual_seed(cfg.seed)
    model = zoo.create_model(cfg.model, num_classes=dataset.num_classes).to(device).train()
    optimizer = make_optimizer(model, recipe)
    preprocess = get_preprocess(cfg.model)
    weight = class_weights(dataset, recipe.class_weight_c).to(device) if recipe.class_weighting else None

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    resume_path = out.with_name(out.name + ".resume.pt")
    log_path = out.with_name(out.name + ".log")
    start_it, spent_s, spent_cpu_s = 0, 0.0, 0.0
    if resume_path.is_file():
        state = torch.load(resume_path, map_location=device, weights_only=True)
        if state["model_name"] != cfg.model or state["iterations"] != recipe.iterations:
            raise UsageError(
                f"{resume_path} is from another run ({state['model_name']}, "
                f"{state['iterations']} iterations); remove it or choose another --out"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_it, spent_s, spent_cpu_s = state["iteration"], state["elapsed_s"], state["cpu_s"]
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    t0, c0 = time.monotonic(), time.process_time()
    stop_reason = "iterations"
    it = start_it
    log = open(log_path, "a", encoding="utf-8") if rank == 0 else None  # noqa: SIM115 (closed in finally)

    def save_resume():
        if rank == 0:
            save_torch(
                {
                    "model_name": cfg.model,
                    "iterations": recipe.iterations,
                    "iteration": it,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "elapsed_s": spent_s + time.monotonic() - t0,
                    "cpu_s": spent_cpu_s + time.process_time() - c0,
                },
                resume_path,
            )

    try:
        while it < recipe.iterations:
            if cfg.time_limit_s is not None and spent_s + time.monotonic() - t0 >= cfg.time_limit_s:
                stop_reason = "time_limit"
                break
            lr = lr_at(
                recipe, it, schedule_progress(recipe, it, spent_s + time.monotonic() - t0, cfg.time_limit_s)
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = batch_at(dataset, recipe, cfg.seed, it, rank, world, preprocess)
            loss = total_loss(net(x.to(device)), y.to(device), recipe, weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            it += 1
            if log is not None and (it % cfg.log_every == 0 or it == 1):
                log.write(
                    json.dumps(
                        {
                            "iteration": it,
                            "loss": round(loss.item(), 5),
                            "lr": lr,
                            "elapsed_s": round(spent_s + time.monotonic() - t0, 2),
                            "cpu_s": round(spent_cpu_s + time.process_time() - c0, 2),
                        }
                    )
                    + "\n"
                )
                log.flush()
            if it % cfg.save_every == 0:
                save_resume()
    finally:
        save_resume()
        if log is not None:
            log.close()

    sidecar = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "split": cfg.split,
        "num_classes": dataset.num_classes,
        "n_images": len(dataset),
        "recipe": recipe.to_dict(),
        "iterations_planned": recipe.iterations,
        "iterations_done": it,
        "stop_reason": stop_reason,
        "seed": cfg.seed,
        "device": cfg.device,
        "world_size": world,
        "threads": torch.get_num_threads(),
        "preprocess": preprocess.to_dict(),
        "elapsed_s": round(spent_s + time.monotonic() - t0, 1),
        "cpu_s": round(spent_cpu_s + time.process_time() - c0, 1),
        "time_limit_s": cfg.time_limit_s,
        **git_state(),
    }
    if rank == 0:
        save_checkpoint(model.state_dict(), out)  # .pt or .safetensors, atomically
        write_atomic(out.with_name(out.name + ".json"), json.dumps(sidecar, indent=1, sort_keys=True) + "\n")
        if stop_reason == "iterations":  # done: the resume state (optimizer too, larger) is not needed
            resume_path.unlink(missing_ok=True)
    if world > 1:
        torch.distributed.barrier()
    return sidecar
