"""The whole run loop against inference alone, same model, backend, process and run: how much of the
network's speed the pipeline keeps once capture, preprocessing, logging and the preview run too.

One run of the pipeline, its log, preview and a viewer live throughout, is paused every `frames`
frames by a sink of the benchmark, which then times inference alone for as many frames on the
same thread. Each round (a stretch of pipeline and one of inference alone) lasts a second or two,
so a shared host's slow seconds tend to fall on both of its halves; the median of the rounds'
ratios is the figure."""
from __future__ import annotations

import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecam.base.errors import EdgecamError
from edgecam.base.frame import Frame, Prediction
from edgecam.base.options import resolve
from edgecam.base.progress import Progress
from edgecam.base.samples import DemoClip
from edgecam.models import store
from edgecam.runtime import pipeline
from edgecam.runtime.classifier import Classifier
from edgecam.sinks.base import Sink
from edgecam.sources.base import Source

# After a pause the prefetcher is ahead by its queue, and the network's caches are cold: the first
# frames of each stretch of pipeline or inference alone are run but not timed.
SETTLE_FRAMES = 4
# Before inference alone, the log writer and the preview encoder finish what the pipeline left them.
SETTLE_SECONDS = 0.1


class MemorySource(Source):
    """Camera-sized frames rendered once and handed out as fast as they are read: a camera that
    delivers by DMA costs the CPU next to nothing, and rendering the demo is not what is measured."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.uri = "bench:memory"
        self.frames = frames
        self._index = 0

    def open(self) -> None:
        self._index = 0

    def read(self) -> Frame | None:
        image = self.frames[self._index % len(self.frames)]
        frame = Frame(image, self._index, time.time(), self.uri)
        self._index += 1
        return frame

    def close(self) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Viewer:
    """A viewer of the preview stream in a process of its own (see edgecam.bench.viewer)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.process = subprocess.Popen([sys.executable, "-m", "edgecam.bench.viewer", url],
                                        stdout=subprocess.PIPE, text=True)

    def wait_watching(self, timeout: float = 60.0) -> None:
        """Return once the stream is open, so that every timed frame has a viewer."""
        stdout = self.process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready or stdout.readline().strip() != "watching":
            raise EdgecamError(f"the benchmark's viewer could not open {self.url} within "
                               f"{timeout:g} s: is the host overloaded?")

    def stop(self) -> int:
        """Bytes the viewer received."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        lines = out.split()
        return int(lines[-1]) if lines else 0


def inference_only(classifier: Classifier, inputs: list[np.ndarray], frames: int) -> float:
    """FPS of the network alone on inputs already at its size, one frame at a time."""
    started = time.perf_counter()
    for i in range(frames):
        classifier.classify_prepared(inputs[i % len(inputs)][None])
    return frames / (time.perf_counter() - started)


class Rounds(Sink):
    """The benchmark's output in the run: every `frames` frames it pauses the loop (write() runs
    on the loop's thread) and times inference alone; after `rounds` rounds it ends the run."""

    def __init__(self, classifier: Classifier, inputs: list[np.ndarray], frames: int, rounds: int,
                 viewer: Viewer | None, progress: Progress) -> None:
        self.classifier, self.inputs = classifier, inputs
        self.frames, self.rounds = frames, rounds
        self.viewer = viewer
        self.progress = progress
        self.pipeline_fps: list[float] = []
        self.alone_fps: list[float] = []
        self.wall = self.cpu = 0.0  # of the timed stretches of pipeline
        self.paused = 0.0  # seconds this sink held the loop: not the pipeline's
        self._count = 0
        self._started = (0.0, 0.0)

    def write(self, frame: Frame, prediction: Prediction) -> None:
        if self.viewer is not None:  # at the first frame: the preview is up, wait for its viewer
            held = time.perf_counter()
            self.viewer.wait_watching()
            self.viewer = None
            self.paused += time.perf_counter() - held
        self._count += 1
        if self._count == SETTLE_FRAMES:
            self._started = (time.perf_counter(), pipeline.cpu_seconds())
        elif self._count == SETTLE_FRAMES + self.frames:
            held = time.perf_counter()
            wall, cpu = held - self._started[0], pipeline.cpu_seconds() - self._started[1]
            self.pipeline_fps.append(self.frames / wall)
            self.wall, self.cpu = self.wall + wall, self.cpu + cpu
            time.sleep(SETTLE_SECONDS)
            inference_only(self.classifier, self.inputs, SETTLE_FRAMES)
            self.alone_fps.append(inference_only(self.classifier, self.inputs, self.frames))
            self.paused += time.perf_counter() - held
            self._count = 0
            self.progress.advance(note=f"pipeline {self.pipeline_fps[-1]:.1f} FPS, "
                                  f"alone {self.alone_fps[-1]:.1f} FPS")
            self.stop_requested = len(self.alone_fps) == self.rounds


def benchmark(model: str, backend: str, threads: int, frames: int, rounds: int = 30,
              preview: bool = True, log: bool = True, allow_untrained: bool = False) -> dict:
    from edgecam.runtime.pipeline import run_options

    spec = store.get(model)
    clip = DemoClip(1280, 720)
    images = [clip.frame(i * len(clip) // 16) for i in range(16)]
    classifier = Classifier.load(spec, backend, threads, 5, allow_untrained)
    backend = classifier.backend.name  # auto's choice, by name
    inputs = [classifier.prepare(image) for image in images]
    progress = Progress(f"pipeline vs inference ({model}, {backend})", rounds)
    with tempfile.TemporaryDirectory() as tmp:
        values = {"model": model, "backend": backend, "threads": threads, "headless": True,
                  "allow_untrained": allow_untrained}
        if log:
            values["log"] = str(Path(tmp) / "bench.jsonl")
        viewer = None
        if preview:
            values["preview"] = f"127.0.0.1:{free_port()}"
            viewer = Viewer(f"http://{values['preview']}/stream.mjpg")
        measured = Rounds(classifier, inputs, frames, rounds, viewer, progress)
        try:
            summary = pipeline.run(resolve(run_options(), values), MemorySource(images),
                                   extra_sinks=[measured])
        finally:
            received = viewer.stop() if viewer is not None else 0
    progress.finish()
    if len(measured.alone_fps) < rounds:
        raise EdgecamError(f"the pipeline benchmark was interrupted after {len(measured.alone_fps)} "
                           f"of {rounds} rounds")
    stages = dict(summary.stages)
    stages["sinks"] -= measured.paused
    ratios = [p / a for p, a in zip(measured.pipeline_fps, measured.alone_fps, strict=True)]
    return {"model": model, "backend": backend, "threads": threads, "frames": frames,
            "rounds": rounds, "source": "1280x720 frames in memory", "log": log, "preview": preview,
            "inference_fps": statistics.median(measured.alone_fps),
            "pipeline_fps": statistics.median(measured.pipeline_fps),
            "ratio": statistics.median(ratios), "ratio_runs": ratios,
            "inference_fps_runs": measured.alone_fps, "pipeline_fps_runs": measured.pipeline_fps,
            "pipeline": {"frames": summary.frames,
                         "stages_ms": {k: 1000.0 * v / summary.frames for k, v in stages.items()},
                         "cpu_percent": 100.0 * measured.cpu / measured.wall,
                         "preview_bytes": received}}


def table(report: dict) -> str:
    p = report["pipeline"]
    stages = ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(p["stages_ms"].items()))
    low, _, high = statistics.quantiles(report["ratio_runs"], n=4) if report["rounds"] > 1 else (
        report["ratio"], 0, report["ratio"])
    return (f"{report['model']} on {report['backend']} ({report['threads']} threads), "
            f"{report['rounds']} rounds of {report['frames']} frames, log "
            f"{'on' if report['log'] else 'off'}, "
            f"preview {'on with a viewer' if report['preview'] else 'off'}\n"
            f"inference alone  {report['inference_fps']:.1f} FPS (median of the rounds)\n"
            f"whole pipeline   {report['pipeline_fps']:.1f} FPS (median of the rounds)\n"
            f"ratio            {report['ratio']:.3f} (median of the rounds' ratios; quartiles "
            f"{low:.3f} and {high:.3f})\n"
            f"per frame        {stages} (wall time; capture and preprocess run beside "
            f"inference, on a thread that yields to it)\n"
            f"CPU              {p['cpu_percent']:.0f}% of one core")
