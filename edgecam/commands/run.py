"""`edgecam run`: classify a live source."""
from __future__ import annotations

import argparse
import logging

from edgecam.base import options
from edgecam.base.errors import UsageError
from edgecam.commands import settings_of
from edgecam.runtime import pipeline
from edgecam.runtime.pipeline import run_options
from edgecam.runtime.signals import stop_requested

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="classify a live source: window, logs, outputs")
    run.add_argument("--config", metavar="FILE", help="TOML file with any of these options as keys; "
                     "flags win over it")
    options.add_arguments(run, run_options())
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Run; on SIGHUP re-read the config and run again (a bad new config keeps the old one)."""
    settings = settings_of(args, run_options())
    while pipeline.run(settings, stopped=stop_requested).reload:
        try:
            settings = settings_of(args, run_options())
            log.info("SIGHUP: configuration re-read, restarting the run")
        except UsageError as e:
            log.error("SIGHUP: %s; keeping the previous configuration", e)
    return 0
