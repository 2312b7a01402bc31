"""The one interface every output has: open(), write(frame, prediction), close(); and the hand-off
that keeps a slow output (JPEG encoding, a broker, a disk) off the inference thread."""
from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime, timezone
from typing import Callable, Generic, TypeVar

from edgecam import priority
from edgecam.frame import Frame, Prediction

log = logging.getLogger(__name__)

T = TypeVar("T")


class Sink:
    # Set by a sink whose user asked to end the run (a window's q or Esc).
    stop_requested: bool = False
    # Set by the pipeline before close() when the run ends only to start again (SIGHUP).
    reloading: bool = False

    def open(self) -> None:
        """Acquire what the sink writes to; errors here abort the run before it starts."""

    def write(self, frame: Frame, prediction: Prediction) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release; called once, also when the run ends by a signal or an error."""


def top_record(prediction: Prediction) -> list[dict]:
    return [{"label": t.label, "index": t.index, "score": round(t.score, 5)} for t in prediction.top]


def record(frame: Frame, prediction: Prediction) -> dict:
    """The result of one frame as the logs and messages carry it; `event` when an event filter
    passed it on (see edgecam.sinks.events)."""
    result = {
        "time": datetime.fromtimestamp(frame.timestamp, timezone.utc).isoformat(timespec="milliseconds"),
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
    """Runs `handle(item)` on a thread of its own, nicer than inference (edgecam.priority). When
    `capacity` items are waiting already, `put` drops the oldest (capacity 1: only the newest item
    is ever handled), so the inference loop never waits for a slow output; with `lossless`, `put`
    waits for room instead (a log that must hold every result)."""

    def __init__(self, name: str, handle: Callable[[T], None], capacity: int = 1,
                 lossless: bool = False) -> None:
        self.name = name
        self.handle = handle
        self.capacity = capacity
        self.lossless = lossless
        self.skipped = 0  # items dropped because the thread was busy
        self._items: deque[T] = deque(maxlen=capacity)
        self._condition = threading.Condition()
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
            self._condition.notify_all()

    def _work(self) -> None:
        priority.run_nicer(priority.OUTPUT)
        while True:
            with self._condition:
                while not self._items and not self._stopping:
                    self._condition.wait()
                if not self._items:
                    return
                item = self._items.popleft()
                self._condition.notify_all()  # room for a lossless put
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
