"""Secrets out of every output. A camera or stream URL may carry a password
(`rtsp://user:secret@camera/stream`); every record, status, page, log line, error and MQTT payload
shows it as `rtsp://user:***@camera/stream`, and only the code that connects holds the original."""
from __future__ import annotations

import re

# scheme://user:password@ : the password is whatever lies between the first ':' after '//' and '@'
_PASSWORD = re.compile(r"(//[^/@:\s]*:)[^/@\s]*@")


def masked(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***."""
    return _PASSWORD.sub(r"\1***@", text)
