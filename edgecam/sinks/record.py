"""--record: the annotated stream (drawn as the window and the preview draw it) written to a video
file by OpenCV's VideoWriter on a thread of its own. Inference never waits for it: when the writer
falls CAPACITY frames behind, the oldest waiting frame is dropped and counted.

- Container by suffix (SUFFIXES). The frame rate written is that of the classified frames,
  measured from the capture times of the first ones (up to MEASURE_FRAMES, or MEASURE_SECONDS),
  and kept for the whole run: the video plays at the speed it was seen as long as the writer keeps
  up (stretches where it dropped frames play faster).
- A file is written as NAME.part.SUFFIX and renamed to NAME.SUFFIX once finished (an MP4 gets its
  index only then), so every file under its final name plays. With `segment` seconds, a new file
  starts each time, named STEM_YYYYmmdd-HHMMSS.SUFFIX (UTC, its first frame's time), and with
  `max_bytes` the oldest are removed while the files (the one being written included) exceed it;
  the newest is always kept.
- A disk with less than `reserve` bytes free: the file is finished while there is still room for
  its index, recording pauses with one warning while classification goes on, and resumes in a new
  (timestamped) file once there is room. A write that fails all the same leaves a broken file: it
  is removed, likewise with one warning.
- With several cameras, each has files of its own, STEM_CAMERA.SUFFIX (and
  STEM_CAMERA_YYYYmmdd-HHMMSS.SUFFIX), its own rate and its own segments; `max_bytes` bounds them
  all together."""
from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edgecam.base.errors import EdgecamError, UsageError
from edgecam.base.frame import Frame, Prediction
from edgecam.base.quiet import quiet_opencv
from edgecam.sinks.base import ThreadedSink
from edgecam.sinks.metrics import Metrics
from edgecam.sinks.overlay import display_image, draw_overlay

log = logging.getLogger(__name__)

# The codec each container gets: MPEG-4 Part 2 (what every OpenCV build with FFmpeg encodes; H.264
# is not in the pip wheels), MJPG in AVI (larger files, plays everywhere).
SUFFIXES = {".mp4": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
CAPACITY = 4  # frames waiting for the writer before the oldest is dropped
MEASURE_FRAMES, MEASURE_SECONDS = 10, 1.0
MIN_RATE, MAX_RATE = 1.0, 120.0  # frames per second a file is given
DISK_RESERVE = 16 << 20  # bytes kept free: OpenCV writes 256 KiB at a time, and a finished file its index
CHECK_SECONDS = 1.0  # how often the free space and the file's size are looked at
RETRY_SECONDS = 5.0  # how long recording pauses after it could not go on


# A measured rate this close to a camera's usual one is that one (a 30 fps camera measures 30.4).
USUAL_RATES, SNAP = (10.0, 15.0, 20.0, 24.0, 25.0, 30.0, 50.0, 60.0), 0.05


def frame_rate(times: list[float]) -> float:
    """Frames per second of capture times `times`, within MIN_RATE and MAX_RATE."""
    if len(times) < 2:
        return MIN_RATE
    span = times[-1] - times[0]
    rate = min(MAX_RATE, max(MIN_RATE, (len(times) - 1) / span if span > 0 else math.inf))
    usual = min(USUAL_RATES, key=lambda r: abs(r - rate))
    return usual if abs(usual - rate) <= SNAP * usual else round(rate, 1)


@dataclass
class Track:
    """One camera's recording: its rate once measured, and the file it is writing."""

    stem: str  # of its file names
    rate: float | None = None
    pending: list[tuple[float, np.ndarray]] = field(default_factory=list)  # while measuring
    writer: cv2.VideoWriter | None = None
    part: Path = Path()  # the file being written, and the name it gets when finished
    final: Path = Path()
    size: tuple[int, int] = (0, 0)
    started: float = 0.0  # capture time of the file's first frame
    opened: int = 0  # files opened in this run
    part_bytes: int = 0  # the size of the file being written, at the last check


class Recorder(ThreadedSink[tuple[Frame, Prediction]]):
    def __init__(self, path: Path, segment: float | None = None, max_bytes: int | None = None,
                 metrics: Metrics | None = None, reserve: int = DISK_RESERVE,
                 cameras: Sequence[str] = ("",)) -> None:
        super().__init__("recorder", CAPACITY)
        fourcc = SUFFIXES.get(path.suffix.lower())
        if fourcc is None:
            raise UsageError(f"--record {path}: a video file needs one of the suffixes "
                             f"{', '.join(SUFFIXES)} (it picks the container)")
        if max_bytes is not None and segment is None:
            raise UsageError("--record-max-bytes removes the oldest --record-segment files: give "
                             "--record-segment S too")
        self.path, self.segment, self.max_bytes = path, segment, max_bytes
        self.metrics = metrics
        self.reserve = reserve
        self.cameras = list(cameras)
        self.fourcc = cv2.VideoWriter.fourcc(*fourcc)
        self.written = 0  # frames handed to the encoder
        self.unrecorded = 0  # frames not written while recording paused
        self.tracks: dict[str, Track] = {}
        self.files: deque[tuple[Path, int]] = deque()  # finished segments, oldest first, with sizes
        self._next_check = 0.0
        self._paused_until = 0.0
        self._failing = False

    @property
    def dropped(self) -> int:
        """Frames not recorded: the writer was behind, or recording paused."""
        return self.handoff.skipped + self.unrecorded

    def open(self) -> None:
        quiet_opencv()  # a failed write is edgecam's one warning, not OpenCV's line per frame
        folder = self.path.parent
        if not folder.is_dir():
            raise EdgecamError(f"--record {self.path}: the folder {folder} does not exist: create it "
                               "(or mount the disk it is on) or choose another path")
        try:
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as e:
            raise EdgecamError(f"--record {self.path}: the folder {folder} cannot be written "
                               f"({e.strerror}): fix its permissions or choose another path") from None
        if not self._encodes(folder):
            raise EdgecamError(f"--record {self.path}: this OpenCV cannot write {self.path.suffix} "
                               "video (built without FFmpeg?): try another of "
                               f"{', '.join(SUFFIXES)}")
        if self.segment is not None:
            self._find_segments()
        if self.metrics is not None:
            self.metrics.counters["edgecam_record_frames_total"] = (
                "frames written to the --record video", lambda: self.written)
            self.metrics.counters["edgecam_record_dropped_frames_total"] = (
                "frames not recorded: the writer was behind, or the disk full", lambda: self.dropped)
        log.info("recording to %s", self.path)
        super().open()

    def _encodes(self, folder: Path) -> bool:
        probe = folder / f".{self.path.stem}.probe{self.path.suffix}"
        writer = cv2.VideoWriter(str(probe), self.fourcc, MIN_RATE, (64, 64))
        try:
            return writer.isOpened()
        finally:
            writer.release()
            probe.unlink(missing_ok=True)

    def _find_segments(self) -> None:
        """The segments (and unfinished files) an earlier run left, oldest first."""
        name = re.compile(re.escape(self.path.stem) + r"(?:_.+)?_(\d{8}-\d{6})(?:\.part)?"
                          + re.escape(self.path.suffix))
        found = [(m.group(1), p) for p in self.path.parent.iterdir() if (m := name.fullmatch(p.name))]
        for _, segment in sorted(found):
            with contextlib.suppress(OSError):
                self.files.append((segment, segment.stat().st_size))
        self._prune()

    def _track(self, camera: str) -> Track:
        if camera not in self.tracks:
            alone = self.cameras == [camera]
            stem = self.path.stem if alone else f"{self.path.stem}_{re.sub(r'[^A-Za-z0-9.-]+', '-', camera)}"
            self.tracks[camera] = Track(stem)
        return self.tracks[camera]

    def handle(self, item: tuple[Frame, Prediction]) -> None:
        frame, prediction = item
        track = self._track(frame.camera)
        image = draw_overlay(display_image(frame.image), prediction)
        if track.rate is not None:
            self._record(track, frame.timestamp, image)
            return
        track.pending.append((frame.timestamp, image))
        if (len(track.pending) >= MEASURE_FRAMES
                or frame.timestamp - track.pending[0][0] >= MEASURE_SECONDS):
            self._flush_pending(track)

    def _flush_pending(self, track: Track) -> None:
        track.rate = frame_rate([t for t, _ in track.pending])
        for timestamp, image in track.pending:
            self._record(track, timestamp, image)
        track.pending.clear()

    def _record(self, track: Track, timestamp: float, image: np.ndarray) -> None:
        if (track.writer is not None and self.segment
                and not 0 <= timestamp - track.started < self.segment):
            self._finish(track)  # also when the clock was set back
        if time.monotonic() >= self._next_check and not self._check():
            for writing in self._writing():
                self._finish(writing)
        if track.writer is None and not self._start(track, timestamp, image):
            self.unrecorded += 1
            return
        assert track.writer is not None
        if image.shape[1::-1] != track.size:
            image = cv2.resize(image, track.size, interpolation=cv2.INTER_AREA)
        if track.writer.write(image) is False:  # OpenCV ≥ 5 tells; 4.x returns None
            self._fail(track, "writing it failed (the disk is full, or it went away)")
            self.unrecorded += 1
            return
        self.written += 1

    def _writing(self) -> list[Track]:
        return [track for track in self.tracks.values() if track.writer is not None]

    def _check(self) -> bool:
        """Once a second: prune to the size limit; False when the disk is nearly full."""
        self._next_check = time.monotonic() + CHECK_SECONDS
        for track in self._writing():
            with contextlib.suppress(OSError):
                track.part_bytes = track.part.stat().st_size
        self._prune()
        return self._room()

    def _room(self) -> bool:
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError as e:
            self._pause(f"its folder cannot be read ({e.strerror})")
            return False
        if free < self.reserve:
            self._pause(f"the disk has {free / 2**20:.1f} MiB free, less than the "
                        f"{self.reserve / 2**20:.1f} MiB it keeps free")
            return False
        return True

    def _start(self, track: Track, timestamp: float, image: np.ndarray) -> bool:
        """Open the track's next file; False while recording is paused, or when it cannot be."""
        if time.monotonic() < self._paused_until or not self._room():
            return False
        if self.segment is None and track.opened == 0:
            final = self.path.with_name(track.stem + self.path.suffix)
        else:
            stamp = datetime.fromtimestamp(timestamp, UTC).strftime("%Y%m%d-%H%M%S")
            final = self.path.with_name(f"{track.stem}_{stamp}{self.path.suffix}")
        part = final.with_name(f"{final.stem}.part{final.suffix}")
        height, width = image.shape[:2]
        size = (width - width % 2, height - height % 2)  # MPEG-4 wants even sides
        assert track.rate is not None
        writer = cv2.VideoWriter(str(part), self.fourcc, track.rate, size)
        if not writer.isOpened():
            writer.release()
            part.unlink(missing_ok=True)
            self._pause(f"{part.name} cannot be opened")
            return False
        track.writer, track.part, track.final, track.size = writer, part, final, size
        track.started, track.part_bytes = timestamp, 0
        track.opened += 1
        if self._failing:
            self._failing = False
            log.info("recording again, to %s", final)
        return True

    def _finish(self, track: Track) -> None:
        """Finalise the track's file and give it its name."""
        assert track.writer is not None
        track.writer.release()
        track.writer = None
        track.part_bytes = 0
        try:
            size = track.part.stat().st_size
            os.replace(track.part, track.final)
        except OSError as e:
            self._pause(f"{track.part.name} cannot be finished ({e.strerror})")
            return
        if self.segment is not None:
            self.files.append((track.final, size))
            self._prune()

    def _fail(self, track: Track, reason: str) -> None:
        """The track's file is broken: removed."""
        assert track.writer is not None
        track.writer.release()
        track.writer = None
        track.part.unlink(missing_ok=True)
        self._pause(f"{track.part.name} is lost: {reason}")

    def _pause(self, reason: str) -> None:
        self._paused_until = time.monotonic() + RETRY_SECONDS
        if self.metrics is not None:
            self.metrics.error("record")
        if not self._failing:
            self._failing = True
            log.warning("--record: %s: classification goes on, and recording resumes in a new file "
                        "once it can", reason)

    def _prune(self) -> None:
        """Remove the oldest segments while all files exceed max_bytes, keeping the newest one."""
        if self.max_bytes is None:
            return
        writing = self._writing()
        keep = 0 if writing else 1
        total = sum(size for _, size in self.files) + sum(track.part_bytes for track in writing)
        while len(self.files) > keep and total > self.max_bytes:
            oldest, size = self.files.popleft()
            total -= size
            with contextlib.suppress(OSError):
                oldest.unlink()

    def close(self, reloading: bool = False) -> None:
        if not self.handoff.stop():
            return  # still writing: its files are left to it
        for track in self.tracks.values():
            if track.pending:
                self._flush_pending(track)
            if track.writer is not None:
                self._finish(track)
        files = sum(track.opened for track in self.tracks.values())
        log.info("recorded %d frames to %s (%d file%s), %d dropped", self.written,
                 self.path if files == 1 else self.path.parent, files, "" if files == 1 else "s",
                 self.dropped)
