"""Sources opened from a URI: cameras (picam:N, usb:N, v4l2:///dev/videoN, csi://N, gst:PIPELINE),
network streams (rtsp://, http://), a video file, an image, a folder of images, and `demo`."""
from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

from edgecam.base.errors import SourceError, UsageError
from edgecam.base.imageio import is_image_file
from edgecam.base.options import Option, Settings, boolean, choice, number, select, text
from edgecam.base.redact import masked
from edgecam.sources.base import Orientation, Reconnect, Source


def frame_size(value: Any) -> tuple[int, int]:
    """'1280x720' → (1280, 720)."""
    found = re.fullmatch(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*", text(value))
    if not found or not all(16 <= int(n) <= 16384 for n in found.groups()):
        raise ValueError("must be WIDTHxHEIGHT, like 1280x720")
    return int(found.group(1)), int(found.group(2))


def fourcc(value: Any) -> str:
    code = text(value)
    if len(code) != 4 or not code.isascii() or not code.isprintable():
        raise ValueError("must be a four-character code, like MJPG or YUYV")
    return code


def rotation(value: Any) -> int:
    if isinstance(value, bool) or str(value).strip() not in ("0", "90", "180", "270"):
        raise ValueError("must be 0, 90, 180 or 270")
    return int(value)


OPTIONS = [
    Option("loop", boolean, False, "start a video file or image folder again at its end",
           switch=True),
    Option("camera_size", frame_size, (1280, 720), "size a camera is asked to capture at (picam, "
           "usb, csi)", metavar="WxH"),
    Option("camera_fps", number(1.0, 1000.0), 30.0, "frame rate a camera is asked for",
           metavar="FPS"),
    Option("rotation", rotation, 0, "turn camera pictures clockwise by 0, 90, 180 or 270 degrees",
           metavar="DEG"),
    Option("hflip", boolean, False, "mirror camera pictures left to right", switch=True),
    Option("vflip", boolean, False, "mirror camera pictures top to bottom", switch=True),
    Option("autofocus", choice("default", "continuous", "manual"), "default",
           "autofocus of cameras that have one: default, continuous or manual", metavar="MODE"),
    Option("fourcc", fourcc, "MJPG", "pixel format asked of a USB/V4L2 camera", metavar="CODE"),
    Option("read_timeout", number(0.1, 3600.0), 5.0, "seconds a camera or stream may deliver "
           "nothing before it counts as stopped and is reconnected", metavar="S"),
    Option("reconnect_timeout", number(0.0), 60.0, "seconds to keep reconnecting a stopped camera "
           "or stream before the run fails with exit status 1 (0: forever)", metavar="S"),
]

SCHEMES = ("demo, picam:N, usb:N, v4l2:///dev/videoN, csi://N, gst:PIPELINE, rtsp://..., "
           "http(s)://..., a video file, an image file or a folder of images")
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")


def open_source(uri: str, settings: Settings | None = None, input_size: int | None = None) -> Source:
    """The source a URI names, not yet opened (nothing is touched until open()). `settings`
    carries the source options (OPTIONS); `input_size` is the model's input side, for cameras
    that can deliver a stream at that size."""
    # Callers may pass settings of their own options only: the source options default.
    values = select(OPTIONS, settings)
    if uri == "demo" or uri.startswith("demo:"):
        from edgecam.sources.demo import DemoSource

        return DemoSource(uri)
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*):", uri)
    name = scheme.group(1).lower() if scheme else ""
    if name in ("picam", "usb", "v4l2", "csi", "gst") or name in STREAM_SCHEMES:
        return _live(uri, name, uri[len(name) + 1:], values, input_size)
    if uri.startswith("/dev/video") and _is_char_device(uri):
        return _live(uri, "v4l2", "//" + uri, values, input_size)
    if scheme and uri[len(name) + 1:].startswith("//") and name != "file":
        raise UsageError(f"source {_show(uri)}: unsupported scheme '{name}://' (supported: {SCHEMES})")
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name too long, or with a NUL byte
        exists = False
    if not exists:
        raise SourceError(f"source {_show(uri)} does not exist: give {SCHEMES}")
    from edgecam.sources.files import ImagesSource, VideoFileSource

    if path.is_dir() or is_image_file(path):
        return ImagesSource(path, bool(values.loop))
    return VideoFileSource(path, bool(values.loop))


def _live(uri: str, scheme: str, rest: str, settings: Settings, input_size: int | None) -> Source:
    """A camera or stream URI, checked for form here so that a typo fails before the model loads."""
    reconnect = Reconnect(settings.reconnect_timeout, settings.read_timeout)
    orientation = Orientation(settings.rotation, settings.hflip, settings.vflip)
    if scheme in STREAM_SCHEMES:
        if not re.match(r"//[^/?#\s]+", rest):
            raise UsageError(f"source {_show(uri)}: malformed URI, expected {scheme}://HOST[:PORT]/PATH")
        from edgecam.sources.capture import StreamSource

        return StreamSource(uri, reconnect, orientation)
    if scheme == "gst":
        if not rest.strip():
            raise UsageError(f"source {_show(uri)}: malformed URI, expected gst:PIPELINE, like "
                             "gst:v4l2src ! videoconvert ! appsink")
        from edgecam.sources.capture import GStreamerSource

        return GStreamerSource(uri, rest, reconnect, orientation)
    if scheme == "v4l2":
        if not re.fullmatch(r"///dev/\S+", rest):
            raise UsageError(f"source {_show(uri)}: malformed URI, expected v4l2:///dev/videoN")
        device = rest[2:]
    else:
        forms = {"picam": "picam:N", "usb": "usb:N", "csi": "csi://N"}
        found = re.fullmatch(r"//(\d{1,3})" if scheme == "csi" else r"(\d{1,3})", rest)
        if not found:
            raise UsageError(f"source {_show(uri)}: malformed URI, expected {forms[scheme]}, "
                             f"like {forms[scheme].replace('N', '0')}")
        number = int(found.group(1))
        if scheme == "picam":
            from edgecam.sources.picamera import PiCameraSource

            return PiCameraSource(uri, number, settings.camera_size, settings.camera_fps,
                                  settings.autofocus, input_size, reconnect, orientation)
        if scheme == "csi":
            from edgecam.sources.capture import GStreamerSource, csi_pipeline, flip_method

            # nvvidconv turns the picture on the VIC: nothing is left to the CPU.
            pipeline = csi_pipeline(number, settings.camera_size, settings.camera_fps,
                                    flip_method(orientation))
            return GStreamerSource(uri, pipeline, reconnect)
        device = f"/dev/video{number}"
    from edgecam.sources.capture import V4L2Source

    return V4L2Source(uri, device, settings.camera_size, settings.camera_fps, settings.fourcc,
                      settings.autofocus, reconnect, orientation)


def _is_char_device(path: str) -> bool:
    try:
        return stat.S_ISCHR(Path(path).stat().st_mode)
    except (OSError, ValueError):
        return False


def _show(uri: str, limit: int = 80) -> str:
    """A URI as an error line quotes it: password masked, cut short, control characters escaped."""
    uri = masked(uri)
    shown = uri if len(uri) <= limit else uri[:limit - 3] + "..."
    return "'" + shown.encode("unicode_escape").decode("ascii") + "'"
