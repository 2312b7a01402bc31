"""Live sources OpenCV's VideoCapture opens: V4L2 cameras (USB webcams), GStreamer pipelines (Jetson
CSI cameras) and network streams through FFmpeg (RTSP, HTTP MJPEG, anything FFmpeg reads)."""
from __future__ import annotations

import logging
import os
import re
from abc import abstractmethod
from dataclasses import replace
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from edgecam.base.errors import SourceError
from edgecam.base.frame import Frame
from edgecam.base.redact import masked
from edgecam.sources.base import LiveSource, Orientation, Reconnect

log = logging.getLogger(__name__)


class CaptureSource(LiveSource):
    """A VideoCapture owned by the capture thread; frames are converted from OpenCV's BGR to RGB
    only when read, so dropped frames cost nothing but their decoding."""

    def __init__(self, uri: str, reconnect: Reconnect, orientation: Orientation = Orientation()) -> None:
        super().__init__(uri, reconnect, orientation)
        self._video: cv2.VideoCapture | None = None

    @abstractmethod
    def _open_capture(self) -> cv2.VideoCapture: ...

    @abstractmethod
    def _cannot_open(self) -> str:
        """The one line for a capture OpenCV did not open."""

    def _connect(self) -> None:
        quiet_backends()
        capture = self._open_capture()
        if not capture.isOpened():
            capture.release()
            raise SourceError(self._cannot_open())
        self._video = capture

    def _grab(self) -> np.ndarray | None:
        assert self._video is not None, "connect first"
        ok, bgr = self._video.read()
        return bgr if ok and bgr is not None and bgr.size else None

    def _finish(self, frame: Frame) -> Frame:
        return super()._finish(replace(frame, image=cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB)))

    def _disconnect(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None


class V4L2Source(CaptureSource):
    """A V4L2 camera: a USB webcam, or any /dev/video* capture device. USB 2 webcams deliver
    720p and up at full frame rate only compressed, hence MJPG by default."""

    def __init__(self, uri: str, device: str, size: tuple[int, int], fps: float, fourcc: str,
                 autofocus: str, reconnect: Reconnect, orientation: Orientation) -> None:
        super().__init__(uri, reconnect, orientation)
        self.device, self.size, self.fps, self.fourcc, self.autofocus = (
            device, size, fps, fourcc, autofocus)
        check_device(device, uri)

    def _open_capture(self) -> cv2.VideoCapture:
        check_device(self.device, self.uri)
        capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not capture.isOpened():
            return capture
        # The format first: which sizes and rates a camera offers depends on it.
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        capture.set(cv2.CAP_PROP_FPS, self.fps)
        if self.autofocus != "default":
            capture.set(cv2.CAP_PROP_AUTOFOCUS, 1 if self.autofocus == "continuous" else 0)
        got = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
        log.info("%s (%s): %dx%d %s at %g fps", self.uri, self.device, *got, fourcc,
                 capture.get(cv2.CAP_PROP_FPS))
        return capture

    def _cannot_open(self) -> str:
        return (f"camera {self.device} ({self.uri}) cannot be opened: is another program using it? "
                "(fuser -v " + self.device + ")")


class GStreamerSource(CaptureSource):
    """A GStreamer pipeline that ends in an appsink delivering BGR frames."""

    def __init__(self, uri: str, pipeline: str, reconnect: Reconnect,
                 orientation: Orientation = Orientation()) -> None:
        super().__init__(uri, reconnect, orientation)
        if not opencv_has_gstreamer():
            raise SourceError(
                f"source {uri} needs OpenCV built with GStreamer, and this one has none: on a Jetson "
                "use JetPack's OpenCV (create the venv with --system-site-packages and pip uninstall "
                "opencv-python)")
        self.pipeline = pipeline if "appsink" in pipeline else (
            f"{pipeline} ! videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1")

    def _open_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(self.pipeline, cv2.CAP_GSTREAMER)

    def _cannot_open(self) -> str:
        return (f"GStreamer pipeline of {self.uri} does not start: run it with gst-launch-1.0 to see "
                f"why: {masked(self.pipeline)}")


def csi_pipeline(sensor: int, size: tuple[int, int], fps: float) -> str:
    """A Jetson CSI camera through the Argus ISP; nvvidconv leaves NVMM memory for the appsink."""
    width, height = size
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, "
            f"height={height}, framerate={round(fps)}/1 ! nvvidconv ! video/x-raw, format=BGRx ! "
            "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1")


class StreamSource(CaptureSource):
    """A network stream read by FFmpeg. FFmpeg is given the read timeout for connecting and for
    every read, so a server that hangs without closing counts as stopped, like one that died."""

    def _open_capture(self) -> cv2.VideoCapture:
        if self.uri.startswith(("rtsp://", "rtsps://")):
            # RTP over the RTSP TCP connection: UDP loses packets (whole frames) on Wi-Fi. A user's
            # own OPENCV_FFMPEG_CAPTURE_OPTIONS wins.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        timeout = round(self.reconnect.read_timeout * 1000)
        return cv2.VideoCapture(self.address, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout])

    def _cannot_open(self) -> str:
        return (f"stream {self.uri} cannot be opened: check the address, that the camera or server "
                "is up and reachable, and any user:password in the URL")


@cache
def quiet_backends() -> None:
    """Keep OpenCV's and FFmpeg's own messages off stderr: every failure they report reaches the
    user as one edgecam line, and a reconnect loop would print theirs at every attempt. A user's
    OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL win (FFmpeg reads its own once, at first use)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


@cache
def opencv_has_gstreamer() -> bool:
    found = re.search(r"^\s*GStreamer:\s*(\w+)", cv2.getBuildInformation(), re.MULTILINE)
    return bool(found) and found.group(1).upper() == "YES"


def check_device(device: str, uri: str) -> None:
    """One clear line for the two ways a camera node fails before OpenCV sees it."""
    from edgecam.sources.devices import describe_cameras

    path = Path(device)
    if not path.exists():
        raise SourceError(f"no camera {device} ({uri}): {describe_cameras()}")
    if not os.access(path, os.R_OK | os.W_OK):
        raise SourceError(f"permission denied on {device}: add your user to the video group "
                          "(sudo usermod -aG video $USER, then log in again)")
