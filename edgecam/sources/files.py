"""Recorded sources: a video file, one image, a folder of images. They are read on demand, every
frame in order (nothing is dropped: a file can wait for the network, a camera cannot)."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2

from edgecam.base.errors import SourceError
from edgecam.base.frame import Frame
from edgecam.base.imageio import is_image_file, read_rgb
from edgecam.base.quiet import quiet_opencv
from edgecam.sources.base import Source

log = logging.getLogger(__name__)


class VideoFileSource(Source):
    def __init__(self, path: Path, loop: bool = False) -> None:
        self.path = path
        self.uri = str(path)
        self.loop = loop
        self._capture: cv2.VideoCapture | None = None
        self._index = 0

    def open(self) -> None:
        quiet_opencv()  # a file that breaks gets edgecam's one line, not FFmpeg's messages
        capture = cv2.VideoCapture(str(self.path))
        ok, _ = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            capture.release()
            raise SourceError(f"video file {self.path} cannot be decoded: check that it is a video "
                              "(mp4, mkv, avi, ...) that OpenCV's FFmpeg can read")
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._capture = capture

    def read(self) -> Frame | None:
        assert self._capture is not None, "open() first"
        ok, bgr = self._capture.read()
        if not ok and self.loop and self._index > 0:
            # Again from the file as it is now: one replaced while running is picked up, one that
            # became unreadable (truncated, overwritten) ends the run with one line.
            self.close()
            self.open()
            assert self._capture is not None
            ok, bgr = self._capture.read()
        if not ok:
            return None
        frame = Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self._index, time.time(), self.uri)
        self._index += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImagesSource(Source):
    """One image, or every image of a folder in name order; unreadable files are skipped with a
    warning (a folder) or refused (a single image). A looping folder is listed again at each pass:
    images added while running join, removed ones leave, and a folder left empty ends the run."""

    def __init__(self, path: Path, loop: bool = False) -> None:
        self.path = path
        self.uri = str(path)
        self.loop = loop
        self.skipped = 0
        self._folder = False
        self._files: list[Path] = []
        self._position = 0
        self._index = 0

    def open(self) -> None:
        self._folder = self.path.is_dir()
        if self._folder:
            self._files = self._images()
        else:
            read_rgb(self.path)  # refuse an unreadable single image up front
            self._files = [self.path]

    def _images(self) -> list[Path]:
        try:
            files = sorted(p for p in self.path.iterdir() if p.is_file() and is_image_file(p))
        except OSError as e:
            raise SourceError(f"folder {self.path} cannot be read: {e.strerror or e}") from None
        if not files:
            raise SourceError(f"folder {self.path} has no images (.jpg, .png, ...)")
        return files

    def read(self) -> Frame | None:
        while True:
            if self._position >= len(self._files):
                if not self.loop or self.skipped >= len(self._files):
                    return None
                if self._folder:
                    self._files = self._images()
                self._position, self.skipped = 0, 0
            path = self._files[self._position]
            self._position += 1
            try:
                image = read_rgb(path)
            except SourceError as e:
                self.skipped += 1
                log.warning("skipping %s", e)
                continue
            frame = Frame(image, self._index, time.time(), str(path))
            self._index += 1
            return frame

    def close(self) -> None:
        self._files = []
