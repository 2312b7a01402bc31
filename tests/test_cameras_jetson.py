"""Jetson CSI cameras (csi://N) and gst: pipelines against a stand-in for an OpenCV built with
GStreamer (tests/fakes/gstreamer.py), as JetPack 4 (OpenCV 4.1.1), JetPack 5 (4.5.4) and a current
release build it: timeouts where the backend takes them, a sink that never waits for the pipeline
clock, and the mounting turned by nvvidconv instead of the CPU."""
from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import pytest
from fakes.gstreamer import GStreamerOpenCV, forget

from edgecam.base.options import resolve
from edgecam.sources import OPTIONS, open_source
from edgecam.sources.base import Orientation
from edgecam.sources.capture import flip_method

PIPELINE = "gst:videotestsrc is-live=true ! video/x-raw, width=320, height=240"


@pytest.fixture
def opencv(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], GStreamerOpenCV]]:
    def build(version: str) -> GStreamerOpenCV:
        fake = GStreamerOpenCV(version)
        fake.install(monkeypatch)
        return fake

    yield build
    forget()


def test_gst_pipelines_get_timeouts_and_a_sink_that_does_not_sync(opencv) -> None:
    """OpenCV's GStreamer backend waits 30 s for a stalled pipeline unless told otherwise, and an
    appsink that syncs to the clock holds each frame back to its timestamp."""
    fake = opencv("4.10.0")
    with open_source(PIPELINE, resolve(OPTIONS, {"read_timeout": "2"})) as source:
        assert source.read() is not None
    assert fake.params == [{cv2.CAP_PROP_OPEN_TIMEOUT_MSEC: 2000, cv2.CAP_PROP_READ_TIMEOUT_MSEC: 2000}]
    assert fake.pipelines[0].endswith("! appsink drop=true max-buffers=1 sync=false")


@pytest.mark.parametrize("version", ["4.5.4", "4.1.1"])  # JetPack 5, JetPack 4
def test_older_opencv_opens_without_timeouts(opencv, version: str) -> None:
    """4.5.4's GStreamer backend refuses parameters it does not know; 4.1.1 has no such overload."""
    fake = opencv(version)
    with open_source("csi://0", resolve(OPTIONS, {})) as source:
        assert source.read() is not None
    assert fake.params == [{}]


def nvvidconv(image: np.ndarray, method: int) -> np.ndarray:
    """nvvidconv's flip-method, as its documentation names them."""
    return {0: lambda i: i, 1: np.rot90, 2: lambda i: np.rot90(i, 2), 3: lambda i: np.rot90(i, -1),
            4: np.fliplr, 5: lambda i: np.rot90(i, 2).swapaxes(0, 1),  # upper-right-diagonal
            6: np.flipud, 7: lambda i: i.swapaxes(0, 1)}[method](image)  # upper-left-diagonal


@pytest.mark.parametrize(("rotation", "hflip", "vflip"),
                         list(itertools.product((0, 90, 180, 270), (False, True), (False, True))))
def test_flip_method_turns_the_picture_as_the_cpu_would(rotation: int, hflip: bool, vflip: bool) -> None:
    picture = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    orientation = Orientation(rotation, hflip, vflip)
    assert np.array_equal(nvvidconv(picture, flip_method(orientation)), orientation.apply(picture))


def test_csi_mounting_is_turned_by_nvvidconv(opencv) -> None:
    fake = opencv("4.10.0")
    source = open_source("csi://1", resolve(OPTIONS, {"rotation": "90", "hflip": True}))
    assert not source.orientation  # nothing left to the CPU
    with source:
        frame = source.read()
    assert frame.image.shape == (240, 320, 3)
    pipeline = fake.pipelines[0]
    assert re.search(r"nvarguscamerasrc sensor-id=1 .* nvvidconv flip-method=5 ", pipeline), pipeline
    assert pipeline.endswith("appsink drop=true max-buffers=1 sync=false")
