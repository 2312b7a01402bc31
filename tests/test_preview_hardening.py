"""The web preview against careless and hostile clients, on a real `edgecam run` (loopback only):
clients that reset mid-request leave no traceback, a rebinding page's Host is refused, the token is
never logged, HEAD works, the bearer scheme is case-insensitive, the server names no Python version,
excess connections get 503 and idle ones are closed."""
from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import edgecam, wait_for
from prometheus_client.parser import text_string_to_metric_families

from edgecam.sinks.preview import IDLE_SECONDS, MAX_CONNECTIONS

TOKEN = "S3CRET-t0ken"


@contextlib.contextmanager
def preview_run(tmp_path: Path, *extra: str) -> Iterator[tuple[int, Path]]:
    """`edgecam --log-level debug run --preview 127.0.0.1:0 …`; yields its port and its stderr file,
    and checks that SIGTERM ends it with exit 0."""
    stderr = tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = subprocess.Popen([sys.executable, "-m", "edgecam", "--log-level", "debug", "run", "--headless",
                            "--preview", "127.0.0.1:0", *extra], env=env, stdout=subprocess.DEVNULL,
                           stderr=stderr.open("w"))
    try:
        found = wait_for(lambda: run.poll() is None and re.search(r"web preview at http://127\.0\.0\.1:(\d+)",
                                                                  stderr.read_text()),
                         what="the preview to listen")
        yield int(found.group(1)), stderr
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
    with preview_run(tmp_path) as (port, stderr):
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
        time.sleep(0.5)  # the server threads of the resets are done
    lines = stderr.read_text().splitlines()
    assert not [line for line in lines if "Traceback" in line], "\n".join(lines[-40:])
    resets = [line for line in lines if "ConnectionResetError" in line]
    assert resets and all(line.startswith("DEBUG ") and "went away" in line for line in resets)


def test_the_token_is_never_logged_and_bearer_is_case_insensitive(tmp_path: Path) -> None:
    with preview_run(tmp_path, "--preview-token", TOKEN) as (port, stderr):
        assert request(port)[0] == 401
        assert request(port, path=f"/api/status?token={TOKEN}")[0] == 200
        for scheme in ("Bearer", "bearer", "BEARER"):
            assert request(port, headers={"Authorization": f"{scheme} {TOKEN}"})[0] == 200, scheme
        # with a token the token is the check: a reverse proxy's Host is fine
        assert request(port, headers={"Host": "camera.example", "Authorization": f"Bearer {TOKEN}"})[0] == 200
    text = stderr.read_text()
    assert "web preview 127.0.0.1: " in text  # requests are logged at debug level
    assert TOKEN not in text


def test_excess_connections_get_503_and_idle_ones_are_closed(tmp_path: Path) -> None:
    with preview_run(tmp_path) as (port, _stderr):
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(MAX_CONNECTIONS)]
        try:
            wait_for(lambda: request(port)[0] == 503, 10, "the connection limit")
        finally:
            for s in held[1:]:
                s.close()
        wait_for(lambda: request(port)[0] == 200, 10, "a free slot")
        idle = held[0]
        idle.settimeout(IDLE_SECONDS + 10)
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server, not by us
        assert time.monotonic() - started < IDLE_SECONDS + 5
        idle.close()


def test_an_ipv6_address_is_shown_in_brackets() -> None:
    result = edgecam("run", "--headless", "--frames", "1", "--preview", "[::]:8090")
    assert result.returncode == 2
    assert "--preview [::]:8090 is reachable from other machines" in result.stderr
    assert ":::8090" not in result.stderr


@pytest.mark.parametrize("header", ["", "[::1]:8090", "LOCALHOST:1"])
def test_host_names_are_read_without_their_port(header: str) -> None:
    from edgecam.sinks.preview import host_name

    assert host_name(header) == {"": "", "[::1]:8090": "::1", "LOCALHOST:1": "localhost"}[header]
