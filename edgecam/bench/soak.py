"""A soak run: `edgecam run` on the demo with the log and the preview on, for a long time, its
resident memory sampled every few seconds; what matters is the growth after the warm-up."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgecam.base.errors import EdgecamError
from edgecam.base.progress import Progress
from edgecam.bench.pipeline import free_port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise EdgecamError(f"process {pid} has no VmRSS in /proc")


def soak(model: str, seconds: float, every: float = 10.0, warmup: float = 60.0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "edgecam", "--log-level", "warning", "run", "--headless",
                   "--model", model, "--log", str(Path(tmp) / "soak.jsonl"),
                   "--log-max-bytes", "10M", "--preview", f"127.0.0.1:{free_port()}"]
        child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []
        progress = Progress(f"soak ({model})", seconds)
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < seconds:
                if child.poll() is not None:
                    raise EdgecamError(f"edgecam run ended during the soak: {child.stderr.read().strip()}")
                samples.append((elapsed, rss_mb(child.pid)))
                progress.advance(min(every, seconds - elapsed), f"RSS {samples[-1][1]:.1f} MB")
                time.sleep(min(every, max(0.0, seconds - elapsed)))
        finally:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGTERM)
            child.wait(timeout=30)
        progress.finish()
    settled = [rss for at, rss in samples if at >= warmup] or [samples[-1][1]]
    return {"model": model, "seconds": seconds, "samples": len(samples), "warmup_s": warmup,
            "rss_after_warmup_mb": settled[0], "rss_end_mb": settled[-1],
            "rss_max_mb": max(rss for _, rss in samples), "growth_mb": settled[-1] - settled[0],
            "exit_code": child.returncode}


def table(report: dict) -> str:
    return (f"soak of {report['model']}: {report['seconds']:.0f} s, {report['samples']} RSS samples; "
            f"after {report['warmup_s']:.0f} s warm-up {report['rss_after_warmup_mb']:.1f} MB, at the "
            f"end {report['rss_end_mb']:.1f} MB: growth {report['growth_mb']:+.1f} MB "
            f"(max {report['rss_max_mb']:.1f} MB); exit code after SIGTERM {report['exit_code']}")
