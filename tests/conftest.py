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
