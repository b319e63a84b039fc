"""What machine and software a benchmark ran on."""

import os
import platform
from importlib.metadata import version


def _first_value(path: str, key: str) -> str | None:
    """The value of the first `key: value` line of a /proc file."""
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def describe() -> dict:
    cpu = _first_value("/proc/cpuinfo", "model name") or "unknown"
    memory = int((_first_value("/proc/meminfo", "MemTotal") or "0 kB").split()[0]) * 1024
    versions = {}
    for package in ("duckdb", "dagster", "pyarrow", "numpy", "pandas", "azure-monitor-query", "azure-core"):
        try:
            versions[package] = version(package)
        except Exception:
            versions[package] = "not installed"
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(memory / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        **versions,
    }
