"""SegBench's Python API: results as data (torch-free).

    import segbench

    df = segbench.load_results("results")          # one row per record: conditions, statistics, environment
    segbench.export(df, "results.parquet", "parquet")

The columns are `segbench.COLUMNS` (name, dtype, records that fill them, meaning), shown as a table in the
README ("Results as data"). Measuring, evaluating and reporting are the `segbench` command's.
"""

from bench.errors import UsageError
from bench.frame import COLUMNS, export, load_results

__all__ = ["COLUMNS", "UsageError", "export", "load_results", "machine"]


def machine(device: str = "cpu") -> str:
    """This machine's name as a sweep on `device` records it in `env.machine` (the `machine` column):
    'cpu-<cpu model>-<n>c' on the CPU, the GPU's name (read through NVML) on cuda."""
    from bench.env import gpu_info, machine_slug

    return machine_slug(device, gpu_info() if device == "cuda" else None)
