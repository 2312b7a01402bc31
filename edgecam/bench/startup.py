"""Start-up and memory of `edgecam run` as a user starts it: a fresh process, a cached model,
timed from launch to its first logged prediction; peak RSS from the kernel's high-water mark
(VmHWM, read while it runs: the rusage's ru_maxrss would start from this benchmark's own)."""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgecam.base.errors import EdgecamError
from edgecam.bench.build_memory import status_kb
from edgecam.models import artifacts, store


def one_start(model: str, source: str, log: Path) -> dict:
    command = [sys.executable, "-m", "edgecam", "--log-level", "warning", "run", "--headless",
               "--model", model, "--source", source, "--frames", "1", "--log", str(log)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first_line, peak_kb = None, 0
    while True:  # until it exits: its high-water mark is read while it lives
        if first_line is None and log.exists() and log.stat().st_size > 0:
            first_line = time.perf_counter() - started
        with contextlib.suppress(OSError, ValueError):
            peak_kb = max(peak_kb, status_kb(child.pid, "VmHWM"))
        pid, status, _ = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.002)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0 or first_line is None:
        raise EdgecamError(f"edgecam run failed during the start-up benchmark: "
                           f"{child.stderr.read().decode().strip().splitlines()[-1:]}")
    child.stderr.close()
    return {"first_prediction_s": first_line, "exit_s": time.perf_counter() - started,
            "peak_rss_mb": peak_kb / 1024.0}


def benchmark(model: str, sources: list[str], repeats: int = 5) -> list[dict]:
    artifacts.ensure(store.get(model), "onnx")  # the figure is for a cached model
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source in sources:
            runs = [one_start(model, source, Path(tmp) / f"{source.replace('/', '_')}-{i}.jsonl")
                    for i in range(repeats)]
            rows.append({"model": model, "source": source, "repeats": repeats,
                         "first_prediction_s": statistics.median(r["first_prediction_s"] for r in runs),
                         "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | source | launch → first logged prediction (median) | peak RSS (max) |",
             "|---|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['source']} | {r['first_prediction_s']:.2f} s | "
                     f"{r['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)
