"""Provenance: where and with what a result was measured. Collected once per sweep."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def portable_path(path: str | Path) -> str:
    """A path as a record keeps it: relative to the checkout when it lies beside or inside it (so
    "../shared/data/camvid", "results/trained/enet_camvid.pt"), else as given; a record never names the
    folders of the machine it was made on when it need not."""
    resolved = Path(path).resolve()
    if resolved == REPO_ROOT.parent or REPO_ROOT.parent in resolved.parents:
        return Path(os.path.relpath(resolved, REPO_ROOT)).as_posix()
    return str(path)


def git_state() -> dict:
    """Commit of the SegBench checkout and whether it has uncommitted changes (None outside a checkout).

    A copy of the tree without its .git (a GPU machine is sent the files only) takes the commit from
    SEGBENCH_GIT_COMMIT when the caller sets it; whether that copy had changes is then unknown (None)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": os.environ.get("SEGBENCH_GIT_COMMIT") or None, "git_dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status)}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gpu_info(index: int = 0) -> dict | None:
    """Name, driver and memory of a GPU via NVML (the `pynvml` module of nvidia-ml-py); None without one."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: not a CUDA machine
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        driver = pynvml.nvmlSystemGetDriverVersion()
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        return {
            "name": name.decode() if isinstance(name, bytes) else name,
            "driver": driver.decode() if isinstance(driver, bytes) else driver,
            "memory_total_mb": round(memory.total / 2**20),
        }
    except Exception as exc:
        return {"error": f"NVML: {exc}"}
    finally:
        pynvml.nvmlShutdown()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def collect_env(device: str) -> dict:
    """Everything that could change a number, recorded with every record of a sweep."""
    import torch  # here, so that `segbench.machine()` (machine_slug) reads the machine without torch

    gpu = gpu_info() if device == "cuda" else None
    return {
        **git_state(),
        "segbench": _version("segbench"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "fvcore": _version("fvcore"),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": available_cpus(),
        "gpu": gpu,
        "machine": machine_slug(device, gpu),
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def machine_slug(device: str, gpu: dict | None = None) -> str:
    """A filesystem-safe name for the hardware a result comes from, e.g. 'cpu-amd-epyc-7b13-2c'."""
    if device == "cuda" and gpu and "name" in gpu:
        name = gpu["name"]
    else:
        name = f"cpu-{cpu_model()}-{available_cpus()}c"
    name = re.sub(r"\((r|tm)\)|\bcpu @.*?(?=-\d+c$)|\bprocessor\b", "", name, flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
