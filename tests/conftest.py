"""Shared fixtures: one model cache per test session (models are built once), the CLI as a user
runs it (a subprocess), real sample photos, and `require`: the one way a test says which outside
program (or module) it needs. Also the fixtures several test modules use: a model cache of a test's
own, a tiny disk to fill, and RTSP and HTTP stream servers."""
from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn, TypeVar

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# CI sets this: a test whose program is missing there fails instead of skipping (never silently).
REQUIRE_TOOLS = "EDGECAM_TESTS_REQUIRE_TOOLS"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3, for modules that come from apt (python3-gi)


def needs(what: str, package: str, *, pip: bool = False) -> NoReturn:
    """Stop a test (fixture, module) that cannot run here: skip it with a reason naming the
    package that provides `what`, e.g. "needs ffmpeg (Debian package: ffmpeg)". With
    EDGECAM_TESTS_REQUIRE_TOOLS=1 (CI, which installs everything) the test fails instead."""
    message = f"needs {what} ({'pip' if pip else 'Debian'} package: {package})"
    if os.environ.get(REQUIRE_TOOLS) == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require(program: str, package: str) -> str:
    """The path of `program` (a name looked up on PATH, or an absolute path); the test skips (CI:
    fails) when it is missing. `package` is the Debian package that installs it."""
    found = shutil.which(program)
    if found is None:
        needs(program, package)
    return found


@functools.cache
def runs_in(python: str, code: str) -> bool:
    """Whether `python -c code` exits 0 (asked once per session)."""
    return subprocess.run([python, "-c", code], capture_output=True, timeout=120,
                          check=False).returncode == 0


def require_module(module: str, package: str, *, pip: bool = False,
                   python: str | None = None) -> ModuleType | None:
    """`module` imported here and returned; or, with `python` (Debian's python3), a check that
    that interpreter imports it. The test skips (CI: fails) when it cannot; `package` is the
    Debian package that installs it (the pip package with pip=True)."""
    if python is None:
        try:
            return importlib.import_module(module)
        except ImportError:
            needs(f"the Python module {module}", package, pip=pip)
    require(python, "python3")
    if not runs_in(python, f"import {module}"):
        needs(f"the Python module {module} in {python}", package, pip=pip)
    return None


@functools.cache
def encodes(fourcc: str, suffix: str) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        writer = cv2.VideoWriter(str(Path(folder) / f"probe{suffix}"), cv2.VideoWriter.fourcc(*fourcc),
                                 30, (64, 64))
        opened = writer.isOpened()
        writer.release()
    return opened


def require_encoder(fourcc: str, suffix: str = ".mp4") -> None:
    """OpenCV's VideoWriter can write `fourcc` video (the opencv-python wheel's own FFmpeg)."""
    if not encodes(fourcc, suffix):
        needs(f"OpenCV's {fourcc} video encoder ({suffix})", "opencv-python", pip=True)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EDGECAM_CACHE for the whole session, so each model is built once and reused."""
    cache = Path(os.environ.get("EDGECAM_TEST_CACHE") or tmp_path_factory.mktemp("model-cache"))
    os.environ["EDGECAM_CACHE"] = str(cache)
    # The suite runs onnxruntime unless a test says otherwise: the default, auto, measures every
    # installed backend on first use (test_auto shows that).
    os.environ["EDGECAM_BACKEND"] = "onnx"
    return cache


def edgecam(*args: str, timeout: float = 300, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess, as a user would (no display unless the test sets one)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    full_env.update(env or {})
    result = subprocess.run([sys.executable, "-m", "edgecam", *args], capture_output=True, text=True,
                            timeout=timeout, env=full_env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"edgecam {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 90, what: str = "",
             interval: float = 0.1) -> T:
    """Poll `condition` until it returns something true, and return that; fail after `timeout`
    seconds. Tests wait for events this way, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def photo(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    return image[0] if isinstance(image, tuple) else image


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """skimage's real photos written as image files: chelsea.png (a cat), coffee.jpg, rocket.jpg."""
    folder = tmp_path_factory.mktemp("photos")
    files = {}
    for name, suffix in (("chelsea", ".png"), ("coffee", ".jpg"), ("rocket", ".jpg")):
        path = folder / f"{name}{suffix}"
        cv2.imwrite(str(path), cv2.cvtColor(photo(name), cv2.COLOR_RGB2BGR))
        files[name] = path
    return files


# --- a model cache of the test's own (test_faults, test_faults_signals) ---------------------------

MODEL = "efficientnet_lite0"
MODEL_FILES = (f"{MODEL}.onnx", f"{MODEL}.onnx.json")


def copy_cache(model_cache: Path, cache: Path) -> Path:
    """`cache` holding a copy of the session's built model (built there first if needed)."""
    edgecam("models", "build", MODEL, check=True)
    cache.mkdir()
    for name in MODEL_FILES:
        shutil.copy(model_cache / name, cache / name)
    return cache


@pytest.fixture
def cache(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """EDGECAM_CACHE for this test only: a copy of the built model, free to corrupt."""
    monkeypatch.setenv("EDGECAM_CACHE", str(copy_cache(model_cache, tmp_path / "cache")))
    return tmp_path / "cache"


# --- a tiny disk to fill (test_logs, test_faults) -------------------------------------------------

@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs of our own mounted on `folder` (skips where mounting needs a root this is not)."""
    folder.mkdir()
    require("mount", "mount")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs of our own, to fill up for real."""
    with tmpfs(tmp_path / "disk", "size=256k") as disk:
        yield disk


@pytest.fixture
def own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model store of the test's own: what it stores (random test weights) must not reach the
    session's models."""
    monkeypatch.setenv("EDGECAM_CACHE", str(tmp_path / "store"))


# --- stream servers on loopback (test_streams, test_faults) ---------------------------------------

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
    from edgecam.base.samples import DemoClip

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
        from edgecam.bench.pipeline import free_port

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


# --- a decompression bomb (test_image_bombs, test_train) --------------------------------------------

def jpeg_bomb(path: Path, side: int = 60_000) -> Path:
    """A real small JPEG whose frame header is rewritten to claim side×side pixels."""
    _, encoded = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(encoded.tobytes())
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))
    return path


# A real mosquitto (tests of the MQTT output), with a password: USER / PASSWORD.
USER, PASSWORD = "cam", "p@ss word"


@pytest.fixture
def broker(tmp_path: Path):
    """A mosquitto on a free loopback port that only lets USER in; yields the port."""
    require("mosquitto", "mosquitto")
    require("mosquitto_passwd", "mosquitto")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD], check=True,
                   capture_output=True)
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
                      "persistence false\nuser root\n")
    server = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            assert server.poll() is None, "mosquitto exited"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_for(listening, 20, "mosquitto to listen")
        yield port
    finally:
        server.terminate()
        server.wait(10)


class Subscriber:
    """Collects every message under a filter, retained ones included."""

    def __init__(self, port: int, topics: str = "#") -> None:
        self.messages: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        paho = require_module("paho.mqtt.client", "paho-mqtt", pip=True)
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.username_pw_set(USER, PASSWORD)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *_: c.subscribe(topics, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(20), "the subscription was not acknowledged"

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))

    def on(self, topic: str) -> list[str]:
        with self.lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
