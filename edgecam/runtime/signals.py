"""Stop signals: SIGTERM/SIGINT end a run cleanly through every `finally`, SIGHUP asks for a reload.

Light on purpose: the CLI installs these handlers before its heavy imports, so that no moment of
a starting service is unprotected."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgecam.runtime.prefetch import Prefetcher


class Stopped(SystemExit):
    """The exit a stop signal raises wherever the main thread happens to be."""


# Set with every Stopped: where Python swallows it (a weakref callback, a __del__), the run loop
# still sees that a stop was asked for and does not start.
stop_requested = threading.Event()


def _terminated(signum: int, _frame: object) -> None:
    stop_requested.set()
    raise Stopped(0)


def _unraisable(info: sys.UnraisableHookArgs) -> None:
    """A Stopped that Python swallowed is no error to report: stop_requested carries it on."""
    if not isinstance(info.exc_value, Stopped):
        sys.__unraisablehook__(info)


def stop_cleanly_on_signals() -> None:
    """Until the run loop installs its own handlers (and after it restores these): SIGTERM and
    SIGINT end the process with exit 0 through every `finally` (nothing half-written stays
    behind), as they do in the loop, and a SIGHUP meant for a reload is not fatal."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
        signal.signal(signal.SIGINT, _terminated)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        sys.unraisablehook = _unraisable


def caused_by_stop(error: BaseException) -> bool:
    """Whether `error` was raised because a stop signal interrupted a library: onnxruntime's
    import, interrupted, turns the exit into ImportError("initialization failed")."""
    cause = error.__cause__ or error.__context__
    while cause is not None and not isinstance(cause, Stopped):
        cause = cause.__cause__ or cause.__context__
    return cause is not None


class StopFlag:
    """Set by SIGINT/SIGTERM, or by SIGHUP asking for a reload; wakes the loop if it waits."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reload = False
        self.prefetchers: list[Prefetcher] = []  # stopped with the loop: a waiting read returns

    def set(self, signum: int = 0, _frame: object = None) -> None:
        # A stop wins over a reload, whichever came first: a SIGTERM sent while a SIGHUP's run
        # was still shutting down must not be lost to the restart.
        self.reload = signum == signal.SIGHUP and (self.reload or not self.event.is_set())
        self.event.set()
        for prefetcher in self.prefetchers:
            prefetcher.stop()

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
