"""`segbench train`: the loss falls on a learnable task, aux heads are trained, an interrupted run resumes
to the same weights as an uninterrupted one, and the checkpoint + sidecar are complete."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import zoo
from bench.cli import main
from bench.eval import train as train_module
from bench.eval.train import TrainConfig, class_weights, lr_at, schedule_progress, total_loss, train
from zoo.evaluation import Recipe
from zoo.registry import get_recipe
from zoo.weights import load_weights


def make_learnable_camvid(root, n=6, hw=(32, 32)):
    """Label = 1 where the red channel is bright, else 0 (a 1x1 conv can learn it)."""
    rng = np.random.default_rng(0)
    for split in ("train", "trainannot"):
        (root / split).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "train" / f"{i}.png")
        Image.fromarray((image[..., 0] > 128).astype(np.uint8)).save(root / "trainannot" / f"{i}.png")
    return root


class TinyNet(nn.Module):
    """Conv + BN + a training-only aux head, returning (logits, [aux]) in train mode like the zoo's models."""

    def __init__(self, num_classes=11, **kwargs):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.ReLU())
        self.classifier = nn.Conv2d(8, num_classes, 1)
        self.aux_heads = nn.ModuleList([nn.Conv2d(8, num_classes, 1)])

    def forward(self, x):
        f = self.body(x)
        out = self.classifier(f)
        return (out, [head(f) for head in self.aux_heads]) if self.training else out


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(zoo, "create_model", lambda name, **kw: TinyNet(**kw))


RECIPE = Recipe(
    optimizer="sgd",
    lr=0.2,
    weight_decay=0.0,
    batch_size=2,
    crop_hw=(16, 16),
    scale_range=(0.75, 1.25),
    iterations=40,
    aux_weight=0.4,
    class_weighting="enet",
)


def _losses(path):
    return [json.loads(line)["loss"] for line in path.read_text().splitlines()]


def test_loss_falls_and_checkpoint_and_sidecar_are_written(tmp_path, tiny):
    root = make_learnable_camvid(tmp_path / "camvid")
    out = tmp_path / "run" / "tiny.pt"
    sidecar = train(TrainConfig("tiny", "camvid", root, "train", out, RECIPE, seed=0, log_every=5))
    losses = _losses(out.with_name("tiny.pt.log"))
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:2]), losses
    saved = json.loads(out.with_name("tiny.pt.json").read_text())
    assert saved == json.loads(json.dumps(sidecar))
    assert saved["iterations_done"] == 40 and saved["stop_reason"] == "iterations"
    assert saved["recipe"]["lr"] == 0.2 and saved["dataset"] == "camvid" and saved["seed"] == 0
    assert "git_commit" in saved
    assert not list(out.parent.glob("*.tmp"))
    load_weights(TinyNet(num_classes=11), out)  # the checkpoint fits a fresh model


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, tiny, monkeypatch):
    root = make_learnable_camvid(tmp_path / "camvid")
    recipe = RECIPE.replace(iterations=10)
    whole = tmp_path / "a" / "m.pt"
    train(TrainConfig("tiny", "camvid", root, "train", whole, recipe, save_every=1000))

    real_batch_at, calls = train_module.batch_at, []

    def interrupt_at_6(dataset, recipe, seed, it, *args):
        if it == 6 and not calls:
            calls.append(it)
            raise KeyboardInterrupt
        return real_batch_at(dataset, recipe, seed, it, *args)

    monkeypatch.setattr(train_module, "batch_at", interrupt_at_6)
    resumed = tmp_path / "b" / "m.pt"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig("tiny", "camvid", root, "train", resumed, recipe, save_every=1000))
    assert not resumed.exists()  # no final checkpoint from an interrupted run, only the resume state
    state = torch.load(resumed.with_name("m.pt.resume.pt"), weights_only=True)
    assert state["iteration"] == 6
    sidecar = train(TrainConfig("tiny", "camvid", root, "train", resumed, recipe, save_every=1000))
    assert sidecar["iterations_done"] == 10
    assert not resumed.with_name("m.pt.resume.pt").exists()  # a completed run leaves no resume state
    a, b = torch.load(whole, weights_only=True), torch.load(resumed, weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_aux_heads_add_weighted_losses():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    main_logits, aux = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    main_logits[:, 0] = 5  # right: small loss; aux says nothing: ln 2
    recipe = Recipe(aux_weight=0.4)
    base = total_loss(main_logits, target, recipe, None)
    assert total_loss((main_logits, [aux, aux]), target, recipe, None) == pytest.approx(
        float(base) + 2 * 0.4 * np.log(2), abs=1e-5
    )


def test_ohem_keeps_only_hard_pixels():
    target = torch.zeros(1, 1, 4, dtype=torch.long)
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 0, 0, :3] = 10  # three easy pixels, one at p = 0.5
    recipe = Recipe(ohem_thresh=0.7, ohem_min_kept=1)
    assert float(total_loss(logits, target, recipe, None)) == pytest.approx(np.log(2), abs=1e-5)


def test_poly_schedule_follows_the_binding_budget():
    r = Recipe(lr=0.1, iterations=100, power=1.0)
    assert lr_at(r, 50) == pytest.approx(0.05)
    assert schedule_progress(r, 10, elapsed_s=90, time_limit_s=100) == pytest.approx(0.9)
    assert lr_at(r, 10, schedule_progress(r, 10, 90, 100)) == pytest.approx(0.01)
    assert lr_at(Recipe(lr=0.1, schedule="constant"), 99) == 0.1


def test_enet_class_weights(tmp_path):
    from bench.eval.datasets import load_dataset

    ds = load_dataset("camvid", make_learnable_camvid(tmp_path / "c"), "train")
    w = class_weights(ds, 1.02)
    assert w.shape == (11,) and w[0] < w[1] < w[5]  # frequent classes weigh less; absent ones 1/ln(1.02)
    assert float(w[5]) == pytest.approx(1 / np.log(1.02))


def test_recipes_come_from_the_papers():
    assert get_recipe("enet").optimizer == "adam" and get_recipe("enet").lr == 5e-4
    assert get_recipe("fastscnn").lr == 0.045 and get_recipe("fastscnn").aux_weight == 0.4
    assert get_recipe("cgnet").class_weighting == "enet"
    assert get_recipe("no-such-model").source.startswith("SegBench default")


def test_cli_train_runs_and_rejects_bad_budgets(tmp_path, tiny, capsys):
    root = make_learnable_camvid(tmp_path / "camvid", n=2)
    out = tmp_path / "cli.pt"
    argv = [
        "train",
        "--model",
        "tiny",
        "--dataset",
        "camvid",
        "--data-root",
        str(root),
        "--out",
        str(out),
        "--batch-size",
        "1",
        "--crop",
        "16x16",
    ]
    assert main([*argv, "--iterations", "0"]) == 2
    assert main([*argv, "--iterations", "3"]) == 0
    assert json.loads(out.with_name("cli.pt.json").read_text())["iterations_done"] == 3


@pytest.mark.slow
def test_a_real_zoo_model_with_aux_heads_learns(tmp_path):
    """Fast-SCNN (two aux heads in train mode) on the learnable task: the loss falls within 30 steps."""
    torch.set_num_threads(1)
    root = make_learnable_camvid(tmp_path / "camvid", hw=(64, 64))
    out = tmp_path / "fastscnn.pt"
    recipe = get_recipe("fastscnn").replace(
        batch_size=4, crop_hw=(64, 64), iterations=30, scale_range=(1.0, 1.0)
    )
    train(TrainConfig("fastscnn", "camvid", root, "train", out, recipe, log_every=5))
    losses = _losses(out.with_name("fastscnn.pt.log"))
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses


@pytest.mark.slow
def test_two_process_ddp_training_through_torchrun(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    root = make_learnable_camvid(tmp_path / "camvid", n=4, hw=(64, 64))
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "bench",
            "train",
            "--model",
            "fastscnn",
            "--dataset",
            "camvid",
            "--data-root",
            str(root),
            "--out",
            str(out),
            "--iterations",
            "3",
            "--batch-size",
            "2",
            "--crop",
            "64x64",
            "--threads",
            "1",
        ],
        check=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )
    sidecar = json.loads(out.with_name("ddp.pt.json").read_text())
    assert sidecar["world_size"] == 2 and sidecar["iterations_done"] == 3
    load_weights(zoo.create_model("fastscnn", num_classes=11), out)


@pytest.mark.slow
def test_sigterm_saves_the_resume_state_and_the_same_command_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO_ROOT

    root = make_learnable_camvid(tmp_path / "camvid", n=2, hw=(64, 64))
    out = tmp_path / "term.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    argv = [
        sys.executable,
        "-m",
        "bench",
        "train",
        "--model",
        "fastscnn",
        "--dataset",
        "camvid",
        "--data-root",
        str(root),
        "--out",
        str(out),
        "--iterations",
        "100",
        "--batch-size",
        "2",
        "--crop",
        "64x64",
        "--threads",
        "1",
        "--save-every",
        "2",
    ]
    proc = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    resume = out.with_name("term.pt.resume.pt")
    deadline = time.monotonic() + 240
    while not resume.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resumes from" in err and not out.exists()
    done = torch.load(resume, weights_only=True)["iteration"]
    assert 0 < done < 100
    subprocess.run(
        argv,  # the same command
        env=env,
        cwd=REPO_ROOT,
        check=True,
        timeout=600,
        capture_output=True,
    )
    sidecar = json.loads(out.with_name("term.pt.json").read_text())
    assert sidecar["iterations_done"] == 100
    first = json.loads(out.with_name("term.pt.log").read_text().splitlines()[0])
    assert first["iteration"] == 1  # one log, continued across the interruption
