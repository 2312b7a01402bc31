"""The one interface every source has: open(), read() -> Frame | None (None: the source ended),
close(). Live sources capture on their own thread and hand out only the newest frame."""
from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod

import numpy as np

from edgecam.frame import Frame

log = logging.getLogger(__name__)


class Source(ABC):
    uri: str = ""
    dropped: int = 0  # frames captured but never read because a newer one replaced them

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> Frame | None: ...

    @abstractmethod
    def close(self) -> None: ...

    def interrupt(self) -> None:
        """Make a read() that is waiting for a frame return None (a stop was requested)."""

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveSource(Source):
    """A camera-like source: a thread grabs frames as fast as the device gives them and keeps only
    the newest, so a slow network always classifies a fresh frame and nothing queues up.

    Subclasses implement `_connect`, `_grab` (an RGB image, or None when the device ended) and
    `_disconnect`; the thread owns the device between them."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.dropped = 0
        self._latest: Frame | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._count = 0

    @abstractmethod
    def _connect(self) -> None: ...

    @abstractmethod
    def _grab(self) -> np.ndarray | None: ...

    @abstractmethod
    def _disconnect(self) -> None: ...

    def open(self) -> None:
        self._connect()
        self._thread = threading.Thread(target=self._capture, name=f"capture {self.uri}", daemon=True)
        self._thread.start()

    def _capture(self) -> None:
        try:
            while not self._stop.is_set():
                image = self._grab()
                if image is None:
                    break
                self._publish(image)
        except BaseException as e:  # handed to the reader, which raises it in the main thread
            self._error = e
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()

    def _name(self) -> str:
        """What the frame just grabbed shows, for logs (the demo names its photo)."""
        return self.uri

    def _publish(self, image: np.ndarray) -> None:
        frame = Frame(image, self._count, time.time(), self._name())
        self._count += 1
        with self._condition:
            if self._latest is not None:
                self.dropped += 1
            self._latest = frame
            self._condition.notify_all()

    def read(self) -> Frame | None:
        with self._condition:
            while self._latest is None and not self._ended:
                self._condition.wait()
            frame, self._latest = self._latest, None
        if frame is None and self._error is not None:
            raise self._error
        return frame

    def interrupt(self) -> None:
        self._stop.set()
        with self._condition:
            self._ended = True
            self._condition.notify_all()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._disconnect()
