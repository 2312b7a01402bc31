"""picam:N against stand-ins for picamera2 and libcamera (tests/fakes/rpi: they exist only on a
Raspberry Pi), imported by edgecam exactly as the real ones are, that behave as picamera2 0.3.2x
does where edgecam depends on it: captures are jobs that wait for frames (`wait=SECONDS` raises
TimeoutError), stop() waits behind a stuck capture until cancel_all_and_flush(), a camera held
elsewhere fails with "Camera __init__ sequence did not complete.", USB webcams are listed too, the
colour space is picked by size unless asked for, and frames come in the formats the ISP delivers:
main as BGR888 (R, G, B bytes), lores as YUV420 with padded rows."""
from __future__ import annotations

import fcntl
import importlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from conftest import edgecam, wait_for
from test_errors import assert_one_line_error

from edgecam import cli
from edgecam.base.errors import SourceError, UsageError
from edgecam.base.options import resolve
from edgecam.sources import OPTIONS, open_source

FAKES = Path(__file__).parent / "fakes" / "rpi"
PI_CAMERA = {"id": "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a", "model": "imx708_wide",
             "rotation": 180, "autofocus": True}
# libcamera lists a UVC webcam too (a Logitech C270 on a Pi 5's USB port)
USB_WEBCAM = {"id": "/base/axi/pcie@120000/rp1/usb@200000-1:1.0-046d:0825",
              "model": "UVC Camera (046d:0825)"}


def machine(folder: Path, *cameras: dict) -> dict[str, str]:
    """The environment that makes the stand-ins see these cameras (in this process or a child)."""
    spec = folder / "libcamera.json"
    spec.write_text(json.dumps({"media": str(folder), "cameras": list(cameras)}))
    return {"FAKE_LIBCAMERA": str(spec), "PYTHONPATH": str(FAKES)}


@pytest.fixture
def libcamera(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The stand-ins installed where `import picamera2` / `import libcamera` find modules, on a Pi
    with a camera module and a USB webcam; the fake libcamera, to reach its sensors."""
    monkeypatch.setenv("FAKE_LIBCAMERA", machine(tmp_path, PI_CAMERA, USB_WEBCAM)["FAKE_LIBCAMERA"])
    monkeypatch.syspath_prepend(str(FAKES))
    for name in ("picamera2", "libcamera"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module("libcamera")
    for name in ("picamera2", "libcamera"):
        sys.modules.pop(name, None)


def opened() -> list:
    return sys.modules["picamera2"].Picamera2.opened


def settings(**flags: str):
    return resolve(OPTIONS, flags)


def test_main_and_lores_streams_frames_flow_close_on_stop(libcamera: ModuleType) -> None:
    source = open_source("picam:0", settings(camera_size="640x480", camera_fps="30",
                                             autofocus="continuous"), 224)
    source.open()
    try:
        frames = [source.read() for _ in range(5)]
    finally:
        source.close()
    camera = opened()[-1]
    assert camera.camera_config["main"]["size"] == (640, 480)
    assert camera.camera_config["main"]["format"] == "BGR888"
    # the ISP scales to the model input on the short side, keeping the aspect ratio
    assert camera.camera_config["lores"]["size"] == (298, 224)
    assert camera.camera_config["controls"] == {"FrameRate": 30.0, "AfMode": 2}
    assert not camera.is_open and not camera.started
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    for frame in frames:
        assert frame.model_image is not None and frame.source == "picam:0"
        assert frame.image.shape == (480, 640, 3) and frame.model_image.shape == (224, 298, 3)
        # the lores picture is the main one, smaller: the YUV planes and their padding decoded right
        expected = cv2.resize(frame.image, (298, 224), interpolation=cv2.INTER_AREA)
        assert np.abs(frame.model_image.astype(int) - expected).mean() < 6


def patches(index: int) -> np.ndarray:
    """Saturated colour patches, where decoding with the wrong Y'CbCr matrix shifts hues most."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
               (230, 120, 40), (40, 160, 90)]
    return np.repeat(np.array(colours, np.uint8)[None], 90, axis=0).repeat(160, axis=1)


def test_lores_colours_match_main_at_720p(libcamera: ModuleType) -> None:
    """At 1280x720 picamera2 would pick Rec709 for the streams, and OpenCV decodes BT.601: the
    source asks for SMPTE 170M, so the model sees the colours the camera saw."""
    libcamera.sensors()[0].scene = patches
    with open_source("picam:0", settings(camera_size="1280x720"), 224) as source:
        frame = source.read()
    width = frame.model_image.shape[1]
    seen = [frame.model_image[40:-40, round((i + 0.25) * width / 8):round((i + 0.75) * width / 8)]
            .reshape(-1, 3).mean(axis=0) for i in range(8)]  # the middle of each patch
    error = np.abs(np.array(seen) - patches(0)[0, ::160]).max()
    assert error < 6, np.round(seen)  # with the wrong matrix: 20 levels and more
    assert opened()[-1].camera_config["colour_space"] == libcamera.ColorSpace.Smpte170m()


def test_model_image_is_cropped_to_the_lores_size_libcamera_configured(libcamera: ModuleType) -> None:
    libcamera.sensors()[0].width_alignment = 32  # an ISP that cannot output 298 pixel rows
    with open_source("picam:0", settings(camera_size="640x480"), 224) as source:
        frame = source.read()
    assert opened()[-1].camera_config["lores"]["size"] == (288, 224)
    assert frame.model_image.shape == (224, 288, 3)
    expected = cv2.resize(frame.image, (288, 224), interpolation=cv2.INTER_AREA)
    assert np.abs(frame.model_image.astype(int) - expected).mean() < 6  # no padding columns


def test_a_model_input_larger_than_the_camera_names_camera_size(libcamera: ModuleType) -> None:
    with pytest.raises(UsageError, match=r"518 px input is larger than the camera's 640x480 "
                                         r"\(--camera-size\): use --camera-size 690x518 or larger"):
        open_source("picam:0", settings(camera_size="640x480"), 518)


def test_mounting_goes_to_the_isp_quarter_turns_to_the_cpu(libcamera: ModuleType) -> None:
    with open_source("picam:0", settings(camera_size="640x480", rotation="270", hflip=True),
                     224) as source:
        frame = source.read()
    # 270° = 90° after 180°, and 180° is both mirrors: the ISP mirrors top to bottom only
    assert opened()[-1].camera_config["transform"] == libcamera.Transform(hflip=0, vflip=1)
    assert frame.image.shape == (640, 480, 3) and frame.model_image.shape == (298, 224, 3)


def test_a_camera_that_stops_delivering_is_reconnected(libcamera: ModuleType,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The cable is pulled mid-run: after --read-timeout the source warns once, closes the camera
    (its stuck capture flushed first, or stop() would wait behind it) and reopens it until frames
    come again."""
    sensor = libcamera.sensors()[0]
    source = open_source("picam:0", settings(camera_fps="30", read_timeout="0.5"), 224)
    source.open()
    try:
        assert source.read() is not None
        with caplog.at_level(logging.WARNING, logger="edgecam.sources.base"):
            sensor.delivering.clear()
            wait_for(lambda: len(opened()) >= 3, 20, "two reconnect attempts")
            sensor.delivering.set()
            wait_for(lambda: source.reconnects == 1, 20, "the camera to resume")
        assert source.read() is not None
    finally:
        source.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "picam:0 stopped delivering (no frame within 0.5 s" in warnings[0]
    assert not any(camera.is_open for camera in opened())


def test_a_camera_that_stays_away_fails_the_run_in_one_line(tmp_path: Path) -> None:
    env = machine(tmp_path, PI_CAMERA | {"frames": 3})  # the cable comes out after three frames
    result = edgecam("capture", "--source", "picam:0", "--label", "desk", "--out", str(tmp_path),
                     "--count", "20", "--every", "0", "--countdown", "0", "--read-timeout", "0.5",
                     "--reconnect-timeout", "2", env=env, timeout=60)
    line = assert_one_line_error(result, 1, "picam:0 delivered no frame for 2 s",
                                 "no frame within 0.5 s")
    assert "reconnect attempts" in line


def test_a_busy_camera_is_one_clear_line(tmp_path: Path) -> None:
    """Another process (rpicam-hello, a second edgecam) holds the camera: libcamera's lock on its
    media device is taken."""
    env = machine(tmp_path, PI_CAMERA)
    with open(tmp_path / "media0", "w") as media:
        fcntl.lockf(media, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = edgecam("capture", "--source", "picam:0", "--label", "desk", "--out", str(tmp_path),
                         "--count", "1", "--countdown", "0", env=env, timeout=60)
    assert_one_line_error(result, 1, "Pi camera 0 (picam:0) cannot be opened",
                          "Camera __init__ sequence did not complete.", "another program")


def test_a_second_source_on_the_same_camera_is_busy(libcamera: ModuleType) -> None:
    with open_source("picam:0", settings(), 224):
        second = open_source("picam:0", settings(), 224)
        with pytest.raises(SourceError, match=r"picam:0\) cannot be opened .* another program"):
            second.open()


def test_picamera2_without_libcamera_is_one_clear_line(tmp_path: Path) -> None:
    """pip's picamera2 in a venv without system site-packages: libcamera's bindings are missing."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "picamera2").symlink_to(FAKES / "picamera2")
    result = edgecam("run", "--source", "picam:0", "--headless", env={"PYTHONPATH": str(site)})
    line = assert_one_line_error(result, 1, "picam:0", "No module named 'libcamera'")
    assert "apt install python3-picamera2" in line and "--system-site-packages" in line


def test_picamera2_missing_is_one_clear_line() -> None:
    line = assert_one_line_error(edgecam("run", "--source", "picam:0", "--headless"), 1, "picam:0")
    assert "apt install python3-picamera2" in line and "--system-site-packages" in line


def test_no_such_pi_camera_lists_the_cameras(libcamera: ModuleType) -> None:
    source = open_source("picam:3", settings(), 224)
    with pytest.raises(SourceError, match=r"no Pi camera 3 \(picam:3\): this machine has picam:0 "
                                          r"\(imx708_wide\)"):
        source.open()


def test_usb_webcams_are_not_pi_cameras(libcamera: ModuleType, capsys: pytest.CaptureFixture) -> None:
    """libcamera lists the webcam as its last camera; picam cannot deliver its lores stream."""
    assert cli.main(["sources", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c for c in listed if c["uri"].startswith("picam:")] == [
        {"uri": "picam:0", "device": PI_CAMERA["id"], "name": "imx708_wide", "formats": [],
         "note": "", "link": ""}]
    assert cli.main(["sources"]) == 0
    assert capsys.readouterr().out.startswith("picam:0  imx708_wide")
    with pytest.raises(SourceError, match=r"picam:1 is a USB camera .* open it as usb:N"):
        open_source("picam:1", settings(), 224).open()


def test_reader_and_camera_threads_end_on_stop(libcamera: ModuleType) -> None:
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
    assert not opened()[-1].is_open
    assert not any(t.name.startswith("capture picam") for t in threading.enumerate())


def test_stand_in_picks_colour_spaces_as_picamera2(libcamera: ModuleType) -> None:
    """The default the colour test relies on: Rec709 from 1280x720 up, SMPTE 170M below."""
    camera = importlib.import_module("picamera2").Picamera2(0)
    try:
        pick = {size: camera.create_video_configuration(main={"size": size})["colour_space"]
                for size in ((1280, 720), (1279, 720), (640, 480))}
    finally:
        camera.close()
    assert pick == {(1280, 720): libcamera.ColorSpace.Rec709(),
                    (1279, 720): libcamera.ColorSpace.Smpte170m(),
                    (640, 480): libcamera.ColorSpace.Smpte170m()}
