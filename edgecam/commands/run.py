"""`edgecam run`: classify a live source."""
from __future__ import annotations

import argparse

from edgecam import options
from edgecam.commands import settings_of


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
    from edgecam import pipeline

    pipeline.run(settings_of(args, run_options()))
    return 0
