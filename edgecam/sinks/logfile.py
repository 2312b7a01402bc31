"""The headless log: JSON Lines or CSV, one record per line, rotated by size, and kept going
through a full disk, a read-only remount or a removed directory.

Lines are made and written on a thread of their own (the inference loop only hands the result
over), in batches every GATHER seconds, each line to the kernel in one write() as soon as it is
made, so a crash (even kill -9) loses at most the records of the last GATHER seconds, and never
leaves half a line. A line cut short by a full disk is cut off again (ftruncate), and
a file that ends mid-line (an earlier crash) gets a newline before the next record, so every
complete line stays a valid record. When writing fails, the log warns once, drops records while
inference goes on, and tries the file again every second."""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import os
import time
from pathlib import Path

from edgecam.base.errors import EdgecamError
from edgecam.base.frame import Frame, Prediction, Stamp
from edgecam.sinks.base import ThreadedSink, record
from edgecam.sinks.metrics import Metrics

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0  # how often a failed log tries its file again, and checks it was not replaced
# Records waiting for the writer thread; the inference loop waits when this many are (a disk that
# is slower than the network holds inference back rather than lose results).
QUEUE = 256
GATHER = 0.05  # seconds: the writer wakes 20 times a second, not once per frame


class JsonlFormat:
    header: str | None = None

    def line(self, rec: dict) -> str:
        return json.dumps(rec, ensure_ascii=False) + "\n"


class CsvFormat:
    """One row per record: the fixed fields, the event (if any), then label/score pairs."""

    def __init__(self, topk: int, cameras: bool = False) -> None:
        self.topk = topk
        self.cameras = cameras  # a camera column: the run has named cameras
        self.header = self._row(["time", *(["camera"] if cameras else []), "frame", "source", "model",
                                 "backend", "inference_ms", "fps", "event",
                                 *(f"{name}_{i}" for i in range(1, topk + 1) for name in ("label", "score"))])

    def line(self, rec: dict) -> str:
        top = [value for t in rec["top"][:self.topk] for value in (t["label"], t["score"])]
        top += [""] * (2 * self.topk - len(top))
        event = rec.get("event", {}).get("kind", "")
        camera = [rec.get("camera", "")] if self.cameras else []
        return self._row([rec["time"], *camera, rec["frame"], rec["source"], rec["model"], rec["backend"],
                          rec["inference_ms"], rec["fps"], event, *top])

    @staticmethod
    def _row(values: list) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(values)
        return out.getvalue()


class LogFile(ThreadedSink[tuple[Stamp, Prediction]]):
    def __init__(self, path: Path, fmt: JsonlFormat | CsvFormat, max_bytes: int | None = None,
                 keep: int = 5, metrics: Metrics | None = None) -> None:
        super().__init__("log writer", QUEUE, lossless=True, gather=GATHER)
        self.path = path
        self.format = fmt
        self.max_bytes = max_bytes
        self.keep = keep
        self.metrics = metrics
        self.lost = 0  # records not written while the file could not be
        self._fd: int | None = None
        self._size = 0
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._next_check = 0.0
        self._failing = False

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open_file()
        except OSError as e:
            raise EdgecamError(f"log file {self.path} cannot be written ({e.strerror}): choose "
                               "another --log path or fix its permissions") from None
        self._next_check = time.monotonic() + RETRY_SECONDS
        super().open()

    def item(self, frame: Frame, prediction: Prediction) -> tuple[Stamp, Prediction]:
        return frame.stamp, prediction  # the record is made on the writer's thread

    def handle(self, item: tuple[Stamp, Prediction]) -> None:
        """Append one record, rotating, reopening or counting it lost as the file needs."""
        data = self.format.line(record(*item)).encode("utf-8")
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RETRY_SECONDS
            self._check_file()
        if self._fd is None:
            self.lost += 1
            return
        try:
            if self.max_bytes and self._size and self._size + len(data) > self.max_bytes:
                self._rotate()
            self._append(data)
        except OSError as e:
            self._fail(e)
            self.lost += 1
            return
        if self._failing:
            self._failing = False
            log.info("log %s: writing again (%d records were lost)", self.path, self.lost)

    def close(self, reloading: bool = False) -> None:
        if self.handoff.stop():  # else it may still write: its descriptor must not be reused
            self._close_file()

    def _open_file(self) -> None:
        """Open (or create) the log for appending, write the CSV header into an empty file, and
        end a line an earlier crash left unfinished."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            stat = os.fstat(fd)
            self._fd, self._size, self._identity = fd, stat.st_size, (stat.st_dev, stat.st_ino)
            if self._size and os.pread(fd, 1, self._size - 1) != b"\n":
                self._append(b"\n")
            if not self._size and self.format.header:
                self._append(self.format.header.encode("utf-8"))
        except OSError:
            self._close_file()
            raise

    def _append(self, data: bytes) -> None:
        """Write `data` whole, or leave the file as it was (a partial line is cut off again)."""
        assert self._fd is not None
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError:
            if written:
                with contextlib.suppress(OSError):  # else the next open ends the unfinished line
                    os.ftruncate(self._fd, self._size)
            raise
        self._size += written

    def _rotate(self) -> None:
        """run.jsonl → run.jsonl.1 → … → run.jsonl.KEEP; the oldest is replaced."""
        self._close_file()
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            for i in range(self.keep - 1, 0, -1):
                older = self._rotated(i)
                if older.exists():
                    older.replace(self._rotated(i + 1))
            self.path.replace(self._rotated(1))
        self._open_file()

    def _rotated(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def _check_file(self) -> None:
        """Reopen when the log was removed, renamed (logrotate) or could not be written."""
        if self._fd is not None:
            try:
                stat = self.path.stat()
                if (stat.st_dev, stat.st_ino) == self._identity:
                    return
            except OSError:
                pass
            self._close_file()
        try:
            self._open_file()
        except OSError as e:
            self._fail(e)

    def _fail(self, e: OSError) -> None:
        self._close_file()
        if self.metrics is not None:
            self.metrics.error("log")
        if not self._failing:
            self._failing = True
            reason = "the disk is full" if e.errno == errno.ENOSPC else e.strerror or str(e)
            log.warning("log %s cannot be written (%s): classification goes on, and logging "
                        "resumes as soon as the file can be written again", self.path, reason)

    def _close_file(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
