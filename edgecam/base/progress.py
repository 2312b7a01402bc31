"""A progress bar on stderr for long steps (model builds, downloads, benchmarks).

On a terminal it redraws one line; elsewhere (journald, CI logs) it prints a line per tenth."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, title: str, total: float, unit: str = "", stream: TextIO | None = None) -> None:
        self.title = title
        self.total = max(total, 1e-9)
        self.unit = unit
        self.stream = stream or sys.stderr
        self.done = 0.0
        self.started = time.monotonic()
        self._tty = self.stream.isatty()
        self._last_tenth = -1
        self._draw()

    def advance(self, amount: float = 1.0, note: str = "") -> None:
        self.done = min(self.total, self.done + amount)
        self._draw(note)

    def finish(self, note: str = "done") -> None:
        self.done = self.total
        self._draw(note, final=True)

    def _draw(self, note: str = "", final: bool = False) -> None:
        fraction = self.done / self.total
        tenth = int(fraction * 10)
        if not self._tty and not final and tenth == self._last_tenth:
            return
        self._last_tenth = tenth
        width = 24
        filled = int(fraction * width)
        bar = "#" * filled + "." * (width - filled)
        elapsed = time.monotonic() - self.started
        line = f"{self.title} [{bar}] {fraction:4.0%} {elapsed:5.1f}s {note}".rstrip()
        if self._tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
