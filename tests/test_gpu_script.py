"""gpu/: the wheels a bare GPU machine lacks, their install step and the window's script, on the CPU."""

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GPU = REPO / "gpu"
WHEELS = sorted((GPU / "wheels").glob("*.whl"))
# What the GPU machine's image already has of fvcore's and iopath's requirements (its package list); the
# wheels in gpu/wheels must bring everything else.
IMAGE_HAS = {"numpy", "pyyaml", "tqdm", "pillow", "tabulate", "portalocker", "typing-extensions"}


def _metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as z:
        return z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_wheels_are_few_small_pure_python_and_match_their_checksums():
    sums = dict(line.split()[::-1] for line in (GPU / "wheels" / "SHA256SUMS").read_text().splitlines())
    assert sorted(sums) == [w.name for w in WHEELS] and WHEELS
    for wheel in WHEELS:
        assert wheel.name.endswith("-py3-none-any.whl")
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == sums[wheel.name]
    assert sum(w.stat().st_size for w in WHEELS) < 1_000_000


def test_the_wheels_and_the_image_cover_every_requirement_on_python_3_12():
    names = {_norm(re.search(r"^Name: (.+)$", _metadata(w), re.M)[1]) for w in WHEELS}
    assert {"fvcore", "iopath", "yacs", "termcolor"} <= names
    for wheel in WHEELS:
        for line in re.findall(r"^Requires-Dist: (.+)$", _metadata(wheel), re.M):
            requirement, _, marker = line.partition(";")
            if "extra ==" in marker or "python_version < " in marker:  # an extra, or only for old Pythons
                continue
            name = _norm(re.match(r"[A-Za-z0-9_.-]+", requirement.strip())[0])
            assert name in names | IMAGE_HAS, (
                f"{wheel.name} needs {name}, which neither a wheel nor the image has"
            )


def test_the_fvcore_wheel_is_the_version_the_structural_baseline_was_counted_with():
    baseline = json.loads((REPO / "results" / "baselines" / "structure.json").read_text())
    (fvcore,) = [w for w in WHEELS if w.name.startswith("fvcore-")]
    assert fvcore.name.split("-")[1] == baseline["fvcore"]


def _install(site: Path, gpu: Path = GPU, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(gpu / "install.sh"), str(site), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_install_puts_the_wheels_in_a_folder_of_their_own(tmp_path):
    site = tmp_path / "site"
    done = _install(site, GPU, "--force")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split(":")[0] == str(site)  # the PYTHONPATH to use starts with it
    modules = "fvcore, iopath, yacs, termcolor"
    code = f"import {modules}; print('\\n'.join(m.__file__ for m in ({modules})))"
    where = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert where.returncode == 0, where.stderr
    assert all(Path(f).is_relative_to(site) for f in where.stdout.split())


def test_install_refuses_a_wheel_that_does_not_match_its_checksum(tmp_path):
    copy = tmp_path / "gpu"
    shutil.copytree(GPU, copy)
    wheel = next((copy / "wheels").glob("yacs-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    done = _install(tmp_path / "site", copy, "--force")
    assert done.returncode == 3 and "does not match" in done.stderr
    assert not (tmp_path / "site").exists()


@pytest.mark.slow
def test_run_sh_plan_prints_the_window_without_a_gpu(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "SEGBENCH_SITE": str(tmp_path / "site")}
    done = subprocess.run(
        ["bash", str(GPU / "run.sh"), "--plan", "--models", "sinet", "--phases", "eager"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "sinet 224x224 b1 fp16 eager" in done.stdout and "whole list: 2 cells" in done.stdout


def test_nox_gpu_session_runs_the_script_outside_a_virtualenv():
    tree = ast.parse((REPO / "noxfile.py").read_text())
    (session,) = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "gpu"]
    (decorator,) = session.decorator_list
    assert ast.unparse(decorator) == "nox.session(python=False)"
    assert "'gpu/run.sh'" in ast.unparse(session)


def test_the_tree_a_gpu_machine_is_sent_stays_under_64_mib():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    size = sum((REPO / f).stat().st_size for f in files.decode().split("\0") if f and (REPO / f).is_file())
    assert size < 48 * 2**20, f"tracked files take {size / 2**20:.1f} MiB; a GPU machine takes 64 MiB in all"
