"""The sd_notify(3) protocol spoken directly over $NOTIFY_SOCKET (no libsystemd needed), and the
sink that tells systemd how the run goes: READY=1 once the model is loaded and the first frame is
classified, STATUS= with the FPS and the current best label, WATCHDOG=1 from the frame loop, and
STOPPING=1 when the run ends.

The watchdog pings come from write(), i.e. only while frames are classified: a camera that stops
delivering or an inference that hangs stops the pings, and systemd's WatchdogSec= restarts the
service."""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

from edgecam.base.frame import Frame, Prediction
from edgecam.sinks.base import Sink

log = logging.getLogger(__name__)

STATUS_INTERVAL = 1.0  # seconds between STATUS= updates: systemctl status is read by people
WATCHDOG_FRACTION = 0.25  # ping this often within WatchdogSec=, so a slow frame never trips it


class NotifySocket:
    """A datagram socket to the service manager. Sending never raises: the manager going away
    must not end the classification, so a failure is logged once and later messages are dropped
    until one gets through again."""

    def __init__(self, address: str) -> None:
        if address.startswith("@"):  # the abstract namespace: a leading NUL instead of '@'
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        else:
            raise ValueError(f"NOTIFY_SOCKET={address!r} is neither a path nor an @abstract name")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._failing = False

    @classmethod
    def from_env(cls) -> NotifySocket | None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        if not address:
            return None
        try:
            return cls(address)
        except ValueError as e:  # e.g. a vsock: address of a newer manager in a VM
            log.warning("%s: not sending service notifications", e)
            return None

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` assignments in one datagram; True when the manager got it."""
        message = "\n".join(assignments).encode("utf-8")
        try:
            self._socket.sendto(message, self.address)
        except OSError as e:
            if not self._failing:
                log.warning("cannot notify the service manager at %s: %s",
                            self.address.replace("\0", "@"), e.strerror or e)
            self._failing = True
            return False
        self._failing = False
        return True

    def close(self) -> None:
        self._socket.close()


def watchdog_interval(environ: Mapping[str, str] = os.environ) -> float | None:
    """Seconds between WATCHDOG=1 pings, or None when the watchdog is off or meant for another
    process (WATCHDOG_PID names the one process that must ping, as sd_watchdog_enabled(3) says)."""
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 * WATCHDOG_FRACTION if usec > 0 else None


def status_line(prediction: Prediction) -> str:
    best = prediction.top[0] if prediction.top else None
    top1 = f"{best.label} ({best.score:.2f})" if best else "nothing"
    return f"{prediction.fps:.1f} FPS, top-1: {top1}"


class Notifier(Sink):
    """Service notifications from the run loop (see the module docstring)."""

    def __init__(self, notify: NotifySocket, watchdog: float | None) -> None:
        self.notify = notify
        self.watchdog = watchdog  # seconds between pings; None: no watchdog
        self._ready = False
        self._last_status = self._last_ping = float("-inf")

    def open(self) -> None:
        self.notify.send("STATUS=model loaded, waiting for the first frame")

    def write(self, frame: Frame, prediction: Prediction) -> None:
        now = time.monotonic()
        message = []
        if not self._ready:
            message.append("READY=1")
            self._ready = True
        if now - self._last_status >= STATUS_INTERVAL:
            message.append("STATUS=" + status_line(prediction))
            self._last_status = now
        if self.watchdog is not None and now - self._last_ping >= self.watchdog:
            message.append("WATCHDOG=1")
            self._last_ping = now
        if message:
            self.notify.send(*message)

    def close(self, reloading: bool = False) -> None:
        if reloading:  # the next run's first frame sends READY=1 again
            usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            self.notify.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")
        else:
            self.notify.send("STOPPING=1", "STATUS=stopping")
        self.notify.close()


def service_sinks() -> list[Sink]:
    """[Notifier] when a service manager asked for notifications ($NOTIFY_SOCKET), else []."""
    notify = NotifySocket.from_env()
    return [] if notify is None else [Notifier(notify, watchdog_interval())]
