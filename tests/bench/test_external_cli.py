"""`segbench run --models` with library models: bad specs are one line and exit 2 before anything is measured;
a good one is measured like a zoo model, in the group "external", and gets its own report page."""

import json
import os
import subprocess
import sys

import pytest

from bench.cli import main
from tests.conftest import REPO_ROOT
from tests.zoo.test_plugins import fake_distribution


@pytest.mark.parametrize(
    "models, message",
    [
        ("foo:bar", "unknown model library 'foo' in 'foo:bar' (expected one of smp:<Arch>:<encoder>, "),
        ("smp:Nope:resnet34", "unknown smp architecture 'Nope' (expected one of Unet, "),
        ("bisenetv2,smp:Unet:resnet35", "unknown smp encoder 'resnet35' (expected one of resnet18, "),
        ("torchvision:deeplabv4", "unknown torchvision segmentation builder 'deeplabv4' (expected one of "),
        ("hf:segformer-b9", "unknown hf model 'segformer-b9' (expected one of "),
        ("timm:resnet19", "unknown timm model 'resnet19'"),
        ("no_such_model", "unknown model 'no_such_model'"),
    ],
)
def test_a_bad_spec_exits_2_with_one_line(capsys, tmp_path, monkeypatch, models, message):
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--models", models, "--out", str(tmp_path / "out.jsonl")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith(f"segbench: error: {message}")
    assert len(captured.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "module, models, package",
    [
        ("segmentation_models_pytorch", "smp:Unet:resnet34", "segmentation-models-pytorch"),
        ("transformers", "hf:segformer-b0", "transformers"),
    ],
)
def test_a_missing_library_says_what_to_install(capsys, tmp_path, monkeypatch, module, models, package):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    code = main(["run", "--models", models, "--out", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"segbench: error: model '{models}' needs {package}: pip install 'segbench[external]'\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_library_and_entry_point_models_are_measured_and_reported(tmp_path):
    """End to end in a subprocess: an smp model and a model registered by an installed package's entry point
    (whose worker processes must load it too), then the report with a page per model."""
    plugin_root = tmp_path / "site"
    plugin_root.mkdir()
    fake_distribution(plugin_root, "[segbench.models]\nfakeplug = fakeplug_models:register\n")
    out = tmp_path / "sweep.jsonl"

    def segbench(*args):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_root), str(REPO_ROOT)])}
        result = subprocess.run(
            [sys.executable, "-m", "bench", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        return result

    models = "smp:Unet:resnet18,fakeplug_tiny"
    segbench("run", "--models", models, "--resolutions", "64x64", "--out", str(out), "--no-progress")
    records = {r["model"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == {"smp:Unet:resnet18", "fakeplug_tiny"}
    smp = records["smp:Unet:resnet18"]
    assert smp["status"] == "ok", smp["error"]
    assert smp["group"] == "external" and smp["output_shape"] == [1, 19, 64, 64]
    assert smp["params"] > 10_000_000 and smp["macs"] > 0 and smp["latency_ms"]["n"] >= 3
    assert records["fakeplug_tiny"]["status"] == "ok" and records["fakeplug_tiny"]["group"] == "realtime"

    from reports.render import slug

    segbench("report", str(out), "--out", str(tmp_path / "report"))
    page = tmp_path / "report" / "models" / f"{slug('smp:Unet:resnet18')}.html"
    assert ":" not in page.name and page.is_file()
    assert "it has no card, so no paper claims" in page.read_text()
    assert "smp:Unet:resnet18" in (tmp_path / "report" / "leaderboard-external.csv").read_text()
