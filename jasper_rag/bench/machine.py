"""What the numbers were measured on: CPU model, cores, library versions, thread counts, peak matmul speed."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import torch

VERSIONED = ("torch", "faiss-cpu", "faiss-gpu-cu12", "onnxruntime", "onnx", "numpy", "transformers")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_versions(names: Sequence[str] = VERSIONED) -> dict[str, str]:
    """Installed versions of ``names`` (default: the libraries that set the speed); absent ones are left out."""
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def memory_gib() -> float | None:
    """Total memory in GiB (None where /proc/meminfo cannot be read)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            return round(int(handle.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


def host_facts(versioned: Sequence[str], load_before: Sequence[float]) -> dict:
    """CPU, cores, memory, package versions and the load average measured before a bench (its report header)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "memory_gib": memory_gib(),
        "versions": package_versions(versioned),
        "load_average": [round(value, 2) for value in load_before],
    }


def faiss_threads() -> int:
    import faiss

    return int(faiss.omp_get_max_threads())


@dataclass(frozen=True)
class Machine:
    """The machine and the thread settings of a bench run."""

    cpu: str
    cores: int
    torch_threads: int
    faiss_threads: int
    versions: dict[str, str]
    load_average: tuple[float, float, float]
    peak_gflops: float

    @classmethod
    def describe(cls, peak_gflops: float) -> Machine:
        return cls(
            cpu=cpu_model(),
            cores=os.cpu_count() or 1,
            torch_threads=torch.get_num_threads(),
            faiss_threads=faiss_threads(),
            versions=package_versions(),
            load_average=tuple(round(value, 2) for value in os.getloadavg()),  # type: ignore[arg-type]
            peak_gflops=peak_gflops,
        )


def peak_matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a ``size``-square torch matmul on the current threads (practical peak)."""
    left, right = torch.randn(size, size), torch.randn(size, size)
    torch.mm(left, right)  # warm-up
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(left, right)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
