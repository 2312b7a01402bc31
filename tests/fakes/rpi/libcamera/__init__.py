"""Stand-in for libcamera's Python bindings: the parts picamera2 and edgecam touch, behaving as
libcamera does where edgecam depends on it.

- The cameras are the machine's, described by the JSON file that FAKE_LIBCAMERA names (so a child
  process sees the same machine): Pi camera modules and, as on a real Pi, USB webcams too (their Id
  contains `/usb`).
- A camera is used by one owner at a time: libcamera's MediaDevice::lock() takes a lockf() lock on
  the camera's /dev/mediaN, so a camera held by another process (rpicam-hello, a second edgecam) or
  already acquired in this one cannot be acquired (EBUSY).
- ColorSpace's presets and Transform, compared by value as the bindings do.

Not libcamera: `Sensor`, the test's handle on a camera (its cable, its scene)."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ColorSpace:
    primaries: str
    transferFunction: str  # libcamera's spelling
    ycbcrEncoding: str
    range: str

    @staticmethod
    def Sycc() -> ColorSpace:  # libcamera's names
        return ColorSpace("Rec709", "Srgb", "Rec601", "Full")

    @staticmethod
    def Smpte170m() -> ColorSpace:
        return ColorSpace("Smpte170m", "Rec709", "Rec601", "Limited")

    @staticmethod
    def Rec709() -> ColorSpace:
        return ColorSpace("Rec709", "Rec709", "Rec709", "Limited")


@dataclass(frozen=True)
class Transform:
    hflip: int = 0
    vflip: int = 0
    transpose: int = 0


@dataclass
class Sensor:
    """One camera of the fake machine, and what a test does to it."""

    id: str
    model: str
    location: int = 2
    rotation: int = 0
    autofocus: bool = False
    # The ISP's output width alignment: libcamera adjusts a stream it cannot deliver exactly
    # (CameraConfiguration::Status::Adjusted) to the nearest size it can.
    width_alignment: int = 2
    delivering: threading.Event = field(default_factory=threading.Event)  # cleared: cable out
    frames: int | None = None  # frames the sensor delivers before its cable comes out
    delivered: int = 0
    scene: Callable[[int], np.ndarray] | None = None  # frame index → RGB picture (None: demo clip)

    def __post_init__(self) -> None:
        self.delivering.set()

    def deliver(self) -> bool:
        """Whether the next frame comes; counts it."""
        if not self.delivering.is_set() or (self.frames is not None and self.delivered >= self.frames):
            return False
        self.delivered += 1
        return True


class Camera:
    """libcamera.Camera: its id, and exclusive acquisition."""

    _acquired: set[str] = set()  # noqa: RUF012 - one process's cameras, as libcamera tracks them

    def __init__(self, sensor: Sensor, media: str) -> None:
        self.sensor, self.id, self._media = sensor, sensor.id, media
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        if self.id in Camera._acquired:
            raise OSError(errno.EBUSY, "Camera in use by this process", self.id)
        fd = os.open(self._media, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OSError(errno.EBUSY, "Device or resource busy", self._media) from None
        self._lock_fd = fd
        Camera._acquired.add(self.id)

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the lockf() lock
            self._lock_fd = None
            Camera._acquired.discard(self.id)


class CameraManager:
    _instance: CameraManager | None = None

    def __init__(self) -> None:
        with open(os.environ["FAKE_LIBCAMERA"]) as file:
            machine = json.load(file)
        self.cameras = [Camera(Sensor(**spec), os.path.join(machine["media"], f"media{n}"))
                        for n, spec in enumerate(machine["cameras"])]

    @classmethod
    def singleton(cls) -> CameraManager:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance


def sensors() -> list[Sensor]:
    """The machine's cameras, for a test to unplug or point at a scene."""
    return [camera.sensor for camera in CameraManager.singleton().cameras]
