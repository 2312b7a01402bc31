"""The run loop: source → preprocess → backend → prediction → sinks, until a stop condition."""
from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import cv2

from edgecam import backends, store
from edgecam.classifier import Classifier
from edgecam.options import Option, Settings, choice, integer, number, optional, text
from edgecam.service.notify import service_sinks
from edgecam.sinks import make_sinks
from edgecam.sinks.base import Sink
from edgecam.sources import open_source
from edgecam.sources.base import Source
from edgecam.stages import Prefetcher, StageClock

log = logging.getLogger(__name__)


def default_threads(cpus: set[int] | None = None, sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """The physical cores among the CPUs this process may use (`cpus`, default its affinity): a
    core's second hardware thread shares its vector units, so a CNN gains nothing from it and its
    threads then wait for each other. Each CPU counts as a core where the topology is not known."""
    if cpus is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        try:
            cores.add((sysfs / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text().strip())
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


OPTIONS = [
    Option("source", text, "demo", "what to classify: picam:N, usb:N, csi://N, rtsp://…, http://…, a file, a folder or demo",
           metavar="URI"),
    Option("model", text, "efficientnet_lite0", "a model name (edgecam models list) or an .onnx file",
           metavar="NAME"),
    Option("labels", optional(text), None, "class names file for a model given as an .onnx file",
           metavar="FILE"),
    Option("backend", choice(*backends.CHOICES), "onnx", "inference backend: "
           + ", ".join(backends.CHOICES) + " (auto: measured once here, the fastest kept)"),
    Option("topk", integer(1, 1000), 5, "how many of the best labels to report", metavar="K"),
    Option("threads", integer(1, 256), default_threads(), "inference threads", metavar="N"),
    Option("allow_untrained", bool, False, "run a network that has no trained weights here (random "
           "weights: for benchmarks)", switch=True),
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
    stages: dict[str, float]  # seconds spent per stage: capture, preprocess, inference, sinks, wait
    cpu_seconds: float
    reload: bool = False  # ended by SIGHUP: the caller runs again with the config re-read

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class StopFlag:
    """Set by SIGINT/SIGTERM, or by SIGHUP asking for a reload; wakes the loop if it waits."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reload = False
        self.prefetcher: Prefetcher | None = None

    def set(self, signum: int = 0, _frame: object = None) -> None:
        # A stop wins over a reload, whichever came first: a SIGTERM sent while a SIGHUP's run
        # was still shutting down must not be lost to the restart.
        self.reload = signum == signal.SIGHUP and (self.reload or not self.event.is_set())
        self.event.set()
        if self.prefetcher is not None:
            self.prefetcher.stop()

    def __bool__(self) -> bool:
        return self.event.is_set()


@contextmanager
def stop_on_signals(stop: StopFlag) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, stop.set) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(settings: Settings, source: Source | None = None,
        stopped: threading.Event | None = None, extra_sinks: Sequence[Sink] = ()) -> Summary:
    """Classify `settings.source` (or the given source) until it ends, a limit is reached, a sink
    asks to stop, SIGINT/SIGTERM arrives, or SIGHUP asks for a reload. `stopped`: set when a stop
    signal came before this run's handlers were installed; `extra_sinks`: outputs beside those the
    settings ask for (the pipeline benchmark's)."""
    spec = store.get(settings.model, settings.labels)
    # A bad URI fails before the model loads; a camera may size a stream for the model's input.
    source = source or open_source(settings.source, settings, spec.input or None)
    classifier = Classifier.load(spec, settings.backend, settings.threads, settings.topk,
                                 settings.allow_untrained)
    # service_sinks(): systemd's READY/STATUS/WATCHDOG/STOPPING
    sinks = make_sinks(settings) + service_sinks() + list(extra_sinks)
    clock = StageClock()
    # OpenCV's worker pool spins after each job at full priority: measured 1.2 ms of CPU per frame
    # taken from the network's threads, to split a 0.3 ms resize. The helpers resize, draw and
    # encode on their own (nicer) threads instead.
    cv2.setNumThreads(0)
    prefetcher = Prefetcher(source, classifier.prepare, clock)
    stop = StopFlag()
    fps = FpsMeter()
    count = 0
    opened: list[Sink] = []
    cpu_started = started = cpu_ended = ended = 0.0
    with stop_on_signals(stop):
        if stopped is not None and stopped.is_set():
            stop.set(signal.SIGTERM)
        try:
            source.open()
            for sink in sinks:
                sink.open()
                opened.append(sink)
            log.info("classifying %s with %s on %s (%d threads)", source.uri, spec.name,
                     classifier.backend.name, settings.threads)
            stop.prefetcher = prefetcher
            cpu_started, started = cpu_seconds(), time.monotonic()  # the loop, not the set-up
            prefetcher.start()
            while not stop:
                t0 = time.perf_counter()
                item = prefetcher.get()
                if item is None:
                    break
                t1 = time.perf_counter()
                prediction = replace(classifier.classify_prepared(item.input[None])[0], fps=fps.tick())
                t2 = time.perf_counter()
                for sink in sinks:
                    sink.write(item.frame, prediction)
                clock.add("wait", t1 - t0)
                clock.add("inference", t2 - t1)
                clock.add("sinks", time.perf_counter() - t2)
                count += 1
                if settings.frames is not None and count >= settings.frames:
                    break
                if settings.duration is not None and time.monotonic() - started >= settings.duration:
                    break
                if any(sink.stop_requested for sink in sinks):
                    break
        finally:
            cpu_ended, ended = cpu_seconds(), time.monotonic()  # the loop, not the tear-down
            prefetcher.stop()
            for sink in reversed(opened):
                sink.reloading = stop.reload
                sink.close()
            prefetcher.join()
            source.close()
    summary = Summary(count, ended - started if started else 0.0,
                      source.dropped + prefetcher.dropped, dict(clock.seconds),
                      cpu_ended - cpu_started if started else 0.0, stop.reload)
    log.info("classified %d frames in %.1f s (%.1f FPS, %d dropped, %d reconnects)", summary.frames,
             summary.seconds, summary.fps, summary.dropped, source.reconnects)
    return summary


def cpu_seconds() -> float:
    """CPU time of the whole process, every thread, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
