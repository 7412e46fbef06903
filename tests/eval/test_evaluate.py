"""`segbench eval` end to end on small CamVid-layout fixtures: the record, its conventions and cost, bad
input, a data error mid-run, the suite's skip, and a two-process torchrun run equal to one process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import zoo
from bench.cli import main
from bench.eval import evaluate as evaluate_module
from bench.eval.evaluate import evaluate, weights_info
from bench.eval.metrics import SegMetric
from bench.eval.protocols import make_protocol
from bench.records import SCHEMA_VERSION, EvalRecord
from bench.store import read_records
from tests.conftest import REPO_ROOT
from zoo.evaluation import IMAGENET


def make_camvid(root, n=3, hw=(24, 32), seed=0):
    rng = np.random.default_rng(seed)
    for folder in ("test", "testannot"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(root / "test" / f"{i}.png")
        Image.fromarray(rng.integers(0, 12, hw, dtype=np.uint8)).save(root / "testannot" / f"{i}.png")
    return root


class ColourNet(nn.Module):
    """A deterministic 1x1 conv over 11 classes (fast, and any protocol at scale 1 gives the same answer)."""

    def __init__(self, num_classes=11):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return self.conv(x)


@pytest.fixture
def colour_net(monkeypatch):
    monkeypatch.setattr(evaluate_module, "build_model", lambda name, k, ckpt, device: ColourNet(k).eval())


def test_record_has_schema_fields_and_numbers_match_a_direct_computation(tmp_path, colour_net):
    root = make_camvid(tmp_path / "camvid")
    typed = evaluate("enet", "camvid", root, "test", make_protocol("whole"))
    assert isinstance(typed, EvalRecord) and typed.ok and typed.protocol == make_protocol("whole")
    record = typed.to_dict()
    assert record["kind"] == "eval" and record["schema_version"] == SCHEMA_VERSION
    assert record["protocol"] == "whole" and record["protocol_spec"] == {"name": "whole", "params": {}}
    assert record["weights"] == {"source": "random init", "path": None, "sha256": None}
    assert record["n_images"] == 3
    assert set(record["per_class_iou"]) == {
        "Sky",
        "Building",
        "Pole",
        "Road",
        "Pavement",
        "Tree",
        "SignSymbol",
        "Fence",
        "Car",
        "Pedestrian",
        "Bicyclist",
    }
    assert set(record["conventions"]) >= {"absent_excluded", "absent_as_1", "per_image_mean"}
    assert record["cost"]["macs_multiplier"] == 1.0 and record["cost"]["macs_whole"] == 24 * 32 * 3 * 11
    assert record["cost"]["latency_ms_per_image"] > 0
    assert record["env"]["machine"]
    # the same numbers computed directly
    model, metric = ColourNet(), SegMetric(11)
    for i in range(3):
        x = IMAGENET(np.array(Image.open(root / "test" / f"{i}.png").convert("RGB")))
        label = torch.from_numpy(np.asarray(Image.open(root / "testannot" / f"{i}.png")).astype(np.int64))
        label[label == 11] = 255
        with torch.no_grad():
            metric.update(model(x).argmax(1)[0], label)
    assert record["miou"] == metric.compute()["miou"]


def test_slide_record_counts_its_windows(tmp_path, colour_net):
    root = make_camvid(tmp_path / "camvid", n=1)
    record = evaluate("enet", "camvid", root, "test", make_protocol("slide", crop=(16, 16), stride=(8, 16)))
    record = record.to_dict()
    whole = evaluate("enet", "camvid", root, "test", make_protocol("whole")).to_dict()
    assert record["protocol"] == "slide(crop=16x16, stride=8x16)"
    assert record["protocol_spec"] == {"name": "slide", "params": {"crop": [16, 16], "stride": [8, 16]}}
    # 2 rows x 2 cols of 16x16 windows on 24x32: 4 * 256 / 768 pixels' worth of MACs
    assert record["cost"]["macs_multiplier"] == pytest.approx(4 * 256 / 768, abs=1e-3)
    assert record["miou"] == pytest.approx(whole["miou"])  # a pointwise model: same answer


def test_weights_source_is_inferred(tmp_path):
    ckpt = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(1)}, ckpt)
    assert weights_info(ckpt)["source"] == "authors"
    (tmp_path / "m.pt.json").write_text("{}")
    info = weights_info(ckpt)
    assert info["source"] == "trained here" and len(info["sha256"]) == 64


def test_cli_writes_the_record(tmp_path, colour_net, capsys):
    root = make_camvid(tmp_path / "camvid")
    out = tmp_path / "out.jsonl"
    assert (
        main(["eval", "--model", "enet", "--dataset", "camvid", "--data-root", str(root), "--out", str(out)])
        == 0
    )
    (record,) = read_records(out)
    assert record.model == "enet" and record.split == "test"
    assert "mIoU" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "--model", "enet", "--dataset", "camvid"], "needs --data-root"),
        (
            ["eval", "--model", "nonet", "--dataset", "camvid", "--data-root", "{root}"],
            "unknown model 'nonet'",
        ),
        (
            ["eval", "--model", "enet", "--dataset", "camvid", "--data-root", "{root}/missing"],
            "does not exist",
        ),
        (
            [
                "eval",
                "--model",
                "enet",
                "--dataset",
                "camvid",
                "--data-root",
                "{root}",
                "--protocol",
                "slide",
            ],
            "needs --crop",
        ),
        (
            [
                "eval",
                "--model",
                "enet",
                "--dataset",
                "camvid",
                "--data-root",
                "{root}",
                "--checkpoint",
                "{root}/x.pt",
            ],
            "checkpoint .* does not exist",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    import re

    root = make_camvid(tmp_path / "camvid", n=1)
    out = tmp_path / "out.jsonl"
    code = main([a.format(root=root) for a in argv] + ["--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists()


def test_data_error_mid_run_is_an_error_record_naming_the_file(tmp_path, colour_net, capsys):
    root = make_camvid(tmp_path / "camvid")
    bad = root / "testannot" / "1.png"
    bad.write_bytes(bad.read_bytes()[:30])
    out = tmp_path / "out.jsonl"
    assert (
        main(["eval", "--model", "enet", "--dataset", "camvid", "--data-root", str(root), "--out", str(out)])
        == 1
    )
    (record,) = read_records(out)
    assert record.status == "error" and "testannot/1.png" in record.error and record.miou is None


def test_suite_skips_without_shared_data(tmp_path, capsys):
    assert main(["eval", "--suite", "default", "--shared", str(tmp_path / "none")]) == 0
    assert "skipped" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(tmp_path):
    root = make_camvid(tmp_path / "camvid", n=5, hw=(64, 96))
    torch.manual_seed(3)
    ckpt = tmp_path / "fastscnn.pt"
    torch.save(zoo.create_model("fastscnn", num_classes=11).state_dict(), ckpt)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    args = [
        "-m",
        "bench",
        "eval",
        "--model",
        "fastscnn",
        "--dataset",
        "camvid",
        "--data-root",
        str(root),
        "--checkpoint",
        str(ckpt),
        "--threads",
        "1",
    ]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    subprocess.run(
        [sys.executable, *args, "--out", str(one)], check=True, env=env, cwd=REPO_ROOT, timeout=300
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            *args,
            "--out",
            str(two),
        ],
        check=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
    )
    (a,), (b,) = (r.to_dict() for r in read_records(one)), (r.to_dict() for r in read_records(two))
    assert a["world_size"] == 1 and b["world_size"] == 2 and b["n_images"] == 5
    for field in ("miou", "per_class_iou", "acc", "macc", "pixels"):
        assert a[field] == b[field], field
    for name, value in a["conventions"].items():
        assert b["conventions"][name] == pytest.approx(value, abs=1e-9) if isinstance(value, float) else True
    assert json.dumps(a["weights"]) == json.dumps(b["weights"])


def test_a_library_model_is_evaluated_like_a_zoo_model(tmp_path):
    root, out = make_camvid(tmp_path / "camvid", n=1), tmp_path / "out.jsonl"
    argv = ["eval", "--model", "smp:Unet:resnet18", "--dataset", "camvid", "--data-root", str(root)]
    assert main([*argv, "--out", str(out)]) == 0
    (record,) = read_records(out)
    assert record.ok and record.model == "smp:Unet:resnet18" and record.get("n_images") == 1


def test_nan_weights_give_an_error_record_not_a_miou(tmp_path, monkeypatch):
    class NaNNet(ColourNet):
        def forward(self, x):
            return super().forward(x) * float("nan")

    monkeypatch.setattr(evaluate_module, "build_model", lambda name, k, ckpt, device: NaNNet(k).eval())
    record = evaluate("enet", "camvid", make_camvid(tmp_path / "camvid", n=1), "test", make_protocol("whole"))
    assert record.status == "error" and "not finite" in record.error and record.miou is None
