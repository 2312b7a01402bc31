"""Errors a user can cause. Each carries one line that names the thing and how to fix it; the CLI
prints it without a traceback and exits with `exit_code`."""
from __future__ import annotations


class EdgecamError(Exception):
    """A runtime failure the user can act on (exit 1)."""

    exit_code = 1

    def __str__(self) -> str:
        # One line, whatever the message was built from.
        return " ".join(super().__str__().split())


class UsageError(EdgecamError):
    """A bad flag, config key or value (exit 2)."""

    exit_code = 2


class SourceError(EdgecamError):
    """A source that cannot be opened or read."""


class ModelError(EdgecamError):
    """A model that is unknown, missing or corrupt."""
