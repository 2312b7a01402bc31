"""The whole run loop against inference alone, same model, backend and process: how much of the
network's speed the pipeline keeps once capture, preprocessing, logging and the preview run too."""
from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecam import pipeline, store
from edgecam.classifier import Classifier
from edgecam.frame import Frame
from edgecam.options import resolve
from edgecam.progress import Progress
from edgecam.sources.base import Source
from edgecam.sources.demo import DemoClip


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
        self.process = subprocess.Popen([sys.executable, "-m", "edgecam.bench.viewer", url],
                                        stdout=subprocess.PIPE, text=True)

    def stop(self) -> int:
        """Bytes the viewer received."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        return int(out.strip() or 0)


def inference_only(classifier: Classifier, inputs: list[np.ndarray], frames: int) -> float:
    started = time.perf_counter()
    for i in range(frames):
        classifier.classify_prepared(inputs[i % len(inputs)][None])
    return frames / (time.perf_counter() - started)


def whole_pipeline(settings_values: dict, frames: list[np.ndarray], preview: bool) -> dict:
    from edgecam.commands.run import run_options

    settings = resolve(run_options(), settings_values)
    viewer = None
    if preview:
        host, port = settings.preview
        viewer = Viewer(f"http://{host}:{port}/stream.mjpg")
    try:
        summary = pipeline.run(settings, MemorySource(frames))
    finally:
        received = viewer.stop() if viewer is not None else 0
    return {"fps": summary.fps, "frames": summary.frames, "seconds": summary.seconds,
            "cpu_percent": 100.0 * summary.cpu_seconds / summary.seconds,
            "stages_ms": {k: 1000.0 * v / summary.frames for k, v in summary.stages.items()},
            "preview_bytes": received}


def benchmark(model: str, backend: str, threads: int, frames: int, rounds: int = 3,
              preview: bool = True, log: bool = True, allow_untrained: bool = False) -> dict:
    spec = store.get(model)
    clip = DemoClip(1280, 720)
    images = [clip.frame(i * len(clip) // 16) for i in range(16)]
    classifier = Classifier.load(spec, backend, threads, 5, allow_untrained)
    inputs = [classifier.prepare(image) for image in images]
    inference_only(classifier, inputs, 10)  # warm-up
    progress = Progress(f"pipeline vs inference ({model}, {backend})", 2 * rounds)
    alone, whole = [], []
    with tempfile.TemporaryDirectory() as tmp:
        values = {"model": model, "backend": backend, "threads": threads, "frames": frames,
                  "headless": True, "allow_untrained": allow_untrained}
        if log:
            values["log"] = str(Path(tmp) / "bench.jsonl")
        for _ in range(rounds):
            alone.append(inference_only(classifier, inputs, frames))
            progress.advance(note=f"inference {alone[-1]:.1f} FPS")
            if preview:
                values["preview"] = f"127.0.0.1:{free_port()}"
            whole.append(whole_pipeline(values, images, preview))
            progress.advance(note=f"pipeline {whole[-1]['fps']:.1f} FPS")
    progress.finish()
    median_whole = statistics.median(w["fps"] for w in whole)
    typical = min(whole, key=lambda w: abs(w["fps"] - median_whole))
    # Each round measures inference alone and then the pipeline, back to back: the ratio of a
    # round is a pair, and the median of the pairs shrugs off a shared host's slow seconds.
    ratios = [w["fps"] / a for w, a in zip(whole, alone)]
    return {"model": model, "backend": backend, "threads": threads, "frames": frames,
            "rounds": rounds, "source": "1280x720 frames in memory", "log": log, "preview": preview,
            "inference_fps": statistics.median(alone), "pipeline_fps": median_whole,
            "ratio": statistics.median(ratios), "ratio_runs": ratios, "inference_fps_runs": alone,
            "pipeline_fps_runs": [w["fps"] for w in whole], "pipeline": typical}


def table(report: dict) -> str:
    p = report["pipeline"]
    stages = ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(p["stages_ms"].items()))
    return (f"{report['model']} on {report['backend']} ({report['threads']} threads), "
            f"{report['frames']} frames × {report['rounds']} rounds, log {'on' if report['log'] else 'off'}, "
            f"preview {'on with a viewer' if report['preview'] else 'off'}\n"
            f"inference alone  {report['inference_fps']:.1f} FPS (median)\n"
            f"whole pipeline   {report['pipeline_fps']:.1f} FPS (median)\n"
            f"ratio            {report['ratio']:.3f} (median of the rounds' ratios: "
            f"{', '.join(f'{r:.2f}' for r in report['ratio_runs'])})\n"
            f"per frame        {stages}\n"
            f"CPU              {p['cpu_percent']:.0f}% of one core")
