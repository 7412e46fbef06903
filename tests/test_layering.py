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


def test_rendering_imports_neither_torch_nor_the_models(tmp_path):
    """The report reads records and card data only (cards reach it as reports/cards.json)."""
    import subprocess
    import sys

    from tests.reports import fixtures

    results = fixtures.write(tmp_path / "r.jsonl")
    code = (
        "import sys\n"
        "from reports.render import render_report\n"
        f"render_report([{str(results)!r}], {str(tmp_path / 'site')!r})\n"
        "loaded = [m for m in sys.modules if m == 'torch' or m.startswith(('zoo.models', 'zoo.registry'))]\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
