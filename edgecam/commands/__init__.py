"""One module per subcommand group; each has `register(subparsers)`, and the CLI finds them all."""
from __future__ import annotations

import argparse

from edgecam.base import options


def model_options() -> list[options.Option]:
    """The options that choose and run a model, shared by every command that classifies."""
    from edgecam.runtime import pipeline

    keys = {"model", "labels", "backend", "topk", "threads"}
    return [o for o in pipeline.OPTIONS if o.key in keys]


def settings_of(args: argparse.Namespace, opts: list[options.Option]) -> options.Settings:
    """Defaults < the --config file < flags."""
    path = getattr(args, "config", None)
    config = options.read_config(path) if path else None
    return options.resolve(opts, vars(args), config, config_name=f"config {path}")
