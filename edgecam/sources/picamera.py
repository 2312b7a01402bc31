"""Raspberry Pi camera modules through picamera2 (libcamera). The ISP delivers two streams of each
frame: `main` at the capture size for display and logs, and `lores` already scaled to the model's
input, so the Pi's CPU never resizes a full frame.

picamera2 and libcamera come with Raspberry Pi OS (apt python3-picamera2) and cannot be installed
from PyPI, so they are imported only here, only when a picam: source opens."""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import replace

import cv2
import numpy as np

from edgecam.base.errors import SourceError
from edgecam.base.frame import Frame
from edgecam.sources.base import LiveSource, Orientation, Reconnect

log = logging.getLogger(__name__)

INSTALL = ("on Raspberry Pi OS: sudo apt install python3-picamera2, and create the venv with "
           "python3 -m venv --system-site-packages")
AF_MODE = {"manual": 0, "continuous": 2}  # libcamera controls.AfModeEnum


def lores_size(main: tuple[int, int], side: int) -> tuple[int, int]:
    """The main stream scaled so that its short side is the model input: the ISP keeps the aspect
    ratio (a square lores would squash the picture) and preprocessing centre-crops it. Even sides,
    as YUV420 needs."""
    width, height = main
    scale = side / min(width, height)
    return (max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2))


class PiCameraSource(LiveSource):
    def __init__(self, uri: str, number: int, size: tuple[int, int], fps: float, autofocus: str,
                 input_size: int | None, reconnect: Reconnect, orientation: Orientation) -> None:
        # The ISP mirrors and turns by 180° for free; only a quarter turn is left to the CPU.
        half_turn = orientation.rotation in (180, 270)
        self.transform = (orientation.hflip != half_turn, orientation.vflip != half_turn)
        super().__init__(uri, reconnect, Orientation(rotation=orientation.rotation % 180))
        if importlib.util.find_spec("picamera2") is None:
            raise SourceError(f"source {uri} needs picamera2, which is not installed: {INSTALL}")
        self.number, self.size, self.fps, self.autofocus = number, size, fps, autofocus
        self.lores = lores_size(size, input_size) if input_size else None
        self._camera = None
        self._model_image: np.ndarray | None = None

    def _connect(self) -> None:
        from picamera2 import Picamera2

        found = Picamera2.global_camera_info()
        if self.number >= len(found):
            from edgecam.sources.devices import describe_cameras

            raise SourceError(f"no Pi camera {self.number} ({self.uri}): {describe_cameras()}")
        camera = Picamera2(self.number)
        try:
            camera.configure(self._configuration(camera))
            camera.start()
        except Exception as e:  # noqa: BLE001 - libcamera's errors have no common type
            camera.close()
            raise SourceError(f"camera {self.uri} cannot be started: {e}") from None
        self._camera = camera

    def _configuration(self, camera) -> dict:
        """BGR888 is libcamera's name for R, G, B bytes in memory: numpy gets RGB directly."""
        controls: dict = {"FrameRate": self.fps}
        if self.autofocus != "default":
            if "AfMode" in camera.camera_controls:
                controls["AfMode"] = AF_MODE[self.autofocus]
            else:
                log.info("%s has no autofocus; --autofocus %s ignored", self.uri, self.autofocus)
        streams: dict = {"main": {"size": self.size, "format": "BGR888"}}
        if self.lores:
            streams["lores"] = {"size": self.lores, "format": "YUV420"}  # every Pi's ISP has it
        if any(self.transform):
            from libcamera import (
                Transform,  # picamera2 depends on it: present whenever it is
            )

            streams["transform"] = Transform(hflip=int(self.transform[0]),
                                             vflip=int(self.transform[1]))
        return camera.create_video_configuration(controls=controls, **streams)

    def _grab(self) -> np.ndarray | None:
        assert self._camera is not None, "connect first"
        if not self.lores:
            return self._camera.capture_array("main")
        # Both streams of one request: two capture_array calls would take two different frames.
        (main, yuv), _ = self._camera.capture_arrays(["main", "lores"])
        width, height = self.lores
        # YUV420 rows are `stride` wide: convert the whole planes, then cut the padding off.
        self._model_image = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)[:height, :width]
        return main

    def _frame(self, image: np.ndarray) -> Frame:
        frame = super()._frame(image)
        if self._model_image is None:
            return frame
        return replace(frame, model_image=self._model_image)

    def _finish(self, frame: Frame) -> Frame:
        frame = super()._finish(frame)
        if frame.model_image is not None and self.orientation:
            return replace(frame, model_image=self.orientation.apply(frame.model_image))
        return frame

    def _disconnect(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()
