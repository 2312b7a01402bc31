"""The latency of one backend on one model, each measured in a fresh process so that its peak RSS
is its own: `python -m edgecam.backends.timing MODEL BACKEND THREADS RUNS [--allow-untrained]`
prints one JSON line. `--backend auto` measures with it; the benchmark adds its baselines through an
entry module of its own that calls `main` with its own predictor."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from edgecam import backends
from edgecam.base.errors import SourceError
from edgecam.base.samples import model_frames
from edgecam.models import store

# Seconds one measurement may take, its backend's first build included (a Pi Zero builds slowly).
TIMEOUT = 1800
Predict = Callable[[np.ndarray], np.ndarray]
# spec, backend name, threads, allow_untrained → a predict function
Predictor = Callable[[store.ModelSpec, str, int, bool], Predict]


def backend_predictor(spec: store.ModelSpec, backend: str, threads: int, allow_untrained: bool) -> Predict:
    return backends.load(backend, spec, threads, allow_untrained).predict


def sample_inputs(size: int, count: int = 8) -> np.ndarray:
    """Real demo frames at the model input size (content matters for the top-1 check only);
    seeded noise where the demo photos are not installed."""
    try:
        return model_frames(size, count, 640, 360)
    except SourceError:
        return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), np.uint8)


def measure(model: str, backend: str, threads: int, runs: int, allow_untrained: bool = False,
            predictor: Predictor = backend_predictor) -> dict:
    """Load `backend` for `model`, take the top-1 of every sample frame (which also warms up), then
    time `runs` single-frame calls: median and p95 in ms, load time, peak RSS."""
    spec = store.get(model)
    load_started = time.perf_counter()
    predict = predictor(spec, backend, threads, allow_untrained)
    load_seconds = time.perf_counter() - load_started
    inputs = sample_inputs(spec.input)
    top1 = [int(np.argmax(predict(x[None])[0])) for x in inputs]
    for i in range(max(3, runs // 10)):
        predict(inputs[i % len(inputs)][None])
    latencies = []
    for i in range(runs):
        x = inputs[i % len(inputs)][None]
        started = time.perf_counter()
        predict(x)
        latencies.append((time.perf_counter() - started) * 1000.0)
    latencies.sort()
    return {
        "model": model, "backend": backend, "threads": threads, "runs": runs,
        "median_ms": latencies[len(latencies) // 2],
        "p95_ms": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
        "load_s": load_seconds, "top1": top1,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM starts afresh at exec, unlike ru_maxrss, which
    keeps the high-water mark of the parent that forked us (the benchmark itself, with torch)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(model: str, backend: str, threads: int, runs: int, allow_untrained: bool = False,
            entry: str = __name__) -> dict:
    """Measure in a fresh process running module `entry`; a backend that cannot run there is
    reported, not fatal."""
    command = [sys.executable, "-m", entry, model, backend, str(threads), str(runs)]
    try:
        result = subprocess.run(command + (["--allow-untrained"] if allow_untrained else []),
                                capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return {"model": model, "backend": backend, "error": f"no result within {TIMEOUT} s"}
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        return {"model": model, "backend": backend, "error": errors[-1] if errors else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str], predictor: Predictor = backend_predictor) -> int:
    model, backend, threads, runs = argv[0], argv[1], int(argv[2]), int(argv[3])
    print(json.dumps(measure(model, backend, threads, runs, "--allow-untrained" in argv[4:], predictor)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
