"""Log lines for journald and CI logs: one record is one line (a traceback too), and when stderr is
the journal each line starts with its syslog priority, so `journalctl -p warning` filters it."""
from __future__ import annotations

import logging
import os
import sys

# sd-daemon(3) prefixes: journald reads "<N>" at the start of a line as the priority.
PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
              logging.CRITICAL: 2}


def stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM=device:inode of the stream it connected; stderr may since have
    been redirected elsewhere, so compare rather than trust the variable alone."""
    try:
        device, inode = (int(part) for part in os.environ.get("JOURNAL_STREAM", "").split(":"))
        stat = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):  # unset, malformed, or no real stderr
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


class OneLineFormatter(logging.Formatter):
    """`LEVEL logger: message`, with every line of the message and of an exception's traceback
    joined by ' | ': a multi-line record would otherwise become many journal entries."""

    def __init__(self, journal: bool = False) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        lines = (line.strip() for line in super().format(record).splitlines())
        text = " | ".join(line for line in lines if line)
        if not self.journal:
            return text
        return f"<{PRIORITIES.get(record.levelno, 6)}>{text}"


def handler() -> logging.Handler:
    """A stderr handler with the one-line format, priority-prefixed when stderr is the journal."""
    result = logging.StreamHandler(sys.stderr)
    result.setFormatter(OneLineFormatter(journal=stderr_is_journal()))
    return result
