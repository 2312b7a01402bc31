"""A stand-in for an OpenCV build with GStreamer (a Jetson's, from JetPack): its build information
says so, and cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER[, params]) takes what that OpenCV
release's backend takes (cap_gstreamer.cpp): open and read timeouts since 4.7.0 (opencv#22919);
before that, parameters it does not know make open() bail out ("unsupported parameters in .open()");
and before 4.5.2 (JetPack 4's 4.1.1) there is no overload with parameters at all."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgecam.sources import capture


@dataclass
class GStreamerOpenCV:
    version: str = "4.10.0"
    pipelines: list[str] = field(default_factory=list)  # every pipeline opened
    params: list[dict[int, int]] = field(default_factory=list)  # and the parameters it was given

    def install(self, monkeypatch) -> None:
        """This build in place of cv2's; edgecam's cached answers about the build asked again."""
        build = re.sub(r"GStreamer:\s*NO", "GStreamer: YES (1.20.3)", cv2.getBuildInformation())
        monkeypatch.setattr(cv2, "getBuildInformation", lambda: build)
        monkeypatch.setattr(cv2, "__version__", self.version)
        monkeypatch.setattr(cv2, "VideoCapture", self.capture)
        forget()

    def _release(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.version.split(".")[:3])

    def capture(self, pipeline: str, api: int, *rest: object) -> Capture:
        assert api == cv2.CAP_GSTREAMER
        if rest and self._release() < (4, 5, 2):
            raise TypeError("VideoCapture() takes at most 2 arguments (3 given)")
        params = dict(zip(rest[0][::2], rest[0][1::2], strict=True)) if rest else {}
        known = {cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, cv2.CAP_PROP_READ_TIMEOUT_MSEC}
        opens = not params or (self._release() >= (4, 7, 0) and set(params) <= known)
        self.pipelines.append(pipeline)
        self.params.append(params)
        return Capture(opens)


class Capture:
    def __init__(self, opened: bool) -> None:
        self.opened = opened

    def isOpened(self) -> bool:  # OpenCV's name
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened:
            return False, None
        return True, np.zeros((240, 320, 3), np.uint8)

    def release(self) -> None:
        self.opened = False


def forget() -> None:
    """Make edgecam ask the build again (its answers are cached per process)."""
    capture.opencv_has_gstreamer.cache_clear()
    capture.opencv_version.cache_clear()
