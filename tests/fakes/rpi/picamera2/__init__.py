"""Stand-in for picamera2 (raspberrypi/picamera2, picamera2.py and job.py of 0.3.2x), for tests:
what edgecam calls, behaving as picamera2 does.

- Importing it imports libcamera first: without libcamera's bindings (pip's picamera2 in a venv
  without system site-packages) the import fails with "No module named 'libcamera'".
- global_camera_info() lists every camera libcamera has, USB webcams last; Picamera2(n) opens the
  n-th of that list and raises RuntimeError("Camera __init__ sequence did not complete.") when the
  camera cannot be acquired (another process holds it).
- create_video_configuration() picks the colour space when none is given: Smpte170m below
  1280×720, Rec709 from there up; configure() refuses a lores stream larger than main, may adjust
  the sizes asked for (as libcamera validates them) and records the strides.
- Captures are jobs run in order by the camera's event loop as frames complete: wait=None/True
  blocks until a frame comes, wait=SECONDS raises TimeoutError after that long (the job stays
  queued), wait=False returns the job. stop() is a job too, queued behind a capture that never
  completes (a dislodged cable) until cancel_all_and_flush() empties the queue; close() stops.
- Frames: main as BGR888 (R, G, B bytes), lores as YUV420 planes with rows padded to the stride,
  encoded with the configured colour space's matrix and range."""
from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError, Future
from functools import partial
from typing import ClassVar

import cv2
import libcamera
import numpy as np

# Y'CbCr matrices (Kr, Kb) and ranges of the colour spaces libcamera names
MATRIX = {"Rec601": (0.299, 0.114), "Rec709": (0.2126, 0.0722)}


class Job:
    """A list of steps the event loop tries at each frame; each returns (done, result)."""

    def __init__(self, functions: list) -> None:
        self._functions = functions
        self._future: Future = Future()
        self._future.set_running_or_notify_cancel()

    def execute(self) -> bool:
        try:
            while self._functions:
                done, result = self._functions[0]()
                if not done:
                    return False
                self._functions.pop(0)
            self._future.set_result(result)
        except Exception as e:  # noqa: BLE001 - handed to the waiting caller, as picamera2 does
            self._future.set_exception(e)
            self._functions = []
        return True

    def cancel(self) -> None:
        self._future.set_exception(CancelledError())

    def get_result(self, timeout: float | None = None):
        return self._future.result(timeout=timeout)


class Picamera2:
    opened: ClassVar[list[Picamera2]] = []  # not picamera2's: the cameras a test opened

    @staticmethod
    def global_camera_info() -> list[dict]:
        found = [{"Model": c.sensor.model, "Location": c.sensor.location,
                  "Rotation": c.sensor.rotation, "Id": c.id, "Num": n}
                 for n, c in enumerate(libcamera.CameraManager.singleton().cameras)]
        return sorted(found, key=lambda c: ("/usb" not in c["Id"], c["Id"]), reverse=True)

    def __init__(self, camera_num: int = 0) -> None:
        number = self.global_camera_info()[camera_num]["Num"]
        self.is_open = False
        try:
            self.camera = libcamera.CameraManager.singleton().cameras[number]
            self.camera.acquire()
        except Exception:  # noqa: BLE001 - picamera2 turns any failure into this one
            raise RuntimeError("Camera __init__ sequence did not complete.") from None
        self.is_open, self.started = True, False
        self.sensor = self.camera.sensor
        self.camera_controls = {"FrameRate": (1.0, 120.0, 30.0)}
        if self.sensor.autofocus:
            self.camera_controls |= {"AfMode": (0, 2, 0), "LensPosition": (0.0, 15.0, 1.0)}
        self.camera_config: dict | None = None
        self.lock = threading.Lock()
        self._job_list: list[Job] = []
        self._completed: list[int] = []  # frame indices of completed requests, newest kept
        self._wake = threading.Event()
        self._loop: threading.Thread | None = None
        self._frames = 0
        Picamera2.opened.append(self)

    # configuration

    def create_video_configuration(self, main=None, lores=None, raw=None,
                                   transform=None, colour_space=None,
                                   buffer_count=6, controls=None, display="main", encode="main",
                                   queue=True) -> dict:
        main = {"format": "XBGR8888", "size": (1280, 720)} | dict(main or {})
        main["size"] = _even(main["size"])
        if lores is not None:
            lores = {"format": "YUV420", "size": main["size"]} | dict(lores)
            lores["size"] = _even(lores["size"])
        transform = libcamera.Transform() if transform is None else transform
        if colour_space is None:
            small = main["size"][0] < 1280 or main["size"][1] < 720
            colour_space = libcamera.ColorSpace.Smpte170m() if small else libcamera.ColorSpace.Rec709()
        return {"use_case": "video", "transform": transform, "colour_space": colour_space,
                "buffer_count": buffer_count, "queue": queue, "main": main, "lores": lores,
                "raw": raw, "controls": dict(controls or {}), "display": display, "encode": encode}

    def configure(self, config: dict) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if not isinstance(config["colour_space"], libcamera.ColorSpace):
            raise RuntimeError("Colour space has incorrect type")
        if not isinstance(config["transform"], libcamera.Transform):
            raise RuntimeError("Transform has incorrect type")
        config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
        lores = config["lores"]
        if lores is not None:
            if lores["size"][0] > config["main"]["size"][0] or lores["size"][1] > config["main"]["size"][1]:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if lores["format"] != "YUV420":
                raise RuntimeError("lores stream must be YUV")
        for stream in (config["main"], lores):
            if stream is not None:
                self._validate(stream)
        self.camera_config = config

    def _validate(self, stream: dict) -> None:
        """What libcamera configures for a stream: the size adjusted to the ISP, rows padded."""
        width, height = stream["size"]
        if stream["format"] == "YUV420":
            width -= width % self.sensor.width_alignment
            stream["stride"] = -(-width // 64) * 64
        else:
            stream["stride"] = -(-width * 3 // 32) * 32
        stream["size"] = (width, height)

    def camera_configuration(self) -> dict | None:
        return self.camera_config

    # running

    def start(self, config=None, show_preview=False) -> None:
        if config is not None:
            self.configure(config)
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        if self._loop is None:  # the NullPreview's event loop
            self._loop = threading.Thread(target=self._event_loop, name="picamera2 loop", daemon=True)
            self._loop.start()
        self.started = True

    def _interval(self) -> float:
        return 1 / self.camera_config["controls"].get("FrameRate", 30.0)

    def _event_loop(self) -> None:
        due = time.monotonic()
        while self.is_open:
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()
            with self.lock:
                if time.monotonic() >= due:
                    due += self._interval()
                    if self.started and self.sensor.deliver():
                        self._completed = [self._frames]  # the newest request only (queue=True)
                        self._frames += 1
                while self._job_list and self._job_list[0].execute():
                    self._job_list.pop(0)

    def dispatch_functions(self, functions: list, wait, immediate: bool = False):
        if wait is None:
            wait = True
        job = Job(functions)
        with self.lock:
            only = not self._job_list
            self._job_list.append(job)
            if only and (self._completed or immediate):
                self._wake.set()
        if wait is False:
            return job
        return job.get_result(timeout=None if wait is True else wait)

    def wait(self, job: Job, timeout: float | None = None):
        return job.get_result(timeout=timeout)

    def _capture_arrays_(self, names: list[str]):
        if not self._completed:
            return False, None
        index = self._completed.pop(0)
        rgb = self._scene(index)
        return True, ([self._array(rgb, name) for name in names],
                      {"SensorTimestamp": time.monotonic_ns(), "FrameIndex": index})

    def _capture_array_(self, name: str):
        done, result = self._capture_arrays_([name])
        return done, result and result[0][0]

    def capture_array(self, name: str = "main", wait=None):
        return self.dispatch_functions([partial(self._capture_array_, name)], wait)

    def capture_arrays(self, names=("main",), wait=None):
        return self.dispatch_functions([partial(self._capture_arrays_, list(names))], wait)

    def cancel_all_and_flush(self) -> None:
        with self.lock:
            for job in self._job_list:
                job.cancel()
            self._job_list = []

    def _stop_(self):
        self.started = False
        self._completed = []
        return True, None

    def stop(self) -> None:
        if self.started:
            self.dispatch_functions([self._stop_], wait=True, immediate=True)

    def close(self) -> None:
        if not self.is_open:
            return
        self.stop()
        self.camera.release()
        self.is_open = False
        self._wake.set()

    # pictures

    def _scene(self, index: int) -> np.ndarray:
        """The picture the sensor sees, as the ISP delivers it at the main size."""
        if self.sensor.scene is None:
            from edgecam.base.samples import DemoClip

            self.sensor.scene = DemoClip(640, 480, shot_frames=10).frame
        width, height = self.camera_config["main"]["size"]
        rgb = cv2.resize(self.sensor.scene(index), (width, height), interpolation=cv2.INTER_AREA)
        transform = self.camera_config["transform"]
        if transform.hflip:
            rgb = rgb[:, ::-1]
        if transform.vflip:
            rgb = rgb[::-1]
        return np.ascontiguousarray(rgb)

    def _array(self, rgb: np.ndarray, name: str) -> np.ndarray:
        stream = self.camera_config[name]
        if stream["format"] == "BGR888":  # libcamera's BGR888 is R, G, B bytes in memory
            return rgb
        if stream["format"] == "RGB888":
            return np.ascontiguousarray(rgb[..., ::-1])
        if stream["format"] == "YUV420":
            width, height = stream["size"]
            small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
            return _yuv420(small, self.camera_config["colour_space"], stream["stride"])
        raise NotImplementedError(stream["format"])


def _even(size: tuple[int, int]) -> tuple[int, int]:
    return size[0] - size[0] % 2, size[1] - size[1] % 2


def _yuv420(rgb: np.ndarray, space, stride: int) -> np.ndarray:
    """Y, U and V planes as picamera2's make_array returns them: (height × 3/2) rows of `stride`
    bytes; a chroma plane's rows are half as wide, two of them share one row."""
    kr, kb = MATRIX[space.ycbcrEncoding]
    r, g, b = (rgb[..., i].astype(np.float64) / 255 for i in range(3))
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    if space.range == "Limited":
        y, cb, cr = 16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr
    else:
        y, cb, cr = 255 * y, 128 + 255 * cb, 128 + 255 * cr
    height, width = y.shape
    planes = np.zeros((height * 3 // 2, stride), np.uint8)
    planes[:height, :width] = np.clip(np.rint(y), 0, 255)
    half = planes[height:].reshape(-1, stride // 2)
    for row, plane in enumerate((cb, cr)):
        small = cv2.resize(plane, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
        half[row * (height // 2):(row + 1) * (height // 2), :width // 2] = np.clip(np.rint(small), 0, 255)
    return planes
