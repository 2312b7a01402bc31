"""The one interface every source has: open(), read() -> Frame | None (None: the source ended),
close(). Live sources capture on their own thread, hand out only the newest frame, and reconnect
when the device or stream stops delivering."""
from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar

import cv2
import numpy as np

from edgecam.base.errors import SourceError
from edgecam.base.frame import Frame
from edgecam.base.redact import masked

log = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_FIRST = 0.5  # seconds before the first reconnect attempt; doubled after each failure
BACKOFF_CAP = 8.0  # the longest wait between two attempts


class Source(ABC):
    uri: str = ""
    dropped: int = 0  # frames captured but never read because a newer one replaced them
    reconnects: int = 0  # outages a live source survived

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> Frame | None: ...

    @abstractmethod
    def close(self) -> None: ...

    def interrupt(self) -> None:  # noqa: B027 (an optional hook)
        """Make a read() that is waiting for a frame return None (a stop was requested)."""

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Orientation:
    """How a camera is mounted: mirror first, then rotate clockwise."""

    rotation: int = 0  # 0, 90, 180 or 270
    hflip: bool = False
    vflip: bool = False

    ROTATE: ClassVar[dict[int, int]] = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
                                        270: cv2.ROTATE_90_COUNTERCLOCKWISE}

    def apply(self, image: np.ndarray) -> np.ndarray:
        if self.hflip and self.vflip:
            image = cv2.flip(image, -1)
        elif self.hflip or self.vflip:
            image = cv2.flip(image, 1 if self.hflip else 0)
        if self.rotation:
            image = cv2.rotate(image, self.ROTATE[self.rotation])
        return image

    def __bool__(self) -> bool:
        return bool(self.rotation or self.hflip or self.vflip)


@dataclass
class Reconnect:
    """How a live source survives its device going away."""

    give_up: float = 60.0  # seconds without a frame before the run fails (0: never)
    read_timeout: float = 5.0  # seconds a device may stay silent before it counts as stopped

    @property
    def hang_limit(self) -> float:
        """How long one blocking device call may last before the source is declared dead: longer
        than any timeout the backends were given, so only a truly stuck call reaches it."""
        return 3 * self.read_timeout + 10.0


@dataclass
class _Outage:
    since: float  # time.monotonic() when the source stopped delivering
    reason: str
    advised: bool = False  # the reason is a SourceError: it names the fix
    delay: float = BACKOFF_FIRST
    attempts: int = 0


class LiveSource(Source):
    """A camera-like source: a thread grabs frames as fast as the device gives them and keeps only
    the newest, so a slow network always classifies a fresh frame and nothing queues up.

    Subclasses implement `_connect`, `_grab` (an image, or None when the device delivered none)
    and `_disconnect`; the thread owns the device between them. When `_grab` fails, the thread logs
    one warning, disconnects and connects again with capped exponential back-off until frames flow
    again, or fails the run once `reconnect.give_up` seconds have passed without a frame."""

    def __init__(self, uri: str, reconnect: Reconnect | None = None,
                 orientation: Orientation = Orientation()) -> None:
        self.address = uri  # what connects; `uri` is what every output shows
        self.uri = masked(uri)
        self.dropped = 0
        self.reconnects = 0  # outages survived
        self.reconnect = reconnect or Reconnect()
        self.orientation = orientation
        self._latest: Frame | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._condition = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy_since: float | None = None  # when the device call in progress started
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

    def _device(self, call: Callable[[], T]) -> T:
        """Run one device call, timed so that read() can tell a stuck device from a slow one."""
        self._busy_since = time.monotonic()
        try:
            return call()
        finally:
            self._busy_since = None

    def _capture(self) -> None:
        try:
            connected, outage = True, None
            while not self._stop.is_set():
                if not connected:
                    assert outage is not None
                    connected = self._retry(outage)
                    continue
                try:
                    image = self._device(self._grab)
                    reason = "the connection closed, or no frame came within the read timeout"
                except Exception as e:  # noqa: BLE001 - any device failure is an outage, survived alike
                    image, reason = None, _describe(e)
                if image is not None:
                    if outage is not None:
                        log.info("source %s resumed after %.1f s", self.uri,
                                 time.monotonic() - outage.since)
                        self.reconnects += 1
                        outage = None
                    self._publish(image)
                    continue
                if outage is None:
                    outage = _Outage(time.monotonic(), reason)
                    give_up = (f"giving up after {self.reconnect.give_up:g} s"
                               if self.reconnect.give_up else "until it is back")
                    log.warning("source %s stopped delivering (%s): reconnecting, %s", self.uri,
                                reason, give_up)
                self._release()
                connected = False
        except BaseException as e:  # noqa: BLE001 - the reader raises it in the main thread
            self._error = e
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()

    def _retry(self, outage: _Outage) -> bool:
        """Wait out the back-off, then try to connect once; True when connected."""
        wait = outage.delay
        if self.reconnect.give_up:
            remaining = outage.since + self.reconnect.give_up - time.monotonic()
            if remaining <= 0:
                # A SourceError already says what to check; a library's error does not.
                advice = outage.reason if outage.advised else (
                    f"{outage.reason}: check the camera or stream")
                raise SourceError(f"source {self.uri} delivered no frame for "
                                  f"{self.reconnect.give_up:g} s ({outage.attempts} reconnect "
                                  f"attempts): {advice}")
            wait = min(wait, remaining)
        if self._stop.wait(wait):
            return False
        outage.attempts += 1
        try:
            self._device(self._connect)
        except Exception as e:  # noqa: BLE001 - a failed connect is an outage too, retried
            outage.reason, outage.advised = _describe(e), isinstance(e, SourceError)
            outage.delay = min(outage.delay * 2, BACKOFF_CAP)
            log.debug("source %s: reconnect attempt %d failed: %s", self.uri, outage.attempts,
                      outage.reason)
            return False
        return True

    def _release(self) -> None:
        try:
            self._device(self._disconnect)
        except Exception as e:  # noqa: BLE001 - a device that went away may fail to close
            log.debug("source %s: closing after a failure: %s", self.uri, _describe(e))

    def _name(self) -> str:
        """What the frame just grabbed shows, for logs (the demo names its photo)."""
        return self.uri

    def _frame(self, image: np.ndarray) -> Frame:
        """The frame for an image just grabbed; on the capture thread, so keep it cheap."""
        return Frame(image, self._count, time.time(), self._name())

    def _finish(self, frame: Frame) -> Frame:
        """Per-pixel work deferred from the capture thread to the reader, so that it is spent only
        on frames that are classified, never on dropped ones: colour conversion, orientation."""
        if not self.orientation:
            return frame
        return replace(frame, image=self.orientation.apply(frame.image))

    def _publish(self, image: np.ndarray) -> None:
        frame = self._frame(image)
        self._count += 1
        with self._condition:
            if self._latest is not None:
                self.dropped += 1
            self._latest = frame
            self._condition.notify_all()

    def read(self) -> Frame | None:
        with self._condition:
            while self._latest is None and not self._ended:
                self._condition.wait(timeout=1.0)
                self._check_hang()
            frame, self._latest = self._latest, None
        if frame is None and self._error is not None:
            raise self._error
        return None if frame is None else self._finish(frame)

    def _check_hang(self) -> None:
        """A device call blocked far beyond its timeouts (a driver or library that ignores them):
        fail the run so that the service manager starts edgecam afresh."""
        started = self._busy_since
        if started is not None and time.monotonic() - started > self.reconnect.hang_limit:
            raise SourceError(f"source {self.uri} stopped answering (a read has been blocked for "
                              f"{time.monotonic() - started:.0f} s): check the camera or stream")

    def interrupt(self) -> None:
        self._stop.set()
        with self._condition:
            self._ended = True
            self._condition.notify_all()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.reconnect.read_timeout + 5)
            if self._thread.is_alive():  # stuck in the device: releasing it under the thread
                log.warning("source %s: capture thread is stuck; not releasing the device", self.uri)
                return  # could crash the process, which is about to exit anyway
        self._release()


def _describe(error: BaseException) -> str:
    """One line for a device error, whatever library raised it."""
    text = " ".join(str(error).split())
    return text or type(error).__name__
