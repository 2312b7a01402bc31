"""picam:N against a stand-in for picamera2 (libcamera exists only on a Raspberry Pi): a module with
picamera2's API surface, imported by edgecam exactly as the real one is (`from picamera2 import
Picamera2`), that paces frames like a camera and delivers real photos in the formats the Pi's ISP
does: main as BGR888 (R, G, B bytes), lores as YUV420 with padded rows."""
from __future__ import annotations

import json
import sys
import threading
import time
import types
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np
import pytest

from edgecam import cli
from edgecam.base.options import resolve
from edgecam.base.samples import DemoClip
from edgecam.sources import OPTIONS, open_source

CAMERAS = [{"Model": "imx708_wide", "Location": 2, "Rotation": 180, "Num": 0,
            "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a"}]


@dataclass
class Transform:
    """libcamera.Transform's constructor."""

    hflip: int = 0
    vflip: int = 0
    transpose: int = 0


class StandInPicamera2:
    """What edgecam calls of picamera2.Picamera2, recording the calls."""

    instances: ClassVar[list[StandInPicamera2]] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.camera_controls = {"AfMode": (0, 2, 0), "LensPosition": (0.0, 15.0, 1.0)}
        self.calls: list[str] = []
        self.config: dict | None = None
        self.clip = DemoClip(640, 480, shot_frames=10)
        self.index = 0
        StandInPicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict]:
        return CAMERAS

    def create_video_configuration(self, main: dict | None = None, lores: dict | None = None,
                                   controls: dict | None = None, transform=None, **_: object) -> dict:
        return {"use_case": "video", "main": dict(main or {}), "lores": lores and dict(lores),
                "controls": dict(controls or {}), "transform": transform or Transform()}

    create_preview_configuration = create_video_configuration

    def configure(self, config: dict) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def _next(self) -> np.ndarray:
        assert self.calls[-1] == "start", "capturing from a camera that is not started"
        time.sleep(1 / self.config["controls"].get("FrameRate", 30))
        rgb = self.clip.frame(self.index)
        self.index += 1
        width, height = self.config["main"]["size"]
        return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert name == "main"
        return self._next()

    def capture_arrays(self, names: list[str]) -> tuple[list[np.ndarray], dict]:
        main = self._next()
        arrays = {"main": main}
        if "lores" in names:
            width, height = self.config["lores"]["size"]
            yuv = cv2.cvtColor(cv2.resize(main, (width, height), interpolation=cv2.INTER_AREA),
                               cv2.COLOR_RGB2YUV_I420)
            stride = (width + 63) // 64 * 64  # the ISP pads rows; picamera2 leaves the padding in
            padded = np.zeros((height * 3 // 2, stride), np.uint8)
            padded[:height, :width] = yuv[:height]
            # the U and V planes are half as wide: two of their rows share one padded row
            half = stride // 2
            chroma = yuv[height:].reshape(-1, width // 2)
            planes = padded[height:].reshape(-1, half)
            planes[:, :width // 2] = chroma
            arrays["lores"] = padded
        return [arrays[n] for n in names], {"SensorTimestamp": time.monotonic_ns()}

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def picamera2(monkeypatch: pytest.MonkeyPatch) -> type[StandInPicamera2]:
    """The stand-in installed where `import picamera2` / `import libcamera` find modules."""
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInPicamera2
    module.__spec__ = types.SimpleNamespace(name="picamera2", loader=None, origin="stand-in",
                                            submodule_search_locations=None)
    libcamera = types.ModuleType("libcamera")
    libcamera.Transform = Transform
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    StandInPicamera2.instances = []
    return StandInPicamera2


def settings(**flags: str):
    return resolve(OPTIONS, flags)


def test_main_and_lores_streams_frames_flow_close_on_stop(picamera2: type[StandInPicamera2]) -> None:
    source = open_source("picam:0", settings(camera_size="640x480", camera_fps="30",
                                             autofocus="continuous"), 224)
    source.open()
    try:
        frames = [source.read() for _ in range(5)]
    finally:
        source.close()
    camera = picamera2.instances[-1]
    assert camera.config["main"] == {"size": (640, 480), "format": "BGR888"}
    # the ISP scales to the model input on the short side, keeping the aspect ratio
    assert camera.config["lores"] == {"size": (298, 224), "format": "YUV420"}
    assert camera.config["controls"] == {"FrameRate": 30.0, "AfMode": 2}
    assert camera.calls == ["configure", "start", "stop", "close"]
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    for frame in frames:
        assert frame.model_image is not None and frame.source == "picam:0"
        assert frame.image.shape == (480, 640, 3) and frame.model_image.shape == (224, 298, 3)
        # the lores picture is the main one, smaller: the YUV planes and their padding decoded right
        expected = cv2.resize(frame.image, (298, 224), interpolation=cv2.INTER_AREA)
        assert np.abs(frame.model_image.astype(int) - expected).mean() < 6


def test_mounting_goes_to_the_isp_quarter_turns_to_the_cpu(picamera2: type[StandInPicamera2]) -> None:
    source = open_source("picam:0", settings(camera_size="640x480", rotation="270", hflip=True), 224)
    source.open()
    try:
        frame = source.read()
    finally:
        source.close()
    # 270° = 90° after 180°, and 180° is both mirrors: the ISP mirrors top to bottom only
    assert picamera2.instances[-1].config["transform"] == Transform(hflip=0, vflip=1)
    assert frame.image.shape == (640, 480, 3) and frame.model_image.shape == (298, 224, 3)


def test_no_such_pi_camera_lists_the_cameras(picamera2: type[StandInPicamera2]) -> None:
    from edgecam.base.errors import SourceError

    source = open_source("picam:3", settings(), 224)
    with pytest.raises(SourceError, match=r"no Pi camera 3 \(picam:3\): this machine has picam:0 "
                                          r"\(imx708_wide\)"):
        source.open()


def test_sources_lists_the_pi_camera(picamera2: type[StandInPicamera2],
                                     capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["sources", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0] == {"uri": "picam:0", "device": CAMERAS[0]["Id"], "name": "imx708_wide",
                         "formats": [], "note": ""}
    assert cli.main(["sources"]) == 0
    assert capsys.readouterr().out.startswith("picam:0  imx708_wide")


def test_picamera2_missing_is_one_clear_line() -> None:
    from conftest import edgecam
    from test_errors import assert_one_line_error

    line = assert_one_line_error(edgecam("run", "--source", "picam:0", "--headless"), 1, "picam:0")
    assert "apt install python3-picamera2" in line and "--system-site-packages" in line


def test_reader_and_camera_threads_end_on_stop(picamera2: type[StandInPicamera2]) -> None:
    """interrupt() (SIGINT/SIGTERM in a run) wakes a waiting reader; close() ends the thread."""
    source = open_source("picam:0", settings(camera_fps="5"), 224)
    source.open()
    got: list = []
    reader = threading.Thread(target=lambda: got.extend([source.read(), source.read(),
                                                         source.read()]))
    reader.start()
    source.interrupt()
    reader.join(timeout=10)
    source.close()
    assert not reader.is_alive() and got[-1] is None
    assert picamera2.instances[-1].calls[-2:] == ["stop", "close"]
    assert not any(t.name.startswith("capture picam") for t in threading.enumerate())
