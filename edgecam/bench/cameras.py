"""Several cameras in one process against one process per camera: N in-memory 1280x720 sources
through one run (its frames batched into one inference call) against N runs of one source each,
same model, backend and threads, in the same benchmark, alternating. A third side bounds what any
loop could reach: the one process's inference workers alone, on frames prepared beforehand, in
batches of the size the run hands them.

Each side runs as worker processes of its own (`python -m edgecam.bench.cameras …`), so that all
pay for their processes alike and each reports its own peak RSS. The workers of a side warm up, then
wait at a barrier and count the frames they classify in the same measured seconds."""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgecam.backends.timing import peak_rss_mb
from edgecam.base.errors import EdgecamError
from edgecam.base.frame import Frame, Prediction
from edgecam.base.options import Settings, resolve
from edgecam.base.progress import Progress
from edgecam.base.samples import DemoClip
from edgecam.bench.pipeline import MemorySource
from edgecam.models import store
from edgecam.runtime import pipeline
from edgecam.runtime.classifier import Classifier, Selection
from edgecam.sinks.base import Sink

WARMUP_FRAMES = 10
BARRIER_TIMEOUT = 300.0  # seconds the workers of a side may take to load and warm up


class Barrier:
    """The start of a side's measured window, shared by its worker processes through files: each
    says it is ready, then waits for the benchmark's `go`."""

    def __init__(self, folder: Path, worker: int) -> None:
        self.folder, self.worker = folder, worker

    def cross(self) -> float:
        """Wait until the window opens; its start (time.monotonic())."""
        (self.folder / f"ready-{self.worker}").touch()
        deadline = time.monotonic() + BARRIER_TIMEOUT
        while not (self.folder / "go").exists():
            if time.monotonic() > deadline:
                raise EdgecamError("the benchmark's barrier never opened")
            time.sleep(0.005)
        return time.monotonic()


class Tally(Sink):
    """Counts a worker's classified frames in its measured window: after the warm-up it holds the
    loop at the barrier, then counts for `seconds` and ends the run."""

    def __init__(self, barrier: Barrier, seconds: float) -> None:
        self.barrier, self.seconds = barrier, seconds
        self.seen = 0
        self.frames = 0
        self.started = 0.0
        self.elapsed = 0.0

    def write(self, frame: Frame, prediction: Prediction) -> None:
        self.seen += 1
        if self.seen == WARMUP_FRAMES:
            self.started = self.barrier.cross()
        elif self.started:
            self.frames += 1
            self.elapsed = time.monotonic() - self.started
            self.stop_requested = self.elapsed >= self.seconds


def run_settings(model: str, backend: str, threads: int, allow_untrained: bool) -> Settings:
    return resolve(pipeline.run_options(), {"model": model, "backend": backend, "threads": threads,
                                            "headless": True, "allow_untrained": allow_untrained})


def camera_frames() -> list[np.ndarray]:
    clip = DemoClip(1280, 720)
    return [clip.frame(i * len(clip) // 16) for i in range(16)]


def worker(model: str, backend: str, threads: int, sources: int, seconds: float, barrier: Barrier,
           allow_untrained: bool) -> dict:
    images = camera_frames()
    tally = Tally(barrier, seconds)
    pipeline.run(run_settings(model, backend, threads, allow_untrained),
                 [MemorySource(images) for _ in range(sources)], extra_sinks=[tally])
    if not tally.started:
        raise EdgecamError("a benchmark worker ended before its measured window")
    return {"frames": tally.frames, "seconds": tally.elapsed, "rss_mb": peak_rss_mb()}


def alone(model: str, backend: str, threads: int, sources: int, seconds: float, barrier: Barrier,
          allow_untrained: bool) -> dict:
    """The inference workers a run with `sources` cameras loads, each classifying batches of its
    share of them (prepared once, beforehand) on a thread of its own, as fast as it can."""
    settings = run_settings(model, backend, threads, allow_untrained)
    spec = store.get(model)
    classifiers = pipeline.load_classifiers(spec, settings, Selection(settings.topk), sources)
    share = pipeline.share(sources, len(classifiers))
    inputs = [classifiers[0].prepare(image) for image in camera_frames()]
    batches = [np.stack([inputs[(i + j) % len(inputs)] for j in range(share)]) for i in range(len(inputs))]
    for classifier in classifiers:
        for batch in batches[:WARMUP_FRAMES]:
            classifier.classify_prepared(batch)
    started = barrier.cross()
    counts = [0] * len(classifiers)

    def classify(n: int) -> None:
        while time.monotonic() - started < seconds:
            classifiers[n].classify_prepared(batches[counts[n] % len(batches)])
            counts[n] += 1

    with ThreadPoolExecutor(len(classifiers)) as pool:
        list(pool.map(classify, range(len(classifiers))))
    return {"frames": sum(counts) * share, "seconds": time.monotonic() - started, "rss_mb": peak_rss_mb()}


def side(model: str, backend: str, threads: int, processes: int, sources: int, seconds: float,
         allow_untrained: bool, inference_alone: bool = False) -> dict:
    """`processes` workers of `sources` sources each (or the inference alone of one such), measured
    over the same window: total FPS and the sum of their peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        barrier = Path(tmp)
        workers = [subprocess.Popen(
            [sys.executable, "-m", "edgecam.bench.cameras", "--model", model, "--backend", backend,
             "--threads", str(threads), "--sources", str(sources), "--seconds", str(seconds),
             "--barrier", tmp, "--worker", str(i), *(["--allow-untrained"] if allow_untrained else []),
             *(["--inference-alone"] if inference_alone else [])],
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
        one, many, ceiling = [], [], []
        for i in range(rounds):  # rotating which side goes first: a slow spell hits every side
            order = [(one, 1, count, False), (many, count, 1, False), (ceiling, 1, count, True)]
            for results, processes, sources, inference_alone in order[i % 3:] + order[:i % 3]:
                results.append(side(model, backend, threads, processes, sources, seconds, allow_untrained,
                                    inference_alone))
            progress.advance(note=f"one {one[-1]['fps']:.1f} FPS, {count} processes "
                                  f"{many[-1]['fps']:.1f} FPS, inference alone {ceiling[-1]['fps']:.1f} FPS")
        progress.finish()
        ratios = [a["fps"] / b["fps"] for a, b in zip(one, many, strict=True)]
        bounds = [a["fps"] / b["fps"] for a, b in zip(ceiling, many, strict=True)]
        rows.append({"cameras": count, "rounds": rounds, "seconds": seconds,
                     "one_process_fps": statistics.median(r["fps"] for r in one),
                     "processes_fps": statistics.median(r["fps"] for r in many),
                     "inference_alone_fps": statistics.median(r["fps"] for r in ceiling),
                     "ratio": statistics.median(ratios), "ratio_runs": ratios,
                     "bound": statistics.median(bounds), "bound_runs": bounds,
                     "one_process_rss_mb": max(r["rss_mb"] for r in one),
                     "processes_rss_mb": max(r["rss_mb"] for r in many)})
    return {"model": model, "backend": backend, "threads": threads, "source": "1280x720 frames in memory",
            "rows": rows}


def table(report: dict) -> str:
    """The rows; `bound` is inference alone over the N processes: no loop of one process can beat
    the N processes by more than that here."""
    lines = [f"{report['model']} on {report['backend']} ({report['threads']} threads per process), "
             f"{report['source']}, total classified frames per second (median of the rounds)",
             f"{'cameras':>7}  {'one process':>11}  {'N processes':>11}  {'ratio':>5}  "
             f"{'inference alone':>15}  {'bound':>5}  {'RSS one':>8}  {'RSS sum of N':>12}"]
    for row in report["rows"]:
        lines.append(f"{row['cameras']:>7}  {row['one_process_fps']:>7.1f} FPS  "
                     f"{row['processes_fps']:>7.1f} FPS  {row['ratio']:>5.2f}  "
                     f"{row['inference_alone_fps']:>11.1f} FPS  {row['bound']:>5.2f}  "
                     f"{row['one_process_rss_mb']:>5.0f} MB  {row['processes_rss_mb']:>9.0f} MB")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m edgecam.bench.cameras")
    for flag, kind in (("--model", str), ("--backend", str), ("--threads", int), ("--sources", int),
                       ("--seconds", float), ("--barrier", Path), ("--worker", int)):
        parser.add_argument(flag, type=kind, required=True)
    parser.add_argument("--allow-untrained", action="store_true")
    parser.add_argument("--inference-alone", action="store_true")
    args = parser.parse_args()
    measure = alone if args.inference_alone else worker
    result = measure(args.model, args.backend, args.threads, args.sources, args.seconds,
                     Barrier(args.barrier, args.worker), args.allow_untrained)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
