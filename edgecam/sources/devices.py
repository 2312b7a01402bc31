"""The cameras this machine has: V4L2 capture devices (asked through their ioctls, no OpenCV, no
streaming) and Raspberry Pi cameras (through picamera2, when it is installed), each with its URI.

Not every V4L2 capture node is a camera: the Pi's ISPs (bcm2835-isp on a Pi 4, pispbe on a Pi 5)
have capture nodes that only libcamera feeds, and the sensor receivers of Pi and Jetson CSI cameras
(unicam, rp1-cfe, tegra-video) deliver raw Bayer data that needs their ISP: picam:N and csi://N."""
from __future__ import annotations

import errno
import fcntl
import importlib.util
import logging
import os
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SYSFS = Path("/sys/class/video4linux")

# linux/videodev2.h
_CAPABILITY = struct.Struct("16s32s32sIII12x")  # struct v4l2_capability
_FMTDESC = struct.Struct("III32sII12x")  # struct v4l2_fmtdesc
VIDIOC_QUERYCAP = (2 << 30) | (_CAPABILITY.size << 16) | (ord("V") << 8) | 0
VIDIOC_ENUM_FMT = (3 << 30) | (_FMTDESC.size << 16) | (ord("V") << 8) | 2
CAP_VIDEO_CAPTURE, CAP_VIDEO_CAPTURE_MPLANE, CAP_DEVICE_CAPS = 0x1, 0x1000, 0x80000000
BUF_TYPE_VIDEO_CAPTURE = 1
# Raspberry Pi sensor receivers: their /dev/video nodes deliver raw Bayer data; libcamera (picam:N)
# is the way to use those cameras.
RAW_SENSOR_DRIVERS = ("unicam", "rp1-cfe")
ISP_DRIVERS = ("bcm2835-isp", "pispbe")  # the Pi 4's and Pi 5's ISPs: fed by libcamera, not cameras
JETSON_CSI_DRIVER = "tegra-video"  # a Jetson CSI sensor's raw node; Argus (csi://N) is its ISP
LINK_FOLDERS = ("by-id", "by-path")  # udev's names for a node that survive replugging, best first


@dataclass
class Camera:
    uri: str
    device: str
    name: str
    formats: list[str] = field(default_factory=list)
    note: str = ""
    link: str = ""  # the node's udev link (/dev/v4l/by-id/...): the same camera after a replug

    def as_dict(self) -> dict:
        return asdict(self)


def v4l2_cameras(sysfs: Path = SYSFS, dev: Path = Path("/dev")) -> list[Camera]:
    """Every V4L2 node that captures video from a camera, in device-number order; nodes that only
    encode, decode, carry metadata (a UVC camera has one of those too) or belong to an ISP are
    left out, and a sensor receiver is listed once, with the URI that reads it through its ISP."""
    nodes = sorted((p for p in sysfs.glob("video*") if re.fullmatch(r"video\d+", p.name)),
                   key=lambda p: int(p.name[5:])) if sysfs.is_dir() else []
    cameras, receivers, jetson = [], set(), 0
    for node in nodes:
        device = str(dev / node.name)
        name = _read_text(node / "name") or node.name
        camera = Camera(f"v4l2://{device}", device, name)
        try:
            driver, card, bus, caps = _query(device)
        except OSError as e:
            if e.errno == errno.EACCES:
                camera.note = "permission denied: add your user to the video group"
            elif e.errno != errno.ENOENT:
                camera.note = f"cannot be queried: {e.strerror}"
            else:
                continue
            cameras.append(camera)
            continue
        if not caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE) or driver in ISP_DRIVERS:
            continue
        if driver in RAW_SENSOR_DRIVERS or driver == JETSON_CSI_DRIVER:
            if (driver, bus) in receivers:  # a receiver's other channels: the same camera
                continue
            receivers.add((driver, bus))
        camera.name = card or name
        camera.formats = _formats(device)
        camera.link = stable_link(device) or ""
        if bus.startswith("usb-"):
            camera.uri = f"usb:{node.name[5:]}"
        if driver in RAW_SENSOR_DRIVERS:
            camera.note = "raw sensor node of a Pi camera: use picam:N"
        elif driver == JETSON_CSI_DRIVER:
            camera.uri = f"csi://{jetson}"  # Argus numbers its sensors in node order
            camera.note = "raw Bayer sensor node: csi:// reads it through the Argus ISP"
            jetson += 1
        cameras.append(camera)
    return cameras


def stable_link(device: str) -> str | None:
    """The udev link naming this V4L2 node (/dev/v4l/by-id/..., else /dev/v4l/by-path/...): a USB
    camera that re-enumerates comes back as another /dev/videoN, under the same link. None for a
    node without one, and for a device that is itself a link (already stable)."""
    path = Path(device)
    if path.is_symlink():
        return None
    target = path.resolve()
    for folder in LINK_FOLDERS:
        directory = path.parent / "v4l" / folder
        links = sorted(directory.iterdir()) if directory.is_dir() else []
        for link in links:
            if link.resolve() == target:
                return str(link)
    return None


def pi_cameras() -> list[Camera]:
    """Raspberry Pi cameras as libcamera sees them; none when picamera2 is not installed. USB
    webcams, which libcamera lists too (last), are left to usb:N: picam cannot scale them."""
    if importlib.util.find_spec("picamera2") is None:
        return []
    try:
        from picamera2 import Picamera2

        found = Picamera2.global_camera_info()
    except Exception as e:  # noqa: BLE001 - a broken libcamera must not hide other cameras
        log.warning("picamera2 is installed but cannot list cameras: %s", " ".join(str(e).split()))
        return []
    return [Camera(f"picam:{number}", str(info.get("Id", "")), str(info.get("Model", "camera")))
            for number, info in enumerate(found) if "/usb" not in str(info.get("Id", ""))]


def cameras() -> list[Camera]:
    return pi_cameras() + v4l2_cameras()


def describe_cameras() -> str:
    """The cameras as the end of an error line: what exists, or that nothing does."""
    found = cameras()
    if not found:
        return "this machine has no cameras (edgecam sources lists them once plugged in)"
    return "this machine has " + ", ".join(f"{c.uri} ({c.name})" for c in found)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def _query(device: str) -> tuple[str, str, str, int]:
    """VIDIOC_QUERYCAP: driver, card name, bus and the capabilities of this node."""
    fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    try:
        buffer = bytearray(_CAPABILITY.size)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buffer)
    finally:
        os.close(fd)
    driver, card, bus, _, capabilities, device_caps = _CAPABILITY.unpack(buffer)
    caps = device_caps if capabilities & CAP_DEVICE_CAPS else capabilities
    return _text(driver), _text(card), _text(bus), caps


def _formats(device: str) -> list[str]:
    """VIDIOC_ENUM_FMT: the pixel formats the camera offers, as fourcc codes (MJPG, YUYV, ...)."""
    formats = []
    try:
        fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return formats
    try:
        for index in range(64):
            buffer = bytearray(_FMTDESC.pack(index, BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0))
            try:
                fcntl.ioctl(fd, VIDIOC_ENUM_FMT, buffer)
            except OSError:
                break  # EINVAL: no more formats
            pixelformat = _FMTDESC.unpack(buffer)[4]
            formats.append(pixelformat.to_bytes(4, "little").decode("ascii", "replace").strip())
    finally:
        os.close(fd)
    return formats


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
