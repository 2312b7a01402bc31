"""Stand-ins for the V4L2 devices of a Raspberry Pi 4, a Pi 5 and a Jetson, and for OpenCV's
V4L2 capture of them.

`Machine` lays out what the kernel and udev would, in a folder: /sys/class/video4linux/videoN/name,
/dev/videoN and udev's /dev/v4l/by-id and by-path links; and answers the ioctls edgecam asks
(VIDIOC_QUERYCAP, VIDIOC_ENUM_FMT) with each driver's real names and capabilities (linux
drivers/media: bcm2835-unicam, bcm2835-isp, bcm2835-codec, rp1-cfe, pisp_be, tegra-video,
uvcvideo). `Capture` stands in for cv2.VideoCapture(node, cv2.CAP_V4L2): it opens a node that is
plugged in, reads until the camera is unplugged, and takes OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT from
the environment at its first read, as cap_v4l.cpp does (a function-local static)."""
from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

# linux/videodev2.h
CAPTURE, OUTPUT, CAPTURE_MPLANE, OUTPUT_MPLANE, M2M_MPLANE = 0x1, 0x2, 0x1000, 0x2000, 0x4000
META_CAPTURE, EXT_PIX, READWRITE, STREAMING, META_OUTPUT, IO_MC, DEVICE_CAPS = (
    0x00800000, 0x00200000, 0x01000000, 0x04000000, 0x08000000, 0x20000000, 0x80000000)
CAPABILITY = struct.Struct("16s32s32sIII12x")  # struct v4l2_capability
FMTDESC = struct.Struct("III32sII12x")  # struct v4l2_fmtdesc
QUERYCAP = (2 << 30) | (CAPABILITY.size << 16) | (ord("V") << 8) | 0
ENUM_FMT = (3 << 30) | (FMTDESC.size << 16) | (ord("V") << 8) | 2


@dataclass
class Node:
    """One /dev/videoN: its driver's answer to VIDIOC_QUERYCAP, its formats and udev links."""

    name: str  # /sys/class/video4linux/videoN/name
    driver: str
    card: str
    bus: str
    caps: int  # the node's device_caps
    formats: tuple[str, ...] = ()
    links: tuple[str, ...] = ()  # udev's, under /dev/v4l: "by-id/...", "by-path/..."
    plugged: bool = True


def _unicam() -> dict[int, Node]:
    unicam = {"driver": "unicam", "card": "unicam", "bus": "platform:fe801000.csi"}
    return {0: Node("unicam-image", **unicam, caps=CAPTURE | READWRITE | STREAMING | EXT_PIX | IO_MC,
                    formats=("pRAA", "RG10")),
            1: Node("unicam-embedded", **unicam, caps=META_CAPTURE | READWRITE | STREAMING | IO_MC)}


def _bcm2835_isp(first: int) -> dict[int, Node]:
    isp = {"driver": "bcm2835-isp", "card": "bcm2835-isp", "bus": "platform:bcm2835-isp"}
    capture = CAPTURE | STREAMING | EXT_PIX
    return {first: Node("bcm2835-isp0-output0", **isp, caps=OUTPUT | STREAMING | EXT_PIX),
            first + 1: Node("bcm2835-isp0-capture1", **isp, caps=capture, formats=("YU12", "NV12")),
            first + 2: Node("bcm2835-isp0-capture2", **isp, caps=capture, formats=("YU12", "NV12")),
            first + 3: Node("bcm2835-isp0-capture3", **isp, caps=META_CAPTURE | STREAMING)}


def _bcm2835_codec() -> dict[int, Node]:
    codec = {"driver": "bcm2835-codec", "bus": "platform:bcm2835-codec",
             "caps": M2M_MPLANE | STREAMING | EXT_PIX}
    return {10: Node("bcm2835-codec-decode", card="bcm2835-codec-decode", **codec),
            11: Node("bcm2835-codec-encode", card="bcm2835-codec-encode", **codec),
            12: Node("bcm2835-codec-isp", card="bcm2835-codec-isp", **codec)}


def _rp1_cfe() -> dict[int, Node]:
    cfe = {"driver": "rp1-cfe", "card": "rp1-cfe", "bus": "platform:1f00110000.csi"}
    both = CAPTURE | META_CAPTURE | STREAMING | IO_MC
    nodes = {n: Node(f"rp1-cfe-csi2-ch{n}", **cfe, caps=both, formats=("pRAA", "RG10")) for n in range(4)}
    nodes |= {4: Node("rp1-cfe-fe-image0", **cfe, caps=CAPTURE | STREAMING | IO_MC, formats=("pRAA",)),
              5: Node("rp1-cfe-fe-image1", **cfe, caps=CAPTURE | STREAMING | IO_MC, formats=("pRAA",)),
              6: Node("rp1-cfe-fe-stats", **cfe, caps=META_CAPTURE | STREAMING | IO_MC),
              7: Node("rp1-cfe-fe-config", **cfe, caps=META_OUTPUT | STREAMING | IO_MC)}
    return nodes


def _pispbe() -> dict[int, Node]:
    be = {"driver": "pispbe", "card": "PiSP Back End", "bus": "platform:1000880000.pisp_be"}
    return {20: Node("pispbe-input", **be, caps=OUTPUT_MPLANE | STREAMING),
            21: Node("pispbe-tdn_input", **be, caps=OUTPUT_MPLANE | STREAMING),
            22: Node("pispbe-stitch_input", **be, caps=OUTPUT_MPLANE | STREAMING),
            23: Node("pispbe-output0", **be, caps=CAPTURE_MPLANE | STREAMING),
            24: Node("pispbe-output1", **be, caps=CAPTURE_MPLANE | STREAMING),
            25: Node("pispbe-tdn_output", **be, caps=CAPTURE_MPLANE | STREAMING),
            26: Node("pispbe-stitch_output", **be, caps=CAPTURE_MPLANE | STREAMING),
            27: Node("pispbe-config", **be, caps=META_OUTPUT | STREAMING)}


def uvc(first: int, bus: str, path: str, serial: str = "8D8A6A2F") -> dict[int, Node]:
    """A Logitech C920: a capture node and a metadata node, each with udev's links."""
    uvcvideo = {"driver": "uvcvideo", "card": "HD Pro Webcam C920", "bus": f"usb-{bus}"}
    by_id = f"by-id/usb-046d_HD_Pro_Webcam_C920_{serial}-video-index"
    by_path = f"by-path/{path}-video-index"
    return {first: Node("HD Pro Webcam C920", **uvcvideo, caps=CAPTURE | STREAMING | EXT_PIX,
                        formats=("YUYV", "H264", "MJPG"), links=(by_id + "0", by_path + "0")),
            first + 1: Node("HD Pro Webcam C920", **uvcvideo, caps=META_CAPTURE | STREAMING | EXT_PIX,
                            links=(by_id + "1", by_path + "1"))}


PI4_USB = ("0000:01:00.0-1.3", "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.3:1.0")
PI5_USB = ("xhci-hcd.0-1", "platform-xhci-hcd.0-usb-0:1:1.0")
JETSON_USB = ("3610000.xhci-2.1", "platform-3610000.xhci-usb-0:2.1:1.0")


def pi4() -> dict[int, Node]:
    """A Pi 4 (Bookworm) with a camera module on its CSI port and a USB webcam."""
    return _unicam() | uvc(2, *PI4_USB) | _bcm2835_codec() | _bcm2835_isp(13) | _bcm2835_isp(20)


def pi5() -> dict[int, Node]:
    return _rp1_cfe() | uvc(8, *PI5_USB) | _pispbe()


def jetson() -> dict[int, Node]:
    """An Orin Nano with two IMX219 on its CSI ports and a USB webcam."""
    vi = {"driver": "tegra-video", "caps": CAPTURE | STREAMING | EXT_PIX, "formats": ("RG10",)}
    return {0: Node("vi-output, imx219 9-0010", card="vi-output, imx219 9-0010",
                    bus="platform:tegra-capture-vi:1", **vi),
            1: Node("vi-output, imx219 10-0010", card="vi-output, imx219 10-0010",
                    bus="platform:tegra-capture-vi:2", **vi)} | uvc(2, *JETSON_USB)


@dataclass
class Machine:
    """A board's V4L2 devices as files in `root` (sys/, dev/), answering edgecam's ioctls."""

    root: Path
    nodes: dict[int, Node] = field(default_factory=dict)
    opened: list[str] = field(default_factory=list)  # every node a Capture opened, in order
    reads: int = 0
    select_timeout: str | None = None  # OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT as the first read saw it

    def __post_init__(self) -> None:
        self.sysfs, self.dev = self.root / "sys", self.root / "dev"
        for number in list(self.nodes):
            self.plug(number, self.nodes[number])

    def plug(self, number: int, node: Node) -> None:
        """What the kernel and udev do when a device appears as /dev/video{number}."""
        self.nodes[number] = node
        node.plugged = True
        (self.sysfs / f"video{number}").mkdir(parents=True, exist_ok=True)
        (self.sysfs / f"video{number}" / "name").write_text(node.name + "\n")
        self.dev.mkdir(parents=True, exist_ok=True)
        (self.dev / f"video{number}").touch()
        for link in node.links:
            path = self.dev / "v4l" / link
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            path.symlink_to(Path("../..") / f"video{number}")

    def unplug(self, number: int) -> Node:
        node = self.nodes.pop(number)
        node.plugged = False
        (self.sysfs / f"video{number}" / "name").unlink()
        (self.sysfs / f"video{number}").rmdir()
        (self.dev / f"video{number}").unlink()
        for link in node.links:
            (self.dev / "v4l" / link).unlink()
        return node

    def node(self, path: str) -> Node | None:
        found = Path(os.path.realpath(path))
        if found.parent != self.dev.resolve() or not found.name.startswith("video"):
            return None
        return self.nodes.get(int(found.name[5:]))

    def ioctl(self, fd: int, request: int, buffer: bytearray, *_: object) -> int:
        """The kernel's answer for one of this machine's nodes."""
        node = self.node(os.readlink(f"/proc/self/fd/{fd}"))
        if node is None:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        if request == QUERYCAP:
            every = CAPTURE | OUTPUT | META_CAPTURE | node.caps  # the device's, all nodes together
            buffer[:] = CAPABILITY.pack(node.driver.encode(), node.card.encode(), node.bus.encode(),
                                        0x60000, every | DEVICE_CAPS, node.caps)
            return 0
        if request == ENUM_FMT:
            index, kind = FMTDESC.unpack(buffer)[:2]
            wanted = 1 if node.caps & CAPTURE else 9  # V4L2_BUF_TYPE_VIDEO_CAPTURE(_MPLANE)
            if kind != wanted or index >= len(node.formats):
                raise OSError(errno.EINVAL, "Invalid argument")
            code = int.from_bytes(node.formats[index].encode(), "little")
            buffer[:] = FMTDESC.pack(index, kind, 0, node.formats[index].encode(), code, 0)
            return 0
        raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")

    def install(self, monkeypatch) -> None:
        """Route ioctls on this machine's nodes here (any other goes to the real kernel), and
        OpenCV's V4L2 captures to its nodes."""
        real = fcntl.ioctl

        def ioctl(fd, request, *args):
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = ""
            if self.node(path) is None:
                return real(fd, request, *args)
            return self.ioctl(fd, request, *args)

        monkeypatch.setattr(fcntl, "ioctl", ioctl)
        monkeypatch.setattr(cv2, "VideoCapture", lambda *args: Capture(self, *args))


class Capture:
    """cv2.VideoCapture(node, cv2.CAP_V4L2) on a Machine: frames while the node is plugged."""

    def __init__(self, machine: Machine, path: str, api: int = cv2.CAP_ANY, *params: object) -> None:
        assert api == cv2.CAP_V4L2 and not params, "OpenCV's V4L2 backend takes no open parameters"
        self.machine, self.node = machine, machine.node(path)
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0,
                      cv2.CAP_PROP_FPS: 30.0, cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter.fourcc(*"YUYV"))}
        if self.isOpened():
            machine.opened.append(path)

    def isOpened(self) -> bool:
        return self.node is not None and self.node.plugged and bool(self.node.caps & CAPTURE)

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = float(value)
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.machine.reads:  # cap_v4l.cpp reads the variable once, at the first select()
            self.machine.select_timeout = os.environ.get("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT")
        self.machine.reads += 1
        if not self.isOpened():  # unplugged: VIDIOC_DQBUF fails with ENODEV at once
            return False, None
        time.sleep(1 / self.props[cv2.CAP_PROP_FPS])
        width, height = int(self.props[cv2.CAP_PROP_FRAME_WIDTH]), int(self.props[cv2.CAP_PROP_FRAME_HEIGHT])
        return True, np.full((height, width, 3), 128, np.uint8)

    def release(self) -> None:
        self.node = None
