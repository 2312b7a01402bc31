"""Several cameras in one process against one process per camera: N in-memory 1280x720 sources
through one run (its frames batched into one inference call) against N runs of one source each,
same model, backend and threads, in the same benchmark, alternating.

Every run is a worker process of its own (`python -m edgecam.bench.cameras …`), so that both
sides pay for their processes alike and each reports its own peak RSS. The workers of a side warm
up, then wait at a barrier and count the frames they classify in the same measured seconds."""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgecam.base.errors import EdgecamError
from edgecam.base.frame import Frame, Prediction
from edgecam.base.options import resolve
from edgecam.base.progress import Progress
from edgecam.base.samples import DemoClip
from edgecam.bench.pipeline import MemorySource
from edgecam.models import store
from edgecam.runtime import pipeline
from edgecam.runtime.classifier import Classifier
from edgecam.sinks.base import Sink

WARMUP_FRAMES = 10
BARRIER_TIMEOUT = 300.0  # seconds the workers of a side may take to load and warm up


class Tally(Sink):
    """Counts a worker's classified frames in its measured window: after the warm-up it holds the
    loop until the barrier opens (the `go` file), then counts for `seconds` and ends the run."""

    def __init__(self, barrier: Path, worker: int, seconds: float) -> None:
        self.barrier, self.worker, self.seconds = barrier, worker, seconds
        self.seen = 0
        self.frames = 0
        self.started = 0.0
        self.elapsed = 0.0

    def write(self, frame: Frame, prediction: Prediction) -> None:
        self.seen += 1
        if self.seen == WARMUP_FRAMES:
            (self.barrier / f"ready-{self.worker}").touch()
            deadline = time.monotonic() + BARRIER_TIMEOUT
            while not (self.barrier / "go").exists():
                if time.monotonic() > deadline:
                    raise EdgecamError("the benchmark's barrier never opened")
                time.sleep(0.005)
            self.started = time.monotonic()
        elif self.started:
            self.frames += 1
            self.elapsed = time.monotonic() - self.started
            self.stop_requested = self.elapsed >= self.seconds


def worker(model: str, backend: str, threads: int, sources: int, seconds: float, barrier: Path,
           number: int, allow_untrained: bool) -> dict:
    clip = DemoClip(1280, 720)
    images = [clip.frame(i * len(clip) // 16) for i in range(16)]
    tally = Tally(barrier, number, seconds)
    settings = resolve(pipeline.run_options(), {"model": model, "backend": backend, "threads": threads,
                                                "headless": True, "allow_untrained": allow_untrained})
    pipeline.run(settings, [MemorySource(images) for _ in range(sources)], extra_sinks=[tally])
    if not tally.started:
        raise EdgecamError("a benchmark worker ended before its measured window")
    return {"frames": tally.frames, "seconds": tally.elapsed,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def side(model: str, backend: str, threads: int, processes: int, sources: int, seconds: float,
         allow_untrained: bool) -> dict:
    """`processes` workers of `sources` sources each, measured over the same window: total FPS and
    the sum of their peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        barrier = Path(tmp)
        workers = [subprocess.Popen(
            [sys.executable, "-m", "edgecam.bench.cameras", "--model", model, "--backend", backend,
             "--threads", str(threads), "--sources", str(sources), "--seconds", str(seconds),
             "--barrier", tmp, "--worker", str(i), *(["--allow-untrained"] if allow_untrained else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True) for i in range(processes)]
        try:
            deadline = time.monotonic() + BARRIER_TIMEOUT
            while len(list(barrier.glob("ready-*"))) < processes:
                failed = [w for w in workers if w.poll() is not None]
                if failed or time.monotonic() > deadline:
                    message = failed[0].stderr.read().strip().splitlines()[-1:] if failed else ["timed out"]
                    raise EdgecamError(f"a benchmark worker failed before measuring: {message[0]}")
                time.sleep(0.01)
            (barrier / "go").touch()
            results = []
            for w in workers:
                out, err = w.communicate(timeout=seconds + 120)
                if w.returncode != 0:
                    raise EdgecamError(f"a benchmark worker failed: {err.strip().splitlines()[-1:]}")
                results.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
                    w.wait()
    return {"fps": sum(r["frames"] / r["seconds"] for r in results),
            "rss_mb": sum(r["rss_mb"] for r in results)}


def benchmark(model: str, backend: str, threads: int, counts: list[int], rounds: int = 3,
              seconds: float = 10.0, allow_untrained: bool = False) -> dict:
    # auto's choice, by name, so that every worker runs the same backend without measuring
    backend = Classifier.load(store.get(model), backend, threads, 1, allow_untrained).backend.name
    rows = []
    for count in counts:
        progress = Progress(f"{count} cameras: one process vs {count} ({model}, {backend})", rounds)
        one, many = [], []
        for i in range(rounds):  # alternating which side goes first: a slow spell hits both
            order = [(one, 1, count), (many, count, 1)]
            for results, processes, sources in order if i % 2 == 0 else order[::-1]:
                results.append(side(model, backend, threads, processes, sources, seconds, allow_untrained))
            progress.advance(note=f"one {one[-1]['fps']:.1f} FPS, {count} processes "
                                  f"{many[-1]['fps']:.1f} FPS")
        progress.finish()
        ratios = [a["fps"] / b["fps"] for a, b in zip(one, many, strict=True)]
        rows.append({"cameras": count, "rounds": rounds, "seconds": seconds,
                     "one_process_fps": statistics.median(r["fps"] for r in one),
                     "processes_fps": statistics.median(r["fps"] for r in many),
                     "ratio": statistics.median(ratios), "ratio_runs": ratios,
                     "one_process_rss_mb": max(r["rss_mb"] for r in one),
                     "processes_rss_mb": max(r["rss_mb"] for r in many)})
    return {"model": model, "backend": backend, "threads": threads, "source": "1280x720 frames in memory",
            "rows": rows}


def table(report: dict) -> str:
    lines = [f"{report['model']} on {report['backend']} ({report['threads']} threads per process), "
             f"{report['source']}, total classified frames per second (median of the rounds)",
             f"{'cameras':>7}  {'one process':>11}  {'N processes':>11}  {'ratio':>5}  "
             f"{'RSS one':>8}  {'RSS sum of N':>12}"]
    for row in report["rows"]:
        lines.append(f"{row['cameras']:>7}  {row['one_process_fps']:>7.1f} FPS  "
                     f"{row['processes_fps']:>7.1f} FPS  {row['ratio']:>5.2f}  "
                     f"{row['one_process_rss_mb']:>5.0f} MB  {row['processes_rss_mb']:>9.0f} MB")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m edgecam.bench.cameras")
    for flag, kind in (("--model", str), ("--backend", str), ("--threads", int), ("--sources", int),
                       ("--seconds", float), ("--barrier", Path), ("--worker", int)):
        parser.add_argument(flag, type=kind, required=True)
    parser.add_argument("--allow-untrained", action="store_true")
    args = parser.parse_args()
    result = worker(args.model, args.backend, args.threads, args.sources, args.seconds, args.barrier,
                    args.worker, args.allow_untrained)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
