"""What lets the run loop do nothing but inference: the next frame is read and brought to the model
input on its own thread while the network runs, and each stage's time is accounted for."""
from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from edgecam.base import priority
from edgecam.base.frame import Frame
from edgecam.sources.base import LiveSource, Source

_END = object()
# The consumer waited this long (seconds) for a frame the prefetcher was busy with: it is starved.
STARVED_WAIT = 0.02


@dataclass(frozen=True)
class Prepared:
    frame: Frame
    input: np.ndarray  # the frame at the model input size, uint8 S×S×3


class StageClock:
    """Seconds spent per stage, summed; safe to add to from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds


class Prefetcher:
    """Reads and prepares frames ahead of the consumer on a thread of its own.

    A live source hands over only the newest prepared frame (older ones are dropped and counted);
    a recorded one (file, folder) keeps every frame, a couple ahead."""

    def __init__(self, source: Source, prepare: Callable[[np.ndarray], np.ndarray],
                 clock: StageClock, camera: str = "",
                 notify: Callable[[], None] | None = None) -> None:
        self.source = source
        self.prepare = prepare
        self.clock = clock
        self.camera = camera  # named on each frame when not ""
        self.notify = notify  # called after each frame (or the end) is handed over
        self.live = isinstance(source, LiveSource)
        self.dropped = 0
        self.ended = False  # the source ended (or failed), and that was handed over
        self._queue: queue.Queue = queue.Queue(maxsize=1 if self.live else 2)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.scheduling = priority.Yielding(priority.PREPARE)
        self._busy = False  # reading a recording or preparing a frame, not waiting for a camera
        self._starved = threading.Event()  # the consumer waited for this thread's work
        self._thread = threading.Thread(target=self._work, name="prefetch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _work(self) -> None:
        self.scheduling.start()
        try:
            while not self._stop.is_set():
                if self._starved.is_set():
                    self._starved.clear()
                    self.scheduling.starved()
                else:
                    self.scheduling.settle()
                started = time.perf_counter()
                self._busy = not self.live  # a recording's read() decodes; a camera's waits
                frame = self.source.read()
                read = time.perf_counter()
                if frame is None:
                    break
                if self.camera:
                    frame = replace(frame, camera=self.camera)
                self._busy = True
                image = frame.image if frame.model_image is None else frame.model_image
                item = Prepared(frame, self.prepare(image))
                self.clock.add("capture", read - started)
                self.clock.add("preprocess", time.perf_counter() - read)
                self._put(item)
                self._busy = False
        except BaseException as e:  # noqa: BLE001 - raised again in the consumer's thread
            self._error = e
        finally:
            self._busy = False
            self._put(_END)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            if self.live and item is not _END:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            if self.notify is not None:
                self.notify()
            return

    def get(self) -> Prepared | None:
        """The next prepared frame, or None once the source has ended or a stop was requested."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            busy, waited = self._busy, time.perf_counter()
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                    break
                except queue.Empty:
                    if self._stop.is_set():
                        return None
            # The network waited while this thread worked (not while the camera was silent): it
            # is on the critical path, and must not yield its core to anything.
            if busy and time.perf_counter() - waited > STARVED_WAIT:
                self._starved.set()
        return self._delivered(item)

    def waited(self, seconds: float) -> None:
        """The consumer waited `seconds` for a frame from any of its prefetchers: if this one was
        working (not waiting for its camera) meanwhile, it is on the critical path."""
        if self._busy and seconds > STARVED_WAIT:
            self._starved.set()

    def poll(self) -> Prepared | None:
        """The next prepared frame if one is ready, else None at once (`ended` tells the end)."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        return self._delivered(item)

    def _delivered(self, item: object) -> Prepared | None:
        if item is _END:
            self.ended = True
            if self._error is not None:
                raise self._error
            return None
        return item  # type: ignore[return-value]

    def stop(self) -> None:
        self._stop.set()
        self.source.interrupt()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)
