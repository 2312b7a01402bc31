"""The run loop: source → preprocess → backend → prediction → sinks, until a stop condition."""
from __future__ import annotations

import logging
import queue
import resource
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from edgecam import backends, sinks, sources
from edgecam.base import health
from edgecam.base.errors import SourceError
from edgecam.base.frame import Prediction
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
from edgecam.runtime import cameras
from edgecam.runtime.classifier import Classifier, Selection, label_indices
from edgecam.runtime.prefetch import Prefetcher, Prepared, StageClock
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
    *cameras.OPTIONS,
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
    health: dict = field(default_factory=dict)  # the board's at the end (edgecam.base.health.read)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def run(settings: Settings, source: Source | Sequence[Source] | None = None,
        stopped: threading.Event | None = None, extra_sinks: Sequence[Sink] = ()) -> Summary:
    """Classify the cameras of `settings` (or the given sources) until they end, a limit is
    reached, a sink asks to stop, SIGINT/SIGTERM arrives, or SIGHUP asks for a reload. `stopped`:
    set when a stop signal came before this run's handlers were installed; `extra_sinks`: outputs
    beside those the settings ask for (the pipeline benchmark's)."""
    spec = store.get(settings.model, settings.labels)
    # A bad URI fails before the model loads; a camera may size a stream for the model's input.
    feeds = feeds_of(settings, source, spec.input or None)
    select = Selection.of(spec.labels, settings.topk, settings.only, settings.ignore, settings.min_score)
    label_indices(tuple(label for _, label in settings.gpio or ()), spec.labels, "--gpio")
    classifiers = load_classifiers(spec, settings, select, len(feeds))
    # service_sinks(): systemd's READY/STATUS/WATCHDOG/STOPPING
    sinks = make_sinks(settings, settings.topk, [f.name for f in feeds]) + service_sinks() + list(extra_sinks)
    # OpenCV's worker pool spins after each job at full priority: measured 1.2 ms of CPU per frame
    # taken from the network's threads, to split a 0.3 ms resize. The helpers resize, draw and
    # encode on their own (nicer) threads instead.
    cv2.setNumThreads(0)
    loop = Loop(settings, feeds, classifiers, sinks)
    with stop_on_signals(loop.stop):
        if stopped is not None and stopped.is_set():
            loop.stop.set(signal.SIGTERM)
        try:
            loop.open()
            loop.classify()
        finally:
            loop.close()
    return loop.summary()


def load_classifiers(spec: store.ModelSpec, settings: Settings, select: Selection,
                     cameras: int) -> list[Classifier]:
    """One classifier with --threads for one camera. Several cameras get one per thread, each
    single-threaded, which the loop keeps busy with batches at once: on two cores two 1-thread
    inferences of Lite0 (onnxruntime) classify 273-309 frames a second against 185-198 for one
    2-thread inference, whose threads wait for each other at every layer."""
    workers = max(1, min(cameras, settings.threads)) if cameras > 1 else 1
    threads = settings.threads if workers == 1 else max(1, settings.threads // workers)
    first = Classifier.load(spec, settings.backend, threads, select, settings.allow_untrained)
    # auto's choice, by name, for the others: measured once
    return [first, *(Classifier.load(spec, first.backend.name, threads, select, settings.allow_untrained)
                     for _ in range(workers - 1))]


def share(cameras: int, workers: int) -> int:
    """The most frames of the cameras' one worker is handed at once: all of them split evenly."""
    return -(-cameras // workers)


@dataclass
class Feed:
    """One camera of the run: its name ("" when the run has one unnamed), source and region."""

    name: str
    source: Source
    roi: Roi | None = None


def feeds_of(settings: Settings, given: Source | Sequence[Source] | None,
             input_size: int | None) -> list[Feed]:
    """The run's cameras, their sources made (not opened): `given` sources (named mem0, mem1, …
    when several), else those `settings` name."""
    if given is not None:
        given = [given] if isinstance(given, Source) else list(given)
        return [Feed("" if len(given) == 1 else f"mem{i}", source, settings.roi)
                for i, source in enumerate(given)]
    return [Feed(c.name, open_source(c.uri, c.settings, input_size), c.settings.roi)
            for c in cameras.cameras(settings)]


class Loop:
    """One run's parts and counters: opened, then stepped frame by frame, closed, summed up. The
    CPU and wall time it reports are the loop's, not the set-up's or the tear-down's.

    Each camera has its own prefetcher (capture and preprocessing on a thread of its own); the
    frames that are ready when the network is free are classified in one batch, so a slow camera
    never holds up the others and no frame waits for a batch to fill."""

    def __init__(self, settings: Settings, feeds: list[Feed], classifiers: list[Classifier],
                 sinks: list[Sink]) -> None:
        self.settings = settings
        self.feeds = feeds
        self.classifier = classifiers[0]
        self.free: queue.SimpleQueue[Classifier] = queue.SimpleQueue()  # the ones not inferring
        for classifier in classifiers:
            self.free.put(classifier)
        self.workers = len(classifiers)
        # several cameras: batches are classified on workers while this thread feeds the sinks
        self.pool = ThreadPoolExecutor(self.workers, "inference") if len(feeds) > 1 else None
        self.in_flight: deque[tuple[list[tuple[Feed, Prepared]], Future]] = deque()
        self.sinks = sinks
        self.clock = StageClock()
        self.ready = threading.Event()  # a prefetcher handed a frame over
        self.prefetchers = {id(f): Prefetcher(f.source, self._preparer(f.roi), self.clock, f.name,
                                              self.ready.set) for f in feeds}
        self.active: list[Feed] = []  # opened, not yet ended
        self.turn = 0  # which active camera take() asks first
        self.stop = StopFlag()
        self.fps = {f.name: FpsMeter() for f in feeds}
        self.count = 0
        self.opened: list[Sink] = []  # closed in reverse order, also when a later one fails to open
        self.cpu_started = self.started = self.cpu_ended = self.ended = 0.0

    def _preparer(self, roi: Roi | None) -> Callable[[np.ndarray], np.ndarray]:
        prepare = self.classifier.prepare
        return prepare if roi is None else lambda image: prepare(roi.crop(image))

    def open(self) -> None:
        """Open the cameras (with several, one that fails is reported and the others run, unless
        --require-all-cameras), then the sinks."""
        failed: list[SourceError] = []
        for feed in self.feeds:
            try:
                feed.source.open()
            except SourceError as e:
                if len(self.feeds) == 1 or self.settings.require_all_cameras:
                    raise
                log.error("camera %s: %s; going on with the other cameras", feed.name, e)
                failed.append(e)
                continue
            self.active.append(feed)
        if not self.active:
            raise failed[0]
        for sink in self.sinks:
            sink.open()
            self.opened.append(sink)
        shown = ", ".join(f.source.uri if not f.name else f"{f.name} ({f.source.uri})" for f in self.active)
        threads = (f"{self.settings.threads} threads" if self.workers == 1 else
                   f"{self.workers} single-threaded inferences at once")
        log.info("classifying %s with %s on %s (%s)", shown, self.classifier.spec.name,
                 self.classifier.backend.name, threads)

    def classify(self) -> None:
        """Batch after batch until the sources end, a stop signal comes or finished() says so."""
        self.stop.prefetchers = [self.prefetchers[id(f)] for f in self.active]
        self.cpu_started, self.started = cpu_seconds(), time.monotonic()  # the loop, not the set-up
        for feed in self.active:
            self.prefetchers[id(feed)].start()
        while not self.stop:
            if not self.step():
                break

    def step(self) -> bool:
        """Classify the frames that are ready and hand each to every sink; False once the run is
        to end. With several cameras, every free worker is handed a batch of the frames that are
        ready and the oldest batch's results go to the sinks (on this thread, in order)."""
        t0 = time.perf_counter()
        if self.pool is None:
            item = self.prefetchers[id(self.feeds[0])].get()
            if item is None:
                return False
            items = [(self.feeds[0], item)]
            t1 = time.perf_counter()
            predictions = self.infer(items)
        else:
            done = self.next_done()
            if done is None:
                return False
            items, future, t1 = done
            predictions = future.result()
        t2 = time.perf_counter()
        for (feed, item), classified in zip(items, predictions, strict=True):
            prediction = replace(classified, fps=self.fps[feed.name].tick())
            if feed.roi is not None:  # drawn by the window, the preview and the recording
                prediction.extra["roi"] = roi_fractions(feed.roi, item.frame.image)
            for sink in self.sinks:
                sink.write(item.frame, prediction)
        self.clock.add("wait", t1 - t0)
        self.clock.add("inference", t2 - t1)
        self.clock.add("sinks", time.perf_counter() - t2)
        self.count += len(items)
        return not self.finished()

    def infer(self, items: list[tuple[Feed, Prepared]]) -> list[Prediction]:
        """One batch through a classifier that is free (on a worker's thread with several)."""
        classifier = self.free.get()
        try:
            return classifier.classify_prepared(np.stack([item.input for _, item in items]))
        finally:
            self.free.put(classifier)

    def next_done(self) -> tuple[list[tuple[Feed, Prepared]], Future, float] | None:
        """Hand out batches until the oldest one is classified: it, and since when a batch has
        been in flight (before, the loop waited for frames); None once every camera ended or a
        stop was requested. Each wake-up (a frame handed over, a batch done) sets `ready`."""
        flowing = time.perf_counter()
        while True:
            self.ready.clear()
            if not self.in_flight:
                flowing = time.perf_counter()
            self.dispatch()
            if self.in_flight and self.in_flight[0][1].done():
                items, future = self.in_flight.popleft()
                return items, future, flowing
            if not self.in_flight and (not self.active or self.stop):
                return None
            idle = self.busy() < self.workers
            waited = time.perf_counter()
            self.ready.wait(0.1)
            if idle:  # a worker waited for frames: the prefetchers working meanwhile are slow
                for feed in self.active:
                    self.prefetchers[id(feed)].waited(time.perf_counter() - waited)

    def busy(self) -> int:
        return sum(not future.done() for _, future in self.in_flight)

    def dispatch(self) -> None:
        """Each free worker gets up to its share of the cameras' ready frames (fewer rather than
        wait for more): with two workers and two cameras one frame each, so both cores work."""
        most = share(len(self.feeds), self.workers)
        while self.busy() < self.workers and len(self.in_flight) < 2 * self.workers:
            items = self.take(most)
            if not items:
                return
            future = self.pool.submit(self.infer, items)
            future.add_done_callback(lambda _: self.ready.set())
            self.in_flight.append((items, future))

    def take(self, limit: int) -> list[tuple[Feed, Prepared]]:
        """Up to `limit` ready frames, one a camera, the cameras asked in turn so that each gets
        its share; a camera that ended (or failed, unless --require-all-cameras) is
        dropped from the active ones."""
        items: list[tuple[Feed, Prepared]] = []
        if self.stop:
            return items
        turn = self.turn % max(1, len(self.active))
        for feed in self.active[turn:] + self.active[:turn]:
            if len(items) == limit:
                break
            prefetcher = self.prefetchers[id(feed)]
            try:
                item = prefetcher.poll()
            except SourceError as e:
                if self.settings.require_all_cameras or len(self.active) == 1:
                    raise
                log.error("camera %s: %s; going on with the other cameras", feed.name, e)
                item, prefetcher.ended = None, True
            if item is not None:
                items.append((feed, item))
        self.active = [f for f in self.active if not self.prefetchers[id(f)].ended]
        self.turn += len(items)
        return items

    def finished(self) -> bool:
        """The --frames or --duration limit is reached, or a sink asked to end the run."""
        frames, duration = self.settings.frames, self.settings.duration
        if frames is not None and self.count >= frames:
            return True
        if duration is not None and time.monotonic() - self.started >= duration:
            return True
        return any(sink.stop_requested for sink in self.sinks)

    def close(self) -> None:
        """Stop reading, close the sinks opened (the last first), then release the sources."""
        self.cpu_ended, self.ended = cpu_seconds(), time.monotonic()  # the loop, not the tear-down
        for prefetcher in self.prefetchers.values():
            prefetcher.stop()
        if self.pool is not None:  # the batches still being classified are not handed out
            self.pool.shutdown(wait=True, cancel_futures=True)
        for sink in reversed(self.opened):
            sink.close(reloading=self.stop.reload)
        for prefetcher in self.prefetchers.values():
            prefetcher.join()
        for feed in self.feeds:
            feed.source.close()

    def summary(self) -> Summary:
        ran = bool(self.started)
        dropped = sum(f.source.dropped + self.prefetchers[id(f)].dropped for f in self.feeds)
        reconnects = sum(getattr(f.source, "reconnects", 0) for f in self.feeds)
        summary = Summary(self.count, self.ended - self.started if ran else 0.0, dropped,
                          dict(self.clock.seconds), self.cpu_ended - self.cpu_started if ran else 0.0,
                          self.stop.reload, health.read())
        log.info("classified %d frames in %.1f s (%.1f FPS, %d dropped, %d reconnects)",
                 summary.frames, summary.seconds, summary.fps, summary.dropped, reconnects)
        if summary.health:
            log.info("board: %s", health.describe(summary.health))
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
