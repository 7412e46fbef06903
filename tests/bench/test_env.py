import sys
import types

from bench import env


def test_gpu_info_from_a_faked_nvml(monkeypatch):
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: f"handle{i}",
        nvmlDeviceGetName=lambda h: b"NVIDIA H100 80GB HBM3",
        nvmlSystemGetDriverVersion=lambda: "580.65.06",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=80 * 2**30),
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    info = env.gpu_info()
    assert info == {"name": "NVIDIA H100 80GB HBM3", "driver": "580.65.06", "memory_total_mb": 81920}
    assert env.machine_slug("cuda", info) == "nvidia-h100-80gb-hbm3"


def test_no_nvml_means_no_gpu(monkeypatch):
    def fail():
        raise OSError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(nvmlInit=fail))
    assert env.gpu_info() is None


def test_cpu_environment_is_recorded():
    info = env.collect_env("cpu")
    for key in ("git_commit", "git_dirty", "python", "torch", "cpu", "cpu_count", "machine", "timestamp"):
        assert key in info
    assert info["gpu"] is None and info["machine"].startswith("cpu-")
    assert info["git_commit"] is None or len(info["git_commit"]) == 40


def test_a_copy_without_git_takes_its_commit_from_the_environment(monkeypatch):
    monkeypatch.setattr(env, "_git", lambda *args: None)
    monkeypatch.delenv("SEGBENCH_GIT_COMMIT", raising=False)
    assert env.git_state() == {"git_commit": None, "git_dirty": None}
    monkeypatch.setenv("SEGBENCH_GIT_COMMIT", "d880eb1" + "0" * 33)
    assert env.git_state() == {"git_commit": "d880eb1" + "0" * 33, "git_dirty": None}
    monkeypatch.setattr(env, "_git", lambda *args: "" if args[0] == "status" else "a" * 40)
    assert env.git_state() == {"git_commit": "a" * 40, "git_dirty": False}  # a checkout's own commit wins
