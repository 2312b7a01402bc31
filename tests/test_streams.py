"""Network streams for real: a GStreamer RTSP server and an FFmpeg HTTP MJPEG server on loopback,
streaming a clip rendered from real photos. edgecam classifies them, survives the server being
killed and restarted (one warning, frames before and after the gap), counts a server that hangs
without closing as stopped, and exits 1 once the stream stays away past --reconnect-timeout."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest
from conftest import SYSTEM_PYTHON, needs, read_jsonl, require, require_module, runs_in, wait_for

from edgecam.base.errors import SourceError
from edgecam.base.options import resolve
from edgecam.base.samples import DemoClip
from edgecam.bench.pipeline import free_port
from edgecam.sources import OPTIONS, open_source

CLIP_SIZE = (640, 360)  # SYSTEM_PYTHON runs the RTSP server: python3-gi and GStreamer come from apt
# What the RTSP server's pipeline (below) is made of, and the Debian package of each element.
RTSP_ELEMENTS = {"filesrc": "libgstreamer1.0-0", "qtdemux": "gstreamer1.0-plugins-good",
                 "h264parse": "gstreamer1.0-plugins-bad", "rtph264pay": "gstreamer1.0-plugins-good"}
HAS_ELEMENT = """
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
sys.exit(Gst.ElementFactory.find({!r}) is None)
"""

RTSP_SERVER = """
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

port, clip = sys.argv[1], sys.argv[2]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
# The H.264 of the file as it is, paced by the server's clock: a camera's stream, with no encoder.
factory.set_launch(f"( filesrc location={clip} ! qtdemux ! h264parse ! "
                   "rtph264pay name=pay0 pt=96 config-interval=1 )")
server.get_mount_points().add_factory("/clip", factory)
if not server.attach(None):
    sys.exit(f"cannot listen on port {port}")
GLib.MainLoop().run()
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of the demo clip (real photos) at 30 fps, H.264 in MP4, as a camera would stream it."""
    require("ffmpeg", "ffmpeg")
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    demo = DemoClip(*CLIP_SIZE)
    encoder = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-s", "{}x{}".format(*CLIP_SIZE), "-r", "30", "-i", "-", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", str(path)],
        stdin=subprocess.PIPE)
    assert encoder.stdin is not None
    for index in range(len(demo)):
        encoder.stdin.write(demo.frame(index).tobytes())
    encoder.stdin.close()
    assert encoder.wait(timeout=120) == 0
    return path


def serving(port: int) -> bool:
    """Whether a server on 127.0.0.1:port listens or already has its client (edgecam, reconnecting,
    may be quicker than this poll), read from /proc: a test connection would be taken as the one
    client FFmpeg's HTTP server serves."""
    wanted = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] in ("0A", "01"):  # LISTEN, ESTABLISHED
            return True
    return False


class Server:
    """A stream server process that a test can start, freeze, kill and start again."""

    def __init__(self, kind: str, clip: Path, folder: Path) -> None:
        self.kind, self.clip, self.port = kind, clip, free_port()
        self.script = folder / "rtsp_server.py"
        self.script.write_text(RTSP_SERVER)
        self.process: subprocess.Popen | None = None
        path = "clip" if kind == "rtsp" else "cam.mjpg"
        self.uri = f"{kind}://127.0.0.1:{self.port}/{path}"

    def command(self) -> list[str]:
        if self.kind == "rtsp":
            return [SYSTEM_PYTHON, str(self.script), str(self.port), str(self.clip)]
        # One client per process (-listen 1): the test starts it again after a client left.
        return ["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-re", "-stream_loop", "-1",
                "-i", str(self.clip), "-an", "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg",
                "-listen", "1", self.uri]

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL)
        wait_for(lambda: serving(self.port) or self.process.poll() is not None, 30,
                 f"{self.kind} server on port {self.port}")
        assert self.process.poll() is None, f"{self.kind} server exited {self.process.returncode}"

    def freeze(self) -> None:
        """Keep the connection open and send nothing: a hung camera or server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def require_rtsp_server() -> None:
    """Debian's python3 with gi, GStreamer's RTSP server and the elements of its pipeline."""
    require_module("gi", "python3-gi", python=SYSTEM_PYTHON)
    require_module("gi.repository.GstRtspServer", "gir1.2-gst-rtsp-server-1.0", python=SYSTEM_PYTHON)
    for element, package in RTSP_ELEMENTS.items():
        if not runs_in(SYSTEM_PYTHON, HAS_ELEMENT.format(element)):
            needs(f"the GStreamer element {element}", package)


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    if request.param == "rtsp":
        require_rtsp_server()
    require("ffmpeg", "ffmpeg")  # makes the clip, and is the HTTP server
    running = Server(request.param, request.getfixturevalue("clip"), tmp_path)
    running.start()
    yield running
    running.kill()


def capture_time(record: dict) -> float:
    return datetime.fromisoformat(record["time"]).timestamp()


@pytest.mark.parametrize("server", ["rtsp", "http"], indirect=True)
def test_run_survives_the_server_restarting(server: Server, tmp_path: Path) -> None:
    """`edgecam run` classifies the stream, keeps running while the server is down (one warning),
    resumes when it is back. The RTSP run then stops on SIGTERM (exit 0); the HTTP one loses its
    server for good and gives up after --reconnect-timeout with exit status 1."""
    log, stderr = tmp_path / "run.jsonl", tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "edgecam", "run", "--source", server.uri, "--headless",
             "--log", str(log), "--read-timeout", "3", "--reconnect-timeout", "20"],
            stdout=subprocess.DEVNULL, stderr=err,
            env={k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")})
    try:
        records = lambda: read_jsonl(log) if log.exists() else []  # noqa: E731
        warnings = lambda: [l for l in stderr.read_text().splitlines() if l.startswith("WARNING")]  # noqa: E731
        wait_for(lambda: len(records()) >= 5 or run.poll() is not None, 120, "frames before the gap")
        killed = time.time()
        server.kill()
        wait_for(lambda: warnings() or run.poll() is not None, 60, "the warning")
        assert run.poll() is None, stderr.read_text()
        server.start()
        restarted = time.time()
        wait_for(lambda: sum(capture_time(r) > restarted for r in records()) >= 5
                 or run.poll() is not None, 90, "frames after the gap")
        assert run.poll() is None, stderr.read_text()
        if server.kind == "rtsp":
            run.send_signal(signal.SIGTERM)
            assert run.wait(timeout=30) == 0, stderr.read_text()
        else:
            server.kill()  # for good: the run must give up by itself
            assert run.wait(timeout=90) == 1, stderr.read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    text = stderr.read_text()
    # edgecam's own lines only: no traceback, no FFmpeg or OpenCV chatter at each reconnect attempt
    assert all(l.split(" ", 1)[0] in ("INFO", "WARNING", "edgecam:") for l in text.splitlines()), text
    before = [r for r in records() if capture_time(r) < killed]
    after = [r for r in records() if capture_time(r) > restarted]
    assert len(before) >= 5 and len(after) >= 5, (len(before), len(after))
    assert all(r["source"] == server.uri for r in records())
    # frames keep their numbering across the gap, and what they show is still recognised
    assert after[0]["frame"] > before[-1]["frame"]
    labels = {r["top"][0]["label"] for r in records()}
    assert labels & {"tabby", "tiger cat", "Egyptian cat", "espresso", "cup", "coffee mug"}, labels
    outage = [l for l in text.splitlines() if l.startswith("WARNING") and server.uri in l]
    expected = 1 if server.kind == "rtsp" else 2  # the HTTP run lost its server twice
    assert len(outage) == expected, text
    assert "resumed after" in text
    if server.kind == "http":
        errors = [l for l in text.splitlines() if l.startswith("edgecam: error:")]
        assert len(errors) == 1 and "delivered no frame for 20 s" in errors[0], text


def read_within(source, seconds: float):
    """source.read(), failing the test instead of hanging it."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(source.read).result(timeout=seconds)


@pytest.mark.parametrize("server", ["http"], indirect=True)
def test_a_stream_that_hangs_counts_as_stopped(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """A server that keeps the connection open but sends nothing is a stopped stream after
    --read-timeout: one warning, then reconnecting; once its replacement is up, frames flow."""
    settings = resolve(OPTIONS, {"read_timeout": "1", "reconnect_timeout": "60"})
    source = open_source(server.uri, settings, 224)
    caplog.set_level(logging.INFO, logger="edgecam")
    source.open()
    try:
        first = read_within(source, 30)
        assert first is not None and first.image.shape == (CLIP_SIZE[1], CLIP_SIZE[0], 3)
        server.freeze()
        wait_for(lambda: any(r.levelno == logging.WARNING for r in caplog.records), 30,
                 "the stream to count as stopped")
        server.kill()
        server.start()
        restarted = time.time()
        frame = read_within(source, 60)
        while frame is not None and frame.timestamp < restarted:  # one read before the freeze
            frame = read_within(source, 60)
        assert frame is not None and frame.index > first.index
    finally:
        source.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and server.uri in warnings[0], warnings
    assert source.reconnects == 1


@pytest.mark.parametrize("server", ["http"], indirect=True)
def test_give_up_is_one_clear_error(server: Server) -> None:
    settings = resolve(OPTIONS, {"read_timeout": "1", "reconnect_timeout": "2"})
    source = open_source(server.uri, settings, 224)
    source.open()
    try:
        assert read_within(source, 30) is not None
        server.kill()
        started = time.monotonic()
        with pytest.raises(SourceError, match="delivered no frame for 2 s") as error:
            while True:
                read_within(source, 60)
        assert "\n" not in str(error.value)
        assert time.monotonic() - started < 30  # the 2 s, the read timeout and one attempt
    finally:
        source.close()


def test_a_stream_that_is_not_there_fails_at_start(tmp_path: Path) -> None:
    from conftest import edgecam
    from test_errors import assert_one_line_error

    uri = f"rtsp://127.0.0.1:{free_port()}/nothing"
    assert_one_line_error(edgecam("run", "--source", uri, "--headless", "--read-timeout", "2"), 1,
                          uri, "cannot be opened")
