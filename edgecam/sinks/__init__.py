"""Outputs: the window and the JSON Lines log."""
from __future__ import annotations

import os
from pathlib import Path

from edgecam.options import Option, boolean, optional, text
from edgecam.sinks.base import Sink

OPTIONS = [
    Option("headless", boolean, False, "no window, even when a display is available", switch=True),
    Option("log", optional(text), None, "append one JSON line per classified frame to this file",
           metavar="PATH"),
]


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def make_sinks(settings) -> list[Sink]:
    sinks: list[Sink] = []
    if settings.log:
        from edgecam.sinks.jsonl import JsonlLog

        sinks.append(JsonlLog(Path(settings.log)))
    if not settings.headless and has_display():
        from edgecam.sinks.window import Window

        sinks.append(Window())
    return sinks
