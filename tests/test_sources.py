"""Sources without a network: the newest frame under a slow network, URIs and their one-line
errors, the `edgecam sources` listing, the source options."""
from __future__ import annotations

import itertools
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import edgecam
from test_errors import assert_one_line_error

from edgecam.base.errors import SourceError, UsageError
from edgecam.base.options import resolve
from edgecam.base.preprocess import center_crop_resize
from edgecam.runtime.prefetch import Prefetcher, StageClock
from edgecam.sources import OPTIONS, open_source
from edgecam.sources.base import LiveSource
from edgecam.sources.demo import DemoSource
from edgecam.sources.devices import v4l2_cameras

NETWORK_SECONDS = 0.2  # a network five times slower than the camera


def test_a_slow_network_always_gets_the_newest_frame_and_memory_stays_flat() -> None:
    """A 30 fps camera feeding a network that takes 200 ms: each frame handed to the network was
    captured less than two frame intervals before, the rest are dropped (counted), never queued."""
    source = DemoSource(fps=30.0, width=640, height=360)
    prefetcher = Prefetcher(source, lambda image: center_crop_resize(image, 224), StageClock())
    ages: list[float] = []
    captured: list[tuple[int, float]] = []  # index and capture time of each classified frame
    source.open()
    prefetcher.start()
    try:
        for step in range(40):
            if step == 8:  # warmed up: the clip's photos are loaded, the buffers allocated
                tracemalloc.start()
                warm = tracemalloc.get_traced_memory()[0]
            item = prefetcher.get()
            assert item is not None
            ages.append(time.time() - item.frame.timestamp)
            captured.append((item.frame.index, item.frame.timestamp))
            time.sleep(NETWORK_SECONDS)  # the network at work; the camera keeps capturing
        grown = tracemalloc.get_traced_memory()[0] - warm
    finally:
        tracemalloc.stop()
        prefetcher.stop()
        prefetcher.join()
        source.close()
    # the camera's real interval (a loaded machine may render the clip slower than 30 fps)
    interval = max(1 / 30, statistics.median((tb - ta) / (ib - ia) for (ia, ta), (ib, tb)
                                              in itertools.pairwise(captured)))
    shown = f"ages {[round(a * 1000) for a in ages]} ms, frame interval {interval * 1000:.0f} ms"
    # Fresh: under two frame intervals old. A box shared by many jobs can hold a thread back for a
    # few tens of ms now and then, hence 90%, and a cap for every frame far below what a queue
    # would build up (it would add 170 ms of backlog per classified frame: seconds by the end).
    assert sorted(ages)[int(0.9 * len(ages))] < 2 * interval, shown
    assert max(ages) < 8 * interval, shown
    assert source.dropped + prefetcher.dropped >= 40 * 3  # about 5 captured per classified frame
    frame_bytes = 640 * 360 * 3
    assert grown < 8 * frame_bytes, f"memory grew by {grown / 1e6:.1f} MB"


@pytest.mark.parametrize(("uri", "exit_code", "words"), [
    ("usb:7", 1, ["no camera /dev/video7 (usb:7)", "no cameras"]),
    ("v4l2:///dev/video9", 1, ["no camera /dev/video9"]),
    ("usb:zero", 2, ["malformed URI", "usb:N"]),
    ("csi://front", 2, ["malformed URI", "csi://N"]),
    ("picam:-1", 2, ["malformed URI", "picam:N"]),
    ("rtsp://", 2, ["malformed URI", "rtsp://HOST"]),
    ("v4l2://video0", 2, ["malformed URI", "v4l2:///dev/videoN"]),
    ("smb://nas/cam", 2, ["unsupported scheme 'smb://'", "rtsp://"]),
    ("csi://0", 1, ["needs OpenCV built with GStreamer"]),
])
def test_bad_uris_are_one_clear_line(uri: str, exit_code: int, words: list[str]) -> None:
    assert_one_line_error(edgecam("run", "--source", uri, "--headless", "--frames", "1"),
                          exit_code, *words)


def error_as_nobody(call: Callable[[], object]) -> str:
    """The SourceError line call() raises when run by an ordinary user (a forked child that drops
    root, which may open anything)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exec, so nothing but the call itself runs as nobody
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                call()
                message = "no error"
            except SourceError as e:
                message = str(e)
            os.write(write, message.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    return message


def test_permission_denied_names_the_video_group(tmp_path: Path) -> None:
    node = Path("/dev/shm") / f"edgecam-test-video-{os.getpid()}"
    node.write_bytes(b"")
    node.chmod(0o600)
    try:
        line = error_as_nobody(lambda: open_source(f"v4l2://{node}"))
    finally:
        node.unlink()
    assert line.startswith(f"permission denied on {node}: add your user to the video group"), line


def test_sources_without_cameras() -> None:
    result = edgecam("sources", check=True)
    assert result.stdout.startswith("no cameras found")
    assert edgecam("sources", "--json", check=True).stdout.strip() == "[]"


def test_listing_reads_names_from_sysfs(tmp_path: Path) -> None:
    """Nodes whose capabilities cannot be asked (here: files, not devices) are listed with a note;
    nodes that vanished in between are not."""
    sysfs, dev = tmp_path / "video4linux", tmp_path / "dev"
    for number, name in ((10, "USB Camera: HD Webcam"), (2, "Integrated Camera"), (3, "gone")):
        (sysfs / f"video{number}").mkdir(parents=True)
        (sysfs / f"video{number}" / "name").write_text(name + "\n")
    dev.mkdir()
    (dev / "video2").write_bytes(b"")
    (dev / "video10").write_bytes(b"")
    listed = v4l2_cameras(sysfs, dev)
    assert [(c.uri, c.name) for c in listed] == [
        (f"v4l2://{dev}/video2", "Integrated Camera"),
        (f"v4l2://{dev}/video10", "USB Camera: HD Webcam")]
    assert all(c.note.startswith("cannot be queried") for c in listed)


def test_source_options_parse_and_reach_the_sources() -> None:
    settings = resolve(OPTIONS, {"camera_size": "640x480", "rotation": "90", "vflip": True,
                                 "read_timeout": "2", "reconnect_timeout": "0"})
    assert settings.camera_size == (640, 480) and settings.rotation == 90
    source = open_source("rtsp://127.0.0.1:1/x", settings)
    assert isinstance(source, LiveSource)
    assert (source.reconnect.read_timeout, source.reconnect.give_up) == (2.0, 0.0)
    assert (source.orientation.rotation, source.orientation.vflip) == (90, True)
    for key, bad in (("camera_size", "640"), ("rotation", "45"), ("fourcc", "MJPEG"),
                     ("read_timeout", "0"), ("autofocus", "auto")):
        with pytest.raises(UsageError, match=key.replace("_", "-")):
            resolve(OPTIONS, {key: bad})


def test_demo_keeps_naming_its_photos() -> None:
    with open_source("demo") as source:
        frame = source.read()
    assert frame is not None and frame.source.startswith("demo/")
