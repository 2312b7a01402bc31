"""The run loop: source → preprocess → backend → prediction → sinks, until a stop condition."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from edgecam import backends, store
from edgecam.classifier import Classifier
from edgecam.options import Option, choice, integer, number, optional, text
from edgecam.sinks import make_sinks
from edgecam.sources import open_source

log = logging.getLogger(__name__)


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


OPTIONS = [
    Option("source", text, "demo", "what to classify: demo, a video file, an image or a folder",
           metavar="URI"),
    Option("model", text, "efficientnet_lite0", "a model name (edgecam models list) or an .onnx file",
           metavar="NAME"),
    Option("labels", optional(text), None, "class names file for a model given as an .onnx file",
           metavar="FILE"),
    Option("backend", choice(*backends.BACKENDS), "onnx", "inference backend: " + ", ".join(backends.BACKENDS)),
    Option("topk", integer(1, 1000), 5, "how many of the best labels to report", metavar="K"),
    Option("threads", integer(1, 256), default_threads(), "inference threads", metavar="N"),
    Option("frames", optional(integer(1)), None, "stop after N classified frames", metavar="N"),
    Option("duration", optional(number(0.0)), None, "stop after S seconds", metavar="S"),
]


class FpsMeter:
    """Frames per second over the last `window` frames."""

    def __init__(self, window: int = 30) -> None:
        self.times: deque[float] = deque(maxlen=window)

    def tick(self) -> float:
        self.times.append(time.monotonic())
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0


@dataclass
class Summary:
    frames: int
    seconds: float
    dropped: int


class StopFlag:
    """Set by SIGINT/SIGTERM (and by sinks); wakes a source blocked waiting for a frame."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.source = None

    def set(self, *_: object) -> None:
        self.event.set()
        if self.source is not None:
            self.source.interrupt()

    def __bool__(self) -> bool:
        return self.event.is_set()


def run(settings) -> Summary:
    spec = store.get(settings.model, settings.labels)
    # A bad URI fails before the model loads; a camera may size a stream for the model's input.
    source = open_source(settings.source, settings, spec.input or None)
    classifier = Classifier.load(spec, settings.backend, settings.threads, settings.topk)
    sinks = make_sinks(settings)
    stop = StopFlag()
    previous = {sig: signal.signal(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)}
    fps = FpsMeter()
    count = 0
    started = time.monotonic()
    opened = []
    try:
        source.open()
        stop.source = source
        for sink in sinks:
            sink.open()
            opened.append(sink)
        log.info("classifying %s with %s on %s (%d threads)", settings.source, classifier.spec.name,
                 settings.backend, settings.threads)
        while not stop:
            frame = source.read()
            if frame is None:
                break
            prediction = replace(classifier.classify(frame.image), fps=fps.tick())
            for sink in sinks:
                sink.write(frame, prediction)
            count += 1
            if settings.frames is not None and count >= settings.frames:
                break
            if settings.duration is not None and time.monotonic() - started >= settings.duration:
                break
            if any(sink.stop_requested for sink in sinks):
                break
    finally:
        for sink in reversed(opened):
            sink.close()
        source.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    summary = Summary(count, time.monotonic() - started, source.dropped)
    log.info("classified %d frames in %.1f s (%d dropped)", summary.frames, summary.seconds,
             summary.dropped)
    return summary

