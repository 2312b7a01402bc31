"""The sd_notify protocol against a real Unix datagram socket: the socket itself, the watchdog
settings, and `edgecam run` as systemd runs it (READY, STATUS, WATCHDOG, STOPPING, SIGTERM), also
with a camera that stops delivering."""
from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import cv2
import pytest
from conftest import ROOT, photo, read_jsonl

from edgecam.service.journal import OneLineFormatter
from edgecam.sinks.systemd import NotifySocket, watchdog_interval

CONFIG = ROOT / "systemd" / "edgecam.toml"
WATCHDOG_USEC = 1_000_000  # pings every quarter second


class Manager:
    """The service manager's end of $NOTIFY_SOCKET: a bound datagram socket that keeps every
    assignment it receives, in order."""

    def __init__(self, address: str) -> None:
        self.address = address  # what goes into NOTIFY_SOCKET
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind("\0" + address[1:] if address.startswith("@") else address)
        self.received: list[str] = []

    def receive(self, timeout: float) -> list[str]:
        """The assignments of the next datagram, or [] when none came within `timeout`."""
        self.socket.settimeout(timeout)
        try:
            message = self.socket.recv(4096).decode()
        except TimeoutError:
            return []
        assignments = message.split("\n")
        self.received += assignments
        return assignments

    def wait_for(self, wanted: str, count: int = 1, timeout: float = 120.0) -> None:
        """Receive until `wanted` has arrived `count` times in all."""
        deadline = time.monotonic() + timeout
        while self.received.count(wanted) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not self.receive(left):
                raise AssertionError(f"{wanted} #{count} did not arrive; got {self.received}")

    def drain(self, quiet: float = 0.5) -> None:
        while self.receive(quiet):
            pass

    def first(self, prefix: str) -> int:
        return next(i for i, a in enumerate(self.received) if a.startswith(prefix))

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def manager(tmp_path: Path) -> Manager:
    result = Manager(f"@edgecam-test-{uuid.uuid4().hex}")
    yield result
    result.close()


def spawn_run(manager: Manager, stderr: Path, *args: str) -> subprocess.Popen:
    """`edgecam run` with the service config, as systemd starts it (with a watchdog); its
    stderr goes to a file, like the journal (a pipe nobody reads could fill up and block it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(NOTIFY_SOCKET=manager.address, WATCHDOG_USEC=str(WATCHDOG_USEC))
    with stderr.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "edgecam", "run", "--config", str(CONFIG), *args],
            env=env, stdout=subprocess.DEVNULL, stderr=err)


def test_notify_socket_reaches_path_and_abstract_sockets(tmp_path: Path) -> None:
    for address in (str(tmp_path / "notify"), f"@edgecam-test-{uuid.uuid4().hex}"):
        manager = Manager(address)
        notify = NotifySocket(address)
        assert notify.send("READY=1", "STATUS=ok")
        assert manager.receive(5) == ["READY=1", "STATUS=ok"]
        notify.close()
        manager.close()


def test_notify_socket_survives_a_missing_manager(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    notify = NotifySocket(str(tmp_path / "nobody-listens"))
    assert not notify.send("WATCHDOG=1")
    assert not notify.send("WATCHDOG=1")
    assert len(caplog.records) == 1, "a failing manager is reported once"
    with pytest.raises(ValueError, match="neither a path nor an @abstract name"):
        NotifySocket("vsock:2:1234")


def test_watchdog_interval_honours_usec_and_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "2000000"}) == 0.5
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}) == 0.5
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_log_records_stay_on_one_line() -> None:
    try:
        raise RuntimeError("camera gone\nsecond line")
    except RuntimeError:
        record = logging.getLogger("edgecam.test").makeRecord(
            "edgecam.test", logging.ERROR, __file__, 1, "frame %d failed", (7,), sys.exc_info())
    text = OneLineFormatter().format(record)
    assert "\n" not in text and text.startswith("ERROR edgecam.test: frame 7 failed | Traceback")
    assert "RuntimeError: camera gone | second line" in text
    assert OneLineFormatter(journal=True).format(record).startswith("<3>ERROR")


def test_journal_prefix_only_when_stderr_is_the_journal(tmp_path: Path) -> None:
    """systemd's JOURNAL_STREAM names the stream it connected: only then the <N> prefix."""
    program = ("import logging; from edgecam.service import journal; "
               "logging.basicConfig(level='INFO', handlers=[journal.handler()]); "
               "logging.getLogger('edgecam').warning('disk full')")
    stderr = tmp_path / "stderr"
    with stderr.open("w") as f:
        stat = os.fstat(f.fileno())
        for stream, expected in ((f"{stat.st_dev}:{stat.st_ino}", "<4>WARNING edgecam: disk full"),
                                 ("1:2", "WARNING edgecam: disk full")):
            f.truncate(0)
            f.seek(0)
            subprocess.run([sys.executable, "-c", program], stderr=f, check=True,
                           env={**os.environ, "JOURNAL_STREAM": stream})
            assert stderr.read_text().splitlines() == [expected]


@pytest.mark.slow
def test_run_notifies_ready_status_watchdog_stopping_and_exits_on_sigterm(
        manager: Manager, tmp_path: Path) -> None:
    log = tmp_path / "predictions.jsonl"
    stderr = tmp_path / "stderr"
    process = spawn_run(manager, stderr, "--source", "demo", "--headless", "--log", str(log))
    try:
        manager.wait_for("READY=1")
        manager.wait_for("WATCHDOG=1", count=3)  # pinged on, frame after frame
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    manager.drain()
    assert code == 0, stderr.read_text()
    assert took < 2.0, f"SIGTERM took {took:.2f} s to end the run"
    statuses = [a for a in manager.received if a.startswith("STATUS=") and "FPS" in a]
    assert statuses, manager.received
    pings = [i for i, a in enumerate(manager.received) if a == "WATCHDOG=1"]
    assert (manager.first("READY=1") < manager.first(statuses[0]) < pings[0] < pings[-1]
            < manager.first("STOPPING=1")), manager.received
    records = read_jsonl(log)  # every line parses: the log was flushed, nothing cut
    assert records
    labels = {top["label"] for record in records for top in record["top"][:1]}
    assert any(status.split("top-1: ")[1].rsplit(" (", 1)[0] in labels for status in statuses)


class FifoCamera(threading.Thread):
    """A live camera on a named pipe: YUV4MPEG2 frames of a real photo, a few per second, until
    stall() (the cable is pulled but the device stays open), then EOF at close()."""

    def __init__(self, path: Path, fps: float = 10.0) -> None:
        super().__init__(daemon=True)
        os.mkfifo(path)
        # O_RDWR opens without waiting for the reader; writes wait for room in the pipe.
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        image = cv2.resize(photo("chelsea"), (224, 224), interpolation=cv2.INTER_AREA)
        self.frame = b"FRAME\n" + cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420).tobytes()
        self.period = 1 / fps
        self.stalled = threading.Event()
        self.sent = 0

    def run(self) -> None:
        self._write(b"YUV4MPEG2 W224 H224 F10:1 Ip A1:1 C420jpeg\n")
        while not self.stalled.is_set():
            self._write(self.frame)
            self.sent += 1
            self.stalled.wait(self.period)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.stalled.is_set():
            if select.select([], [self.fd], [], 0.1)[1]:
                view = view[os.write(self.fd, view):]

    def stall(self) -> None:
        self.stalled.set()
        self.join()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@pytest.mark.slow
def test_a_source_that_stops_delivering_stops_the_watchdog(manager: Manager, tmp_path: Path) -> None:
    fifo = tmp_path / "camera.y4m"
    camera = FifoCamera(fifo)
    camera.start()
    log = tmp_path / "predictions.jsonl"
    stderr = tmp_path / "stderr"
    process = spawn_run(manager, stderr, "--source", str(fifo), "--headless", "--log", str(log))
    try:
        manager.wait_for("READY=1")
        manager.wait_for("WATCHDOG=1", count=3)
        camera.stall()
        # The frames already in the pipe are still classified; wait until the log stops growing.
        lines, steady_since = -1, time.monotonic()
        while time.monotonic() - steady_since < 2.0:
            manager.receive(0.25)
            count = len(log.read_text().splitlines())
            if count != lines:
                lines, steady_since = count, time.monotonic()
        pings = manager.received.count("WATCHDOG=1")
        manager.drain(quiet=3.0)  # 12 ping intervals without a frame
        assert manager.received.count("WATCHDOG=1") == pings, "pings went on without frames"
        assert process.poll() is None, "the stalled run is still waiting for its camera"
        camera.close()  # EOF: the source ends and the run with it
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        camera.stall()
        camera.close()
    manager.drain()
    assert code == 0, stderr.read_text()
    assert manager.received[-2:] == ["STOPPING=1", "STATUS=stopping"]
    assert 0 < lines == len(read_jsonl(log)) <= camera.sent
