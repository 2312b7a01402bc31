"""Peak memory of `edgecam models build` as a small board would run it: a fresh process on an empty
model cache. Two figures per build, sampled every 20 ms: the largest process's peak RSS (the
kernel's high-water mark, VmHWM), and the peak of the whole process tree's memory at once, since a
build runs each kind of file but the last in a process of its own beside its parent
(edgecam.base.child): the sum of the processes' PSS (each shared page split among the processes
that map it)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgecam.base.errors import EdgecamError

# (what is built, the flags of `edgecam models build`) and the peak the issue set for it
BUILDS = [("onnx (fp32)", [], 450), ("onnx + onnx-int8 (--int8)", ["--int8"], 600),
          ("litert + litert-int8", ["--backends", "litert,litert-int8"], None),
          ("ncnn", ["--backends", "ncnn"], None)]
SAMPLE_S = 0.02


def status_kb(pid: int, field: str) -> int:
    """A field of /proc/PID/status in kB (0 once the process is gone or a zombie)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def pss(pid: int) -> int:
    """Bytes of memory `pid` accounts for now: its private pages and its share of the shared ones."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def tree(pid: int) -> tuple[int, int]:
    """The PSS of `pid` and all its descendants now, and the largest high-water RSS among them,
    in bytes (0 for those already gone). VmHWM starts afresh at exec, unlike the rusage's
    ru_maxrss, which starts from the RSS of the process that forked: a benchmark that ran a build
    or loaded torch before would pass its own peak to every child."""
    total, largest, pending = 0, 0, [pid]
    while pending:
        current = pending.pop()
        try:
            total += pss(current)
            largest = max(largest, status_kb(current, "VmHWM") * 1024)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total, largest


def one_build(model: str, flags: list[str]) -> dict:
    """Build `model` with `flags` into an empty cache; its peaks in MB and its wall time."""
    with tempfile.TemporaryDirectory(prefix="edgecam-build-") as cache, \
            tempfile.TemporaryFile() as stderr:
        command = [sys.executable, "-m", "edgecam", "--log-level", "warning", "models", "build", model,
                   *flags]
        started = time.perf_counter()
        child = subprocess.Popen(command, env={**os.environ, "EDGECAM_CACHE": cache},
                                 stdout=subprocess.DEVNULL, stderr=stderr)
        tree_peak = process_peak = 0
        while True:
            pid, status, _ = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            now, largest = tree(child.pid)
            tree_peak, process_peak = max(tree_peak, now), max(process_peak, largest)
            time.sleep(SAMPLE_S)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            stderr.seek(0)
            lines = stderr.read().decode(errors="replace").strip().splitlines()
            raise EdgecamError(f"edgecam models build {model} {' '.join(flags)} failed during the build "
                               f"memory benchmark: {lines[-1] if lines else child.returncode}")
    return {"process_peak_mb": process_peak / 2**20, "tree_peak_mb": tree_peak / 2**20,
            "seconds": time.perf_counter() - started}


def benchmark(model: str) -> list[dict]:
    return [{"model": model, "build": what, "flags": flags, "target_mb": target, **one_build(model, flags)}
            for what, flags, target in BUILDS]


def table(rows: list[dict]) -> str:
    lines = ["| model | build (fresh cache) | peak RSS, largest process | peak PSS, all processes | "
             "target | time |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        target = f"≤ {r['target_mb']} MB" if r["target_mb"] else "-"
        lines.append(f"| {r['model']} | {r['build']} | {r['process_peak_mb']:.0f} MB | "
                     f"{r['tree_peak_mb']:.0f} MB | {target} | {r['seconds']:.1f} s |")
    return "\n".join(lines)
