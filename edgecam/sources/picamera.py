"""Raspberry Pi camera modules through picamera2 (libcamera). The ISP delivers two streams of each
frame: `main` at the capture size for display and logs, and `lores` already scaled to the model's
input, so the Pi's CPU never resizes a full frame.

picamera2 and libcamera come with Raspberry Pi OS (apt python3-picamera2) and cannot be installed
from PyPI, so they are imported only here, only when a picam: source is asked for."""
from __future__ import annotations

import logging
from dataclasses import replace

import cv2
import numpy as np

from edgecam.base.errors import SourceError, UsageError
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


def picamera2_class(uri: str) -> type:
    """picamera2's camera class. Its import fails without libcamera's Python bindings too, which
    only Raspberry Pi OS has: a pip-installed picamera2 in a venv without system site-packages."""
    try:
        from picamera2 import Picamera2
    except ImportError as e:
        if e.name == "picamera2":
            raise SourceError(f"source {uri} needs picamera2, which is not installed: {INSTALL}") from None
        raise SourceError(f"source {uri}: picamera2 cannot load ({e}): {INSTALL}") from None
    return Picamera2


class PiCameraSource(LiveSource):
    def __init__(self, uri: str, number: int, size: tuple[int, int], fps: float, autofocus: str,
                 input_size: int | None, reconnect: Reconnect, orientation: Orientation) -> None:
        # The ISP mirrors and turns by 180° for free; only a quarter turn is left to the CPU.
        half_turn = orientation.rotation in (180, 270)
        self.transform = (orientation.hflip != half_turn, orientation.vflip != half_turn)
        super().__init__(uri, reconnect, Orientation(rotation=orientation.rotation % 180))
        self.picamera2 = picamera2_class(uri)
        self.number, self.size, self.fps, self.autofocus = number, size, fps, autofocus
        self.lores = self._lores(input_size) if input_size else None
        self._lores_configured: tuple[int, int] | None = None  # the lores size libcamera configured
        self._camera = None
        self._model_image: np.ndarray | None = None

    def _lores(self, side: int) -> tuple[int, int]:
        """The lores size for a model input; the ISP only scales down, so main must be as large."""
        if side > min(self.size):
            width, height = lores_size(self.size, side)
            raise UsageError(f"source {self.uri}: the model's {side} px input is larger than the "
                             f"camera's {self.size[0]}x{self.size[1]} (--camera-size): use "
                             f"--camera-size {width}x{height} or larger")
        return lores_size(self.size, side)

    def _connect(self) -> None:
        found = self.picamera2.global_camera_info()
        if self.number >= len(found):
            from edgecam.sources.devices import describe_cameras

            raise SourceError(f"no Pi camera {self.number} ({self.uri}): {describe_cameras()}")
        if "/usb" in str(found[self.number].get("Id", "")):
            raise SourceError(f"{self.uri} is a USB camera ({found[self.number].get('Model', '?')}), "
                              "which libcamera lists too: open it as usb:N (edgecam sources shows N)")
        try:
            camera = self.picamera2(self.number)
        except RuntimeError as e:  # "Camera __init__ sequence did not complete."
            raise SourceError(f"Pi camera {self.number} ({self.uri}) cannot be opened ({e}): is "
                              "another program using it (rpicam-*, libcamera-*, another edgecam)? "
                              "Stop it and try again") from None
        try:
            camera.configure(self._configuration(camera))
            if self.lores:
                self._lores_configured = tuple(camera.camera_configuration()["lores"]["size"])
            camera.start()
        except Exception as e:  # noqa: BLE001 - libcamera's errors have no common type
            camera.close()
            raise SourceError(f"camera {self.uri} cannot be started: {e}") from None
        self._camera = camera

    def _configuration(self, camera) -> dict:
        """BGR888 is libcamera's name for R, G, B bytes in memory: numpy gets RGB directly. The
        colour space is asked for: by default picamera2 picks Rec709 for a main stream of 1280x720
        and up, and OpenCV decodes the lores YUV with BT.601 (SMPTE 170M's matrix and range)."""
        from libcamera import ColorSpace, Transform  # picamera2 depends on it: present whenever it is

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
            streams["transform"] = Transform(hflip=int(self.transform[0]), vflip=int(self.transform[1]))
        return camera.create_video_configuration(controls=controls, colour_space=ColorSpace.Smpte170m(),
                                                 **streams)

    def _grab(self) -> np.ndarray | None:
        assert self._camera is not None, "connect first"
        wait = self.reconnect.read_timeout  # picamera2 ≥ 0.3.20 raises TimeoutError after that
        try:
            if not self.lores:
                return self._camera.capture_array("main", wait=wait)
            # Both streams of one request: two capture_array calls would take two different frames.
            (main, yuv), _ = self._camera.capture_arrays(["main", "lores"], wait=wait)
        except TimeoutError:
            raise SourceError(f"no frame within {wait:g} s (--read-timeout)") from None
        width, height = self._lores_configured
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
                # A capture that timed out is still queued, and stop() would wait behind it.
                camera.cancel_all_and_flush()
                camera.stop()
            finally:
                camera.close()
