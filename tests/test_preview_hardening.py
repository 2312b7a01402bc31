"""The web preview against careless and hostile clients, on a real `edgecam run` (loopback only):
clients that reset mid-request leave no traceback, a rebinding page's Host is refused (and a reverse
proxy's is answered once named), the token is never logged, HEAD works, the bearer scheme is
case-insensitive, the server names no Python version, metrics pass promtool, connections held open
cannot lock a browser out, excess requests get 503, idle connections are closed, and a stress of all
of them at once leaves classification, memory and shutdown as they were."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import edgecam, require, wait_for
from prometheus_client.parser import text_string_to_metric_families

from edgecam.sinks.preview import IDLE_SECONDS, MAX_SERVING, MAX_WAITING

TOKEN = "S3CRET-t0ken"


@dataclass
class Run:
    port: int
    pid: int
    stderr: Path

    def status(self, field: str) -> int:
        """A line of /proc/PID/status in kB or a count: VmRSS, Threads."""
        found = re.search(rf"^{field}:\s+(\d+)", Path(f"/proc/{self.pid}/status").read_text(), re.MULTILINE)
        assert found, field
        return int(found.group(1))


@contextlib.contextmanager
def preview_run(tmp_path: Path, *extra: str) -> Iterator[Run]:
    """`edgecam --log-level debug run --preview 127.0.0.1:0 …`; yields it once it listens, and checks
    that SIGTERM ends it with exit 0 (whatever the test left connected)."""
    stderr = tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = subprocess.Popen([sys.executable, "-m", "edgecam", "--log-level", "debug", "run", "--headless",
                            "--preview", "127.0.0.1:0", *extra], env=env, stdout=subprocess.DEVNULL,
                           stderr=stderr.open("w"))
    try:
        found = wait_for(lambda: run.poll() is None and re.search(r"web preview at http://127\.0\.0\.1:(\d+)",
                                                                  stderr.read_text()),
                         what="the preview to listen")
        yield Run(int(found.group(1)), run.pid, stderr)
        run.send_signal(signal.SIGTERM)
        assert run.wait(30) == 0, stderr.read_text()[-3000:]
    finally:
        run.kill()
        run.wait()


def request(port: int, method: str = "GET", path: str = "/api/status",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def reset(port: int, sent: bytes) -> None:
    """Connect, send `sent`, and close with an RST instead of a FIN (SO_LINGER 0)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(sent)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_resets_rebinding_head_and_the_server_header(tmp_path: Path) -> None:
    with preview_run(tmp_path) as run:
        port = run.port
        for i in range(40):  # half-sent requests, and viewers that vanish mid-stream
            reset(port, b"GET / HTTP/1.1\r\nHo" if i % 2 else b"GET /stream.mjpg HTTP/1.1\r\n\r\n")
        status, headers, body = request(port, "GET", "/")
        assert status == 200 and headers["Server"] == "edgecam" and b"<html" in body.lower()
        # a page that rebound its own name to 127.0.0.1 sends that name
        assert request(port, headers={"Host": "evil.example"})[0] == 421
        assert request(port, headers={"Host": f"evil.example:{port}"})[0] == 421
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
            assert request(port, headers={"Host": host})[0] == 200, host
        for path in ("/", "/api/status", "/metrics", "/stream.mjpg"):
            status, headers, body = request(port, "HEAD", path)
            assert status == 200 and body == b"", path
        assert int(request(port, "HEAD", "/")[1]["Content-Length"]) > 0
        metrics = request(port, path="/metrics")[2].decode()
        # Prometheus's own parser reads the page; it names a counter without its _total
        kinds = {family.name: family.type for family in text_string_to_metric_families(metrics)}
        assert kinds["edgecam_preview_encoded_frames"] == "counter"
        assert kinds["edgecam_frames"] == "counter" and kinds["edgecam_preview_viewers"] == "gauge"
        assert kinds["edgecam_inference_seconds"] == "histogram"
        # and Prometheus's own checker (format and naming lint) has nothing to say
        checked = subprocess.run([require("promtool", "prometheus"), "check", "metrics"], check=False,
                                 input=metrics, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
        time.sleep(0.5)  # the server threads of the resets are done
    lines = run.stderr.read_text().splitlines()
    assert not [line for line in lines if "Traceback" in line], "\n".join(lines[-40:])
    resets = [line for line in lines if "ConnectionResetError" in line]
    assert resets and all(line.startswith("DEBUG ") and "went away" in line for line in resets)


def test_the_token_is_never_logged_and_bearer_is_case_insensitive(tmp_path: Path) -> None:
    with preview_run(tmp_path, "--preview-token", TOKEN) as run:
        port = run.port
        assert request(port)[0] == 401
        assert request(port, path=f"/api/status?token={TOKEN}")[0] == 200
        for scheme in ("Bearer", "bearer", "BEARER"):
            assert request(port, headers={"Authorization": f"{scheme} {TOKEN}"})[0] == 200, scheme
        # with a token the token is the check: a reverse proxy's Host is fine
        assert request(port, headers={"Host": "camera.example", "Authorization": f"Bearer {TOKEN}"})[0] == 200
    text = run.stderr.read_text()
    assert "web preview 127.0.0.1: " in text  # requests are logged at debug level
    assert TOKEN not in text


def test_the_page_trades_its_token_for_a_cookie(tmp_path: Path) -> None:
    with preview_run(tmp_path, "--preview-token", TOKEN) as run:
        status, headers, body = request(run.port, path=f"/?token={TOKEN}")
        assert status == 303 and headers["Location"] == "./" and body == b""
        cookie = headers["Set-Cookie"]
        assert cookie.startswith("edgecam_token=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        given = cookie.split(";")[0]
        for path in ("/", "/api/status", "/metrics"):
            assert request(run.port, path=path, headers={"Cookie": given})[0] == 200, path
        assert request(run.port, headers={"Cookie": "edgecam_token=wrong"})[0] == 401
        assert request(run.port, headers={"Cookie": 'edgecam_token="x; ;'})[0] == 401  # garbage
        page = request(run.port, path="/", headers={"Cookie": given})[2].decode()
        assert "token" not in page.lower()  # its polls and stream URLs carry none


def test_a_reverse_proxys_host_is_answered_once_named(tmp_path: Path) -> None:
    with preview_run(tmp_path, "--preview-hosts", "Camera.Example,cam") as run:
        for host, expected in (("camera.example", 200), ("CAMERA.example:443", 200), ("cam", 200),
                               (f"127.0.0.1:{run.port}", 200), ("evil.example", 421)):
            assert request(run.port, headers={"Host": host})[0] == expected, host
    assert edgecam("run", "--preview", "8090", "--preview-hosts", "http://cam/").returncode == 2


def open_and_hold(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def closed_by_server(connections: list[socket.socket]) -> int:
    """How many of `connections` the server has closed (they read EOF now)."""
    readable, _, _ = select.select(connections, [], [], 0)
    return sum(1 for s in readable if s.recv(1) == b"")


def watch(port: int) -> socket.socket:
    """A viewer of the stream that reads nothing."""
    viewer = socket.create_connection(("127.0.0.1", port), timeout=5)
    viewer.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return viewer


def test_held_connections_cannot_lock_a_browser_out(tmp_path: Path) -> None:
    with preview_run(tmp_path) as run:
        held = open_and_hold(run.port, 3 * MAX_WAITING)
        try:
            # a browser's request still gets its answer: the longest-waiting were closed for it
            assert request(run.port)[0] == 200
            wait_for(lambda: closed_by_server(held) >= 2 * MAX_WAITING, 10, "the oldest to be closed")
            assert run.status("Threads") < MAX_WAITING + 40  # a thread per waiting connection, no more
            # the rest are closed once idle
            last = held[-1]
            last.settimeout(IDLE_SECONDS + 10)
            started = time.monotonic()
            assert last.recv(1) == b""
            assert time.monotonic() - started < IDLE_SECONDS + 5
        finally:
            for s in held:
                s.close()


def test_excess_requests_get_503(tmp_path: Path) -> None:
    with preview_run(tmp_path) as run:
        viewers = [watch(run.port) for _ in range(MAX_SERVING)]
        try:
            wait_for(lambda: request(run.port)[0] == 503, 20, "the limit of requests served at once")
            status, headers, _ = request(run.port)
            assert status == 503 and headers["Retry-After"] == "5"
            viewers.pop().close()
            wait_for(lambda: request(run.port)[0] == 200, 20, "a free slot")
        finally:
            for s in viewers:
                s.close()


def test_an_ipv6_address_is_shown_in_brackets() -> None:
    result = edgecam("run", "--headless", "--frames", "1", "--preview", "[::]:8090")
    assert result.returncode == 2
    assert "--preview [::]:8090 is reachable from other machines" in result.stderr
    assert ":::8090" not in result.stderr


@pytest.mark.parametrize("header", ["", "[::1]:8090", "LOCALHOST:1"])
def test_host_names_are_read_without_their_port(header: str) -> None:
    from edgecam.sinks.preview import host_name

    assert host_name(header) == {"": "", "[::1]:8090": "::1", "LOCALHOST:1": "localhost"}[header]


def frames_per_second(run: Run, seconds: float) -> tuple[float, float]:
    """Classified frames per second over `seconds` (from /api/status) and the process's largest
    RSS meanwhile, in MB (sampled: its peak since start would include a first model build)."""
    def frames() -> tuple[float, int]:
        return time.monotonic(), json.loads(request(run.port)[2])["frames"]

    rss = 0.0
    t0, n0 = frames()
    while time.monotonic() < t0 + seconds:
        rss = max(rss, run.status("VmRSS") / 1024)
        time.sleep(0.25)
    t1, n1 = frames()
    return (n1 - n0) / (t1 - t0), rss


class Viewers:
    """Viewers that read the stream, each on its own thread, counting the bytes they get."""

    def __init__(self, port: int, count: int) -> None:
        self.received = [0] * count
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._watch, args=(port, i), daemon=True)
                        for i in range(count)]
        for thread in self.threads:
            thread.start()

    def _watch(self, port: int, i: int) -> None:
        with watch(port) as viewer:
            while not self.stop.is_set() and (chunk := viewer.recv(1 << 16)):
                self.received[i] += len(chunk)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


def test_a_stress_of_held_reset_and_watching_clients_changes_nothing(tmp_path: Path) -> None:
    """200 connections held, 50 reset mid-request, 30 viewers, all at once: the demo is still
    classified at its pace, the process stays small, nothing is printed, SIGTERM ends it cleanly."""
    edgecam("models", "build", "efficientnet_lite0", "--backends", "onnx", check=True)  # not in the run
    with preview_run(tmp_path) as run:
        listening = subprocess.run([require("ss", "iproute2"), "-ltnH", f"sport = :{run.port}"],
                                   capture_output=True, text=True, check=True).stdout.split()
        assert listening[2] == "64"  # the listen backlog (ss shows it as Send-Q)
        wait_for(lambda: json.loads(request(run.port)[2])["frames"] >= 30, what="the run to warm up")
        quiet, _ = frames_per_second(run, 8)
        held = open_and_hold(run.port, 200)
        viewers = Viewers(run.port, 30)
        try:
            for i in range(50):
                reset(run.port, b"GET /api/status HTTP/1.1\r\nHost: 127.0." if i % 2 else
                      b"GET /stream.mjpg HTTP/1.1\r\n\r\n")
            wait_for(lambda: json.loads(request(run.port)[2])["viewers"] == 30, 30, "30 viewers")
            stressed, rss_mb = frames_per_second(run, 8)
            assert all(viewers.received), "every viewer gets the stream"
        finally:
            for s in held:
                s.close()
        # SIGTERM (in preview_run) comes while the 30 viewers still watch
    viewers.close()
    assert stressed >= 0.9 * quiet, f"{stressed:.1f} FPS under stress, {quiet:.1f} without"
    assert rss_mb < 250, f"RSS {rss_mb:.0f} MB under stress"
    lines = run.stderr.read_text().splitlines()
    assert not [line for line in lines if "Traceback" in line or line.startswith(("WARNING", "ERROR"))], \
        "\n".join(lines[-40:])
