"""Data flows one way: zoo -> bench -> results -> reports. Guard the import directions."""

import ast

import pytest

from tests.conftest import REPO_ROOT

FORBIDDEN = {
    "zoo": ("bench", "reports"),
    "bench": ("reports",),
    # reports reads records and cards; it never builds or measures.
    "reports": ("bench.run", "bench.worker", "bench.measure", "bench.cli"),
}
ENTRY_POINTS = {"bench/cli.py"}  # the command line wires every package together


def imports_of(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_directions(package):
    offences = [
        f"{path.relative_to(REPO_ROOT)} imports {name}"
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        if str(path.relative_to(REPO_ROOT)) not in ENTRY_POINTS
        for name in imports_of(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package])
    ]
    assert not offences
