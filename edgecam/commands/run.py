"""`edgecam run`: classify a live source."""
from __future__ import annotations

import argparse
import logging

from edgecam import options
from edgecam.commands import settings_of
from edgecam.errors import UsageError

log = logging.getLogger(__name__)


def run_options() -> list[options.Option]:
    from edgecam import pipeline, sinks, sources

    return pipeline.OPTIONS + sources.OPTIONS + sinks.OPTIONS


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="classify a live source: window, logs, outputs")
    run.add_argument("--config", metavar="FILE", help="TOML file with any of these options as keys; "
                     "flags win over it")
    options.add_arguments(run, run_options())
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Run; on SIGHUP re-read the config and run again (a bad new config keeps the old one)."""
    from edgecam import pipeline
    from edgecam.cli import stop_requested

    settings = settings_of(args, run_options())
    while pipeline.run(settings, stopped=stop_requested).reload:
        try:
            settings = settings_of(args, run_options())
            log.info("SIGHUP: configuration re-read, restarting the run")
        except UsageError as e:
            log.error("SIGHUP: %s; keeping the previous configuration", e)
    return 0
