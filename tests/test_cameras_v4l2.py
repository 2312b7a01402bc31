"""V4L2 cameras on a Pi 4, a Pi 5 and a Jetson, against stand-ins for their devices (the drivers'
real names and capabilities, udev's links) and for OpenCV's V4L2 capture (tests/fakes/v4l2.py):
what `edgecam sources` lists, and a USB camera that re-enumerates under another /dev/videoN."""
from __future__ import annotations

import functools
import logging
import tomllib
from pathlib import Path

import pytest
from conftest import wait_for
from fakes.v4l2 import JETSON_USB, PI4_USB, Machine, jetson, pi4, pi5, uvc

from edgecam import cli
from edgecam.base import options
from edgecam.runtime import pipeline
from edgecam.runtime.cameras import cameras
from edgecam.sources import devices
from edgecam.sources.base import Orientation, Reconnect
from edgecam.sources.capture import V4L2Source

C920_BY_ID = "v4l/by-id/usb-046d_HD_Pro_Webcam_C920_8D8A6A2F-video-index0"


def board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nodes: dict) -> Machine:
    machine = Machine(tmp_path, nodes)
    machine.install(monkeypatch)
    return machine


def listing(machine: Machine) -> list[tuple[str, str, str]]:
    return [(c.uri, c.name, c.note) for c in devices.v4l2_cameras(machine.sysfs, machine.dev)]


def test_pi4_lists_its_camera_once_and_no_isp_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bcm2835-isp's capture nodes (video14, 15, 21, 22) only deliver what libcamera feeds them."""
    machine = board(tmp_path, monkeypatch, pi4())
    assert listing(machine) == [
        (f"v4l2://{machine.dev}/video0", "unicam", "raw sensor node of a Pi camera: use picam:N"),
        ("usb:2", "HD Pro Webcam C920", "")]


def test_pi5_lists_no_pispbe_node_and_its_receiver_once(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    machine = board(tmp_path, monkeypatch, pi5())
    assert listing(machine) == [
        (f"v4l2://{machine.dev}/video0", "rp1-cfe", "raw sensor node of a Pi camera: use picam:N"),
        ("usb:8", "HD Pro Webcam C920", "")]


def test_jetson_csi_nodes_say_csi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tegra-video's nodes deliver raw Bayer data: csi://N reads the sensor through Argus."""
    machine = board(tmp_path, monkeypatch, jetson())
    note = "raw Bayer sensor node: csi:// reads it through the Argus ISP"
    assert listing(machine) == [("csi://0", "vi-output, imx219 9-0010", note),
                                ("csi://1", "vi-output, imx219 10-0010", note),
                                ("usb:2", "HD Pro Webcam C920", "")]


def test_sources_prints_the_stable_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    machine = board(tmp_path, monkeypatch, uvc(0, *JETSON_USB))
    monkeypatch.setattr(devices, "v4l2_cameras",
                        functools.partial(devices.v4l2_cameras, machine.sysfs, machine.dev))
    assert cli.main(["sources"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"usb:0  HD Pro Webcam C920  {machine.dev}/video0  [YUYV, H264, MJPG]")
    assert line.endswith(f"stable: v4l2://{machine.dev / C920_BY_ID}")


def test_sources_prints_camera_tables_a_config_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    machine = board(tmp_path, monkeypatch, jetson())
    monkeypatch.setattr(devices, "v4l2_cameras",
                        functools.partial(devices.v4l2_cameras, machine.sysfs, machine.dev))
    assert cli.main(["sources"]) == 0
    block = capsys.readouterr().out.split("one [[camera]] table per camera to classify\n")[1]
    config = tomllib.loads(block)
    settings = options.resolve(pipeline.run_options(), {}, config)
    assert [(c.name, c.uri) for c in cameras(settings)] == [
        ("csi0", "csi://0"), ("csi1", "csi://1"), ("usb2", f"v4l2://{machine.dev / C920_BY_ID}")]


def webcam(machine: Machine, number: int, read_timeout: float = 0.5) -> V4L2Source:
    return V4L2Source(f"usb:{number}", str(machine.dev / f"video{number}"), (640, 480), 30.0, "MJPG",
                      "default", Reconnect(give_up=20, read_timeout=read_timeout), Orientation())


def test_a_replugged_webcam_is_found_under_its_new_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The webcam drops off the bus and re-enumerates while edgecam still holds its old node: it
    comes back as video2. The source reopens it through its by-id link."""
    machine = board(tmp_path, monkeypatch, uvc(0, *PI4_USB))
    source = webcam(machine, 0)
    source.open()
    try:
        assert source.read() is not None
        with caplog.at_level(logging.WARNING, logger="edgecam.sources.base"):
            machine.unplug(0)
            machine.unplug(1)
            wait_for(lambda: caplog.records, 20, "the outage warning")
            for number, node in uvc(2, *PI4_USB).items():
                machine.plug(number, node)
            wait_for(lambda: source.reconnects == 1, 20, "the webcam to resume")
        assert source.read() is not None
    finally:
        source.close()
    assert machine.opened == [str(tmp_path / "dev/video0"), str(tmp_path / "dev/video2")]
    assert len(caplog.records) == 1


def test_v4l2_read_timeout_reaches_opencv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenCV's V4L2 backend waits OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT whole seconds for a frame
    (10 unless set), read once per process, at the first read."""
    monkeypatch.setenv("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", "")
    monkeypatch.delenv("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT")  # restored as absent afterwards
    machine = board(tmp_path, monkeypatch, uvc(0, *PI4_USB))
    with webcam(machine, 0, read_timeout=2.5) as source:
        assert source.read() is not None
    assert machine.select_timeout == "3"


def test_a_users_own_select_timeout_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", "7")
    machine = board(tmp_path, monkeypatch, uvc(0, *PI4_USB))
    with webcam(machine, 0) as source:
        assert source.read() is not None
    assert machine.select_timeout == "7"
