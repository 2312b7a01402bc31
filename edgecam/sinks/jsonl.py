"""The JSON Lines log: one object per classified frame, each line written whole and flushed, so a
crash can cost at most the line being written."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from edgecam.errors import EdgecamError
from edgecam.frame import Frame, Prediction
from edgecam.sinks.base import Sink, record


class JsonlLog(Sink):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8", buffering=1)
        except OSError as e:
            raise EdgecamError(f"log file {self.path} cannot be written ({e.strerror}): choose "
                               "another --log path or fix its permissions") from None

    def write(self, frame: Frame, prediction: Prediction) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record(frame, prediction), ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
