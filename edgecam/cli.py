"""The `edgecam` command: argparse subcommands, one module each in edgecam/commands."""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import signal
import sys
import threading
from typing import Sequence

from edgecam import __version__, commands
from edgecam.errors import EdgecamError

LOG_LEVELS = ("debug", "info", "warning", "error")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="edgecam", description="Live image classification on a Raspberry Pi or Jetson CPU.")
    top.add_argument("--version", action="version", version=f"edgecam {__version__}")
    top.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                     help="how much to log to stderr (default: info)")
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        importlib.import_module(f"edgecam.commands.{module}").register(subparsers)
    return top


def setup_logging(level: str) -> None:
    """One line per message on stderr, no colour, priority-prefixed under journald."""
    from edgecam.service import journal

    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[journal.handler()])


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


def _caused_by_stop(error: BaseException) -> bool:
    """Whether `error` was raised because a stop signal interrupted a library: onnxruntime's
    import, interrupted, turns the exit into ImportError("initialization failed")."""
    cause = error.__cause__ or error.__context__
    while cause is not None and not isinstance(cause, Stopped):
        cause = cause.__cause__ or cause.__context__
    return cause is not None


def main(argv: Sequence[str] | None = None) -> int:
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    if "run" in words[:2]:  # before the heavy imports, so that no moment is unprotected
        stop_cleanly_on_signals()
    try:
        args = parser().parse_args(argv)
        setup_logging(args.log_level)
        return args.func(args)
    except EdgecamError as e:
        print(f"edgecam: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if _caused_by_stop(e):
            return 0
        raise
