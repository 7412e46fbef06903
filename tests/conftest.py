import importlib.util
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


def pytest_collection_modifyitems(config, items):
    no_cuda = pytest.mark.skip(reason="needs a CUDA GPU; none is available to torch here")
    no_data = pytest.mark.skip(reason=f"needs the real datasets in {SHARED / 'data'}, which is absent")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
        if "data" in item.keywords and not (SHARED / "data").is_dir():
            item.add_marker(no_data)


@pytest.fixture(scope="session")
def benchmark_script():
    """Import a script of benchmarks/ (a folder of scripts, not a package) by name, once per session:
    `benchmark_script("timer_agreement")`."""
    loaded = {}

    def load(name: str):
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
            loaded[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(loaded[name])
        return loaded[name]

    return load
