"""Installed packages register models through `segbench.models` entry points (zoo.plugins)."""

import sys
import textwrap

import pytest

import zoo
from bench.cli import main
from zoo import plugins, registry

PLUGIN_MODULE = """
from torch import nn

from zoo import ModelCard, Paper, register_model

CARD = ModelCard(
    group="realtime", paper=Paper("A plugin's net", "none", 2026), official_code=None,
    implementation="fakeplug", num_classes=2, input_hw=(32, 32),
)


def register():
    @register_model(card=CARD)
    def fakeplug_tiny(num_classes: int = 2, **kwargs):
        return nn.Conv2d(3, num_classes, 3, padding=1)
"""


def fake_distribution(root, entry_points: str) -> None:
    """An installed distribution `fakeplug` as pip leaves it: a module and a dist-info folder on sys.path."""
    (root / "fakeplug_models.py").write_text(PLUGIN_MODULE)
    (root / "fakeplug_import.py").write_text("import fakeplug_models\n\nfakeplug_models.register()\n")
    info = root / "fakeplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def clean_registry(monkeypatch):
    """Whatever a test registers or loads is forgotten afterwards (other tests list the registry)."""
    for table in ("_BUILDERS", "_CARDS", "_CONVERTERS"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    monkeypatch.setattr(plugins, "_loaded", set())
    yield
    for module in ("fakeplug_models", "fakeplug_import"):
        sys.modules.pop(module, None)


@pytest.mark.parametrize("target", ["fakeplug_models:register", "fakeplug_import"])
def test_an_entry_point_callable_or_module_registers_models_once(
    tmp_path, monkeypatch, clean_registry, target
):
    fake_distribution(tmp_path, f"[segbench.models]\nfakeplug = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "fakeplug_tiny" not in zoo.list_models()
    assert zoo.load_entry_points() == ["fakeplug"]
    assert "fakeplug_tiny" in zoo.list_models("realtime")
    assert zoo.create_inference_model("fakeplug_tiny").out_channels == 2
    assert zoo.load_entry_points() == []  # loaded once: a second call would register the model twice


def test_a_broken_entry_point_is_one_line_naming_it(tmp_path, monkeypatch, clean_registry):
    fake_distribution(tmp_path, "[segbench.models]\nbroken = no_such_plugin_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(zoo.PluginError) as info:
        zoo.load_entry_points()
    assert str(info.value) == (
        "segbench.models entry point 'broken' (no_such_plugin_module) of fakeplug 1.0 failed: "
        "ModuleNotFoundError: No module named 'no_such_plugin_module'"
    )


def test_the_cli_loads_entry_points_beside_plugins(tmp_path, monkeypatch, capsys, clean_registry):
    fake_distribution(tmp_path, "[segbench.models]\nfakeplug = fakeplug_models:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["list", "--group", "realtime"]) == 0
    assert any(line.startswith("fakeplug_tiny ") for line in capsys.readouterr().out.splitlines())

    (tmp_path / "fakeplug-1.0.dist-info" / "entry_points.txt").write_text(
        "[segbench.models]\nbroken = fakeplug_models:no_such_function\n"
    )
    for argv in (["list"], ["run", "--models", "bisenetv2", "--out", str(tmp_path / "out.jsonl")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("segbench: error: cannot import plugin: segbench.models entry point 'broken'")
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists()
