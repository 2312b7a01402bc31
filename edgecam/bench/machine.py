"""What the machine is and what it can do at best: CPU model and float32 GEMM throughput."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.machine()


def gemm_gmacs(threads: int, n: int = 1024, repeats: int = 10) -> float:
    """Median float32 n×n matmul throughput in GMAC/s with `threads` BLAS threads, measured in a
    child process (BLAS reads its thread count when it loads)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    code = f"from edgecam.bench.machine import _gemm; print(_gemm({n}, {repeats}))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            check=True, timeout=300)
    return float(result.stdout.strip())


def _gemm(n: int, repeats: int) -> float:
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    times.sort()
    return n ** 3 / times[len(times) // 2] / 1e9


def describe(threads: int) -> dict:
    return {"cpu": cpu_model(), "arch": platform.machine(), "cores": os.cpu_count(),
            "threads": threads, "python": platform.python_version()}

