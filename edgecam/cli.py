"""The `edgecam` command: argparse subcommands, one module each in edgecam/commands."""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from edgecam import __version__, commands
from edgecam.base.errors import EdgecamError
from edgecam.runtime import signals

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


def main(argv: Sequence[str] | None = None) -> int:
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    if "run" in words[:2]:  # before the heavy imports, so that no moment is unprotected
        signals.stop_cleanly_on_signals()
    try:
        args = parser().parse_args(argv)
        setup_logging(args.log_level)
        return args.func(args)
    except EdgecamError as e:
        print(f"edgecam: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except ImportError as e:  # a device install (no build extra) asked for the torch side
        from edgecam.base import extras

        if signals.caused_by_stop(e):  # a stop signal interrupted an import: a clean end
            return 0
        if not extras.is_build_module(e):
            raise
        print(f"edgecam: error: {extras.missing('edgecam ' + ' '.join(words[:2]), e.name)}", file=sys.stderr)
        return 1
    except Exception as e:
        if signals.caused_by_stop(e):
            return 0
        raise
