"""What the machine can do at best: float32 GEMM throughput, and its description in a table."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time

from edgecam.base.machine import cpu_model


def gemm_gmacs(threads: int, n: int = 1024, repeats: int = 10) -> float:
    """Median float32 n×n matmul throughput in GMAC/s with `threads` BLAS threads, measured in a
    child process (BLAS reads its thread count when it loads)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    code = f"from edgecam.bench.gemm import _gemm; print(_gemm({n}, {repeats}))"
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

