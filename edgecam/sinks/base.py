"""The one interface every output has: open(), write(frame, prediction), close(reloading); the
hand-off that keeps a slow output (JPEG encoding, a broker, a disk) off the inference thread, and
the base of the outputs that work on such a thread."""
from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from edgecam.base import priority
from edgecam.base.frame import Frame, Prediction, Stamp

log = logging.getLogger(__name__)

T = TypeVar("T")


class Sink(ABC):
    """An output of the run loop. The loop opens the sinks in order, writes each classified frame
    to each of them on its own thread, and closes the ones it opened in reverse order."""

    # A sink sets this to True when its user asked to end the run (a window's q or Esc); the loop
    # ends after the frame it is writing.
    stop_requested: bool = False

    def open(self) -> None:  # noqa: B027 (an optional hook)
        """Acquire what the sink writes to; errors here abort the run before it starts."""

    @abstractmethod
    def write(self, frame: Frame, prediction: Prediction) -> None:
        """Take one classified frame. On the inference thread: anything slow goes to a thread of
        its own (ThreadedSink)."""

    def close(self, reloading: bool = False) -> None:  # noqa: B027 (an optional hook)
        """Flush and release; called once, also when the run ends by a signal or an error.
        `reloading`: the run ends only to start again with the configuration re-read (SIGHUP)."""


def top_record(prediction: Prediction) -> list[dict]:
    return [{"label": t.label, "index": t.index, "score": round(t.score, 5)} for t in prediction.top]


def record(frame: Frame | Stamp, prediction: Prediction) -> dict:
    """The result of one frame as the logs and messages carry it; `event` when an event filter
    passed it on (see edgecam.sinks.events)."""
    result = {
        "time": datetime.fromtimestamp(frame.timestamp, UTC).isoformat(timespec="milliseconds"),
        **({"camera": frame.camera} if frame.camera else {}),
        "frame": frame.index,
        "source": frame.source,
        "model": prediction.model,
        "backend": prediction.backend,
        "top": top_record(prediction),
        "inference_ms": round(prediction.inference_ms, 3),
        "fps": round(prediction.fps, 2),
    }
    if "event" in prediction.extra:
        result["event"] = prediction.extra["event"]
    return result


class Handoff(Generic[T]):
    """Runs `handle(item)` on a thread of its own, nicer than inference (edgecam.base.priority). When
    `capacity` items are waiting already, `put` drops the oldest (capacity 1: only the newest item
    is ever handled), so the inference loop never waits for a slow output; with `lossless`, `put`
    waits for room instead (a log that must hold every result). With `gather` (seconds), a woken
    thread lets items gather that long and handles them in one go: one wake-up per batch instead of
    one per frame, each of which costs the network CPU."""

    def __init__(self, name: str, handle: Callable[[T], None], capacity: int = 1,
                 lossless: bool = False, gather: float = 0.0) -> None:
        self.name = name
        self.handle = handle
        self.capacity = capacity
        self.lossless = lossless
        self.gather = gather
        self.skipped = 0  # items dropped because the thread was busy
        self._items: deque[T] = deque(maxlen=capacity)
        self._condition = threading.Condition()
        self._idle = False  # the thread waits for an item: only then does a put wake it
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: T) -> None:
        with self._condition:
            if self.lossless:
                self._condition.wait_for(lambda: len(self._items) < self.capacity or self._stopping)
            if len(self._items) == self.capacity:
                self.skipped += 1
            self._items.append(item)
            if self._idle or len(self._items) == self.capacity:
                self._condition.notify_all()

    def _work(self) -> None:
        priority.run_nicer(priority.OUTPUT)
        while True:
            with self._condition:
                self._idle = True
                self._condition.wait_for(lambda: self._items or self._stopping)
                self._idle = False
                if not self._items:
                    return
                if self.gather:
                    self._condition.wait_for(
                        lambda: self._stopping or len(self._items) == self.capacity, self.gather)
                batch = list(self._items)
                self._items.clear()
                self._condition.notify_all()  # room for a lossless put
            for item in batch:
                try:
                    self.handle(item)
                except Exception:  # an output's bug must not end the thread that serves it
                    log.exception("%s failed", self.name)

    def stop(self, timeout: float = 5.0) -> bool:
        """Handle what is still waiting (bounded by `timeout`), then end the thread; False when
        it is still busy after `timeout`."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: %d items not handled after %.0f s", self.name, len(self._items),
                            timeout)
                return False
        return True


class ThreadedSink(Sink, Generic[T]):
    """A sink whose work runs on a Handoff thread of its own (see Handoff for `capacity`,
    `lossless` and `gather`; `name` names the thread and its error messages): open() starts the
    thread, write() hands it `item(frame, prediction)`, close() lets it finish what is waiting and
    ends it. Subclasses implement handle(item); one that acquires something in open() does so
    before calling super().open(), and releases it after super().close()."""

    def __init__(self, name: str, capacity: int = 1, lossless: bool = False,
                 gather: float = 0.0) -> None:
        self.handoff: Handoff[T] = Handoff(name, self.handle, capacity, lossless, gather)

    def open(self) -> None:
        self.handoff.start()

    def write(self, frame: Frame, prediction: Prediction) -> None:
        self.handoff.put(self.item(frame, prediction))

    def item(self, frame: Frame, prediction: Prediction) -> T:
        """What the thread gets for one frame, made on the inference thread (keep it cheap):
        by default the frame and its prediction."""
        return (frame, prediction)  # type: ignore[return-value]

    @abstractmethod
    def handle(self, item: T) -> None:
        """The output's work for one item, on the sink's thread; an exception is logged and the
        thread goes on with the next item."""

    def close(self, reloading: bool = False) -> None:
        self.handoff.stop()
