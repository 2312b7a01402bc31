"""Live sources OpenCV's VideoCapture opens: V4L2 cameras (USB webcams), GStreamer pipelines (Jetson
CSI cameras) and network streams through FFmpeg (RTSP, HTTP MJPEG, anything FFmpeg reads)."""
from __future__ import annotations

import logging
import math
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
from edgecam.base.quiet import quiet_opencv
from edgecam.base.redact import masked
from edgecam.sources.base import LiveSource, Orientation, Reconnect

log = logging.getLogger(__name__)

# The first OpenCV release whose backend takes open and read timeouts as VideoCapture parameters
# (FFmpeg: opencv#20549; GStreamer: opencv#22919). An older one lacks the overload (JetPack 4's
# 4.1.1) or refuses parameters its backend does not know, so it gets none, and waits its own way:
# 30 s for GStreamer.
TIMEOUTS_SINCE = {cv2.CAP_FFMPEG: (4, 5, 2), cv2.CAP_GSTREAMER: (4, 7, 0)}


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

    def _open_timed(self, address: str, api: int) -> cv2.VideoCapture:
        """A capture that gives up opening, and each read, after the read timeout: a device or
        server that hangs without closing then counts as stopped, like one that died."""
        if opencv_version() < TIMEOUTS_SINCE[api]:
            _no_timeouts(api)
            return cv2.VideoCapture(address, api)
        timeout = round(self.reconnect.read_timeout * 1000)
        return cv2.VideoCapture(address, api, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout,
                                               cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout])

    def _connect(self) -> None:
        quiet_opencv()
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
    720p and up at full frame rate only compressed, hence MJPG by default.

    A camera named by its node (usb:N) is reopened through the node's udev link: a webcam that
    re-enumerates while its old handle is still held comes back as another /dev/videoN."""

    def __init__(self, uri: str, device: str, size: tuple[int, int], fps: float, fourcc: str,
                 autofocus: str, reconnect: Reconnect, orientation: Orientation) -> None:
        from edgecam.sources.devices import stable_link

        super().__init__(uri, reconnect, orientation)
        self.size, self.fps, self.fourcc, self.autofocus = size, fps, fourcc, autofocus
        check_device(device, uri)
        self.device = stable_link(device) or device  # what every reconnect opens
        self.node = os.path.realpath(device)  # the node it named when last opened

    def _open_capture(self) -> cv2.VideoCapture:
        check_device(self.device, self.uri)
        node = os.path.realpath(self.device)
        if node != self.node:
            log.info("%s (%s) is %s now", self.uri, self.device, node)
            self.node = node
        v4l_select_timeout(self.reconnect.read_timeout)
        capture = cv2.VideoCapture(node, cv2.CAP_V4L2)
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
        log.info("%s (%s): %dx%d %s at %g fps", self.uri, self.node, *got, fourcc,
                 capture.get(cv2.CAP_PROP_FPS))
        return capture

    def _cannot_open(self) -> str:
        return (f"camera {self.node} ({self.uri}) cannot be opened: is another program using it? "
                "(fuser -v " + self.node + ")")


class GStreamerSource(CaptureSource):
    """A GStreamer pipeline that ends in an appsink delivering BGR frames. The appsink edgecam
    adds keeps only the newest frame and does not wait for the pipeline clock (sync=false): a live
    source is read as fast as it delivers, never behind it."""

    def __init__(self, uri: str, pipeline: str, reconnect: Reconnect,
                 orientation: Orientation = Orientation()) -> None:
        super().__init__(uri, reconnect, orientation)
        if not opencv_has_gstreamer():
            raise SourceError(
                f"source {uri} needs OpenCV built with GStreamer, and this one has none: on a Jetson "
                "use JetPack's OpenCV (create the venv with --system-site-packages and pip uninstall "
                "opencv-python)")
        self.pipeline = pipeline if "appsink" in pipeline else (
            f"{pipeline} ! videoconvert ! video/x-raw, format=BGR ! {APPSINK}")

    def _open_capture(self) -> cv2.VideoCapture:
        return self._open_timed(self.pipeline, cv2.CAP_GSTREAMER)

    def _cannot_open(self) -> str:
        return (f"GStreamer pipeline of {self.uri} does not start: run it with gst-launch-1.0 to see "
                f"why: {masked(self.pipeline)}")


APPSINK = "appsink drop=true max-buffers=1 sync=false"

# nvvidconv's flip-method for each mounting, mirrored left to right or not, then turned clockwise
# (0 none, 1 counterclockwise, 2 rotate-180, 3 clockwise, 4 horizontal-flip,
# 5 upper-right-diagonal, 6 vertical-flip, 7 upper-left-diagonal)
FLIP_METHOD = {(False, 0): 0, (False, 90): 3, (False, 180): 2, (False, 270): 1,
               (True, 0): 4, (True, 90): 5, (True, 180): 6, (True, 270): 7}


def flip_method(orientation: Orientation) -> int:
    """The mounting as nvvidconv's flip-method, so the Jetson's VIC turns the picture for free. A
    vertical mirror is a horizontal one turned by 180°."""
    turn = orientation.rotation + (180 if orientation.vflip else 0)
    return FLIP_METHOD[(orientation.hflip != orientation.vflip, turn % 360)]


def csi_pipeline(sensor: int, size: tuple[int, int], fps: float, flip: int = 0) -> str:
    """A Jetson CSI camera through the Argus ISP; nvvidconv turns the picture (`flip`, see
    flip_method) and leaves NVMM memory for the appsink."""
    width, height = size
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM), width={width}, "
            f"height={height}, framerate={round(fps)}/1 ! nvvidconv flip-method={flip} ! "
            f"video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! {APPSINK}")


class StreamSource(CaptureSource):
    """A network stream read by FFmpeg, with the read timeout for connecting and every read."""

    def _open_capture(self) -> cv2.VideoCapture:
        if self.uri.startswith(("rtsp://", "rtsps://")):
            # RTP over the RTSP TCP connection: UDP loses packets (whole frames) on Wi-Fi. A user's
            # own OPENCV_FFMPEG_CAPTURE_OPTIONS wins.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        return self._open_timed(self.address, cv2.CAP_FFMPEG)

    def _cannot_open(self) -> str:
        return (f"stream {self.uri} cannot be opened: check the address, that the camera or server "
                "is up and reachable, and any user:password in the URL")


@cache
def v4l_select_timeout(seconds: float) -> None:
    """OpenCV's V4L2 backend ignores read timeouts: it waits OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT
    seconds (10 by default, whole seconds, read at the first read of the process) for each frame.
    A user's own value wins."""
    os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", str(max(1, math.ceil(seconds))))


@cache
def opencv_version() -> tuple[int, ...]:
    """cv2.__version__ as numbers: '4.5.4-dev' → (4, 5, 4)."""
    return tuple(int(part) for part in re.findall(r"\d+", cv2.__version__)[:3])


@cache
def _no_timeouts(api: int) -> None:
    log.info("OpenCV %s cannot give its %s backend timeouts: a stalled camera or stream is noticed "
             "only when the backend gives up (OpenCV %s and later take them)", cv2.__version__,
             "GStreamer" if api == cv2.CAP_GSTREAMER else "FFmpeg",
             ".".join(map(str, TIMEOUTS_SINCE[api])))


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
