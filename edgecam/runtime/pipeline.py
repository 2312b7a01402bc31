"""The run loop: source → preprocess → backend → prediction → sinks, until a stop condition."""
from __future__ import annotations

import logging
import resource
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from edgecam import backends, sinks, sources
from edgecam.base.machine import physical_cores
from edgecam.base.options import (
    Option,
    Settings,
    choice,
    integer,
    number,
    optional,
    text,
)
from edgecam.base.preprocess import Roi
from edgecam.models import store
from edgecam.runtime.classifier import Classifier, Selection
from edgecam.runtime.prefetch import Prefetcher, StageClock
from edgecam.runtime.signals import StopFlag, stop_on_signals
from edgecam.sinks import make_sinks
from edgecam.sinks.base import Sink
from edgecam.sinks.systemd import service_sinks
from edgecam.sources import open_source
from edgecam.sources.base import Source

log = logging.getLogger(__name__)


def label_names(value: Any) -> tuple[str, ...]:
    """'cat,espresso' or a TOML list; checked against the model's labels once it is loaded."""
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not names or not all(isinstance(n, str | int) and str(n)
                                                                   for n in names):
        raise ValueError("must be label names or indices, e.g. cat,espresso or 281,967")
    return tuple(str(n) for n in names)


OPTIONS = [
    Option("source", text, "demo", "what to classify: picam:N, usb:N, csi://N, rtsp://…, http://…, a "
           "file, a folder or demo", metavar="URI"),
    Option("model", text, "efficientnet_lite0", "a model name (edgecam models list) or an .onnx file",
           metavar="NAME"),
    Option("labels", optional(text), None, "class names file for a model given as an .onnx file",
           metavar="FILE"),
    Option("backend", choice(*backends.CHOICES), "auto", "inference backend: "
           + ", ".join(backends.CHOICES) + " (auto: each installed one measured once here, the fastest "
           "kept; $EDGECAM_BACKEND replaces this default)", env="EDGECAM_BACKEND"),
    Option("topk", integer(0, 1000), 5, "how many of the best labels to report (0: every label "
           "scoring --min-score or more)", metavar="K"),
    Option("only", optional(label_names), None, "report only these labels (names or indices)",
           metavar="LABEL[,LABEL]", type=tuple[str, ...] | None),
    Option("ignore", optional(label_names), None, "never report these labels (names or indices)",
           metavar="LABEL[,LABEL]", type=tuple[str, ...] | None),
    Option("min_score", number(0.0, 1.0), 0.0, "report only labels scoring at least this; a frame "
           "with none makes no event", metavar="S"),
    Option("roi", optional(Roi.parse), None, "classify only this region of the frame: X,Y,W,H in "
           "pixels, or fractions of the frame when all are ≤ 1 (0.5,0,0.5,1: the right half)",
           metavar="X,Y,W,H", type=Roi | None),
    Option("threads", integer(1, 256), physical_cores(), "inference threads", metavar="N"),
    Option("allow_untrained", bool, False, "run a network that has no trained weights here (random "
           "weights: for benchmarks)", switch=True),
    Option("frames", optional(integer(1)), None, "stop after N classified frames", metavar="N"),
    Option("duration", optional(number(0.0)), None, "stop after S seconds", metavar="S"),
]


def run_options() -> list[Option]:
    """Every option of `edgecam run`: the loop's, the sources' and the outputs'."""
    return OPTIONS + sources.OPTIONS + sinks.OPTIONS


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
    stages: dict[str, float]  # seconds spent per stage: capture, preprocess, inference, sinks, wait
    cpu_seconds: float
    reload: bool = False  # ended by SIGHUP: the caller runs again with the config re-read

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run(settings: Settings, source: Source | None = None,
        stopped: threading.Event | None = None, extra_sinks: Sequence[Sink] = ()) -> Summary:
    """Classify `settings.source` (or the given source) until it ends, a limit is reached, a sink
    asks to stop, SIGINT/SIGTERM arrives, or SIGHUP asks for a reload. `stopped`: set when a stop
    signal came before this run's handlers were installed; `extra_sinks`: outputs beside those the
    settings ask for (the pipeline benchmark's)."""
    spec = store.get(settings.model, settings.labels)
    # A bad URI fails before the model loads; a camera may size a stream for the model's input.
    source = source or open_source(settings.source, settings, spec.input or None)
    select = Selection.of(spec.labels, settings.topk, settings.only, settings.ignore, settings.min_score)
    classifier = Classifier.load(spec, settings.backend, settings.threads, select,
                                 settings.allow_untrained)
    # service_sinks(): systemd's READY/STATUS/WATCHDOG/STOPPING
    sinks = make_sinks(settings, settings.topk) + service_sinks() + list(extra_sinks)
    # OpenCV's worker pool spins after each job at full priority: measured 1.2 ms of CPU per frame
    # taken from the network's threads, to split a 0.3 ms resize. The helpers resize, draw and
    # encode on their own (nicer) threads instead.
    cv2.setNumThreads(0)
    loop = Loop(settings, source, classifier, sinks)
    with stop_on_signals(loop.stop):
        if stopped is not None and stopped.is_set():
            loop.stop.set(signal.SIGTERM)
        try:
            loop.open()
            loop.classify()
        finally:
            loop.close()
    return loop.summary()


class Loop:
    """One run's parts and counters: opened, then stepped frame by frame, closed, summed up. The
    CPU and wall time it reports are the loop's, not the set-up's or the tear-down's."""

    def __init__(self, settings: Settings, source: Source, classifier: Classifier,
                 sinks: list[Sink]) -> None:
        self.settings = settings
        self.source = source
        self.classifier = classifier
        self.sinks = sinks
        self.clock = StageClock()
        roi = settings.roi
        self.prefetcher = Prefetcher(source, classifier.prepare if roi is None else
                                     lambda image: classifier.prepare(roi.crop(image)), self.clock)
        self.stop = StopFlag()
        self.fps = FpsMeter()
        self.count = 0
        self.opened: list[Sink] = []  # closed in reverse order, also when a later one fails to open
        self.cpu_started = self.started = self.cpu_ended = self.ended = 0.0

    def open(self) -> None:
        self.source.open()
        for sink in self.sinks:
            sink.open()
            self.opened.append(sink)
        log.info("classifying %s with %s on %s (%d threads)", self.source.uri,
                 self.classifier.spec.name, self.classifier.backend.name, self.settings.threads)

    def classify(self) -> None:
        """Frame after frame until the source ends, a stop signal comes or finished() says so."""
        self.stop.prefetcher = self.prefetcher
        self.cpu_started, self.started = cpu_seconds(), time.monotonic()  # the loop, not the set-up
        self.prefetcher.start()
        while not self.stop:
            if not self.step():
                break

    def step(self) -> bool:
        """Classify the next frame and hand it to every sink; False once the run is to end."""
        t0 = time.perf_counter()
        item = self.prefetcher.get()
        if item is None:
            return False
        t1 = time.perf_counter()
        prediction = replace(self.classifier.classify_prepared(item.input[None])[0],
                             fps=self.fps.tick())
        if self.settings.roi is not None:  # drawn by the window, the preview and the recording
            prediction.extra["roi"] = roi_fractions(self.settings.roi, item.frame.image)
        t2 = time.perf_counter()
        for sink in self.sinks:
            sink.write(item.frame, prediction)
        self.clock.add("wait", t1 - t0)
        self.clock.add("inference", t2 - t1)
        self.clock.add("sinks", time.perf_counter() - t2)
        self.count += 1
        return not self.finished()

    def finished(self) -> bool:
        """The --frames or --duration limit is reached, or a sink asked to end the run."""
        frames, duration = self.settings.frames, self.settings.duration
        if frames is not None and self.count >= frames:
            return True
        if duration is not None and time.monotonic() - self.started >= duration:
            return True
        return any(sink.stop_requested for sink in self.sinks)

    def close(self) -> None:
        """Stop reading, close the sinks opened (the last first), then release the source."""
        self.cpu_ended, self.ended = cpu_seconds(), time.monotonic()  # the loop, not the tear-down
        self.prefetcher.stop()
        for sink in reversed(self.opened):
            sink.close(reloading=self.stop.reload)
        self.prefetcher.join()
        self.source.close()

    def summary(self) -> Summary:
        ran = bool(self.started)
        summary = Summary(self.count, self.ended - self.started if ran else 0.0,
                          self.source.dropped + self.prefetcher.dropped, dict(self.clock.seconds),
                          self.cpu_ended - self.cpu_started if ran else 0.0, self.stop.reload)
        log.info("classified %d frames in %.1f s (%.1f FPS, %d dropped, %d reconnects)",
                 summary.frames, summary.seconds, summary.fps, summary.dropped,
                 self.source.reconnects)
        return summary


def roi_fractions(roi: Roi, image: np.ndarray) -> tuple[float, float, float, float]:
    """The region as fractions of the frame (left, top, right, bottom): the same on any display."""
    height, width = image.shape[:2]
    left, top, right, bottom = roi.box(width, height)
    return left / width, top / height, right / width, bottom / height


def cpu_seconds() -> float:
    """CPU time of the whole process, every thread, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
