"""--webhook against a real HTTP server on loopback: every event arrives once and in order, also
across a server that is down for a while and one that answers 503 for a while; one that refuses
(404) is not retried; TLS is verified (an untrusted certificate gets nothing, and what waits is
given up at exit with one warning). Credentials (the token, the URL's password and path) reach no
log line and no metric."""
from __future__ import annotations

import base64
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from conftest import edgecam, read_jsonl, require, wait_for

from edgecam.bench.pipeline import free_port

TOKEN, PASSWORD, PATH = "t0ken-Secret", "pa55-Secret", "hooks/Path-Secret"


class Receiver:
    """An HTTP server on 127.0.0.1 that answers each POST with `status` and keeps what it got; it
    can be stopped and started again on the same port."""

    def __init__(self, status: int = 200, tls: ssl.SSLContext | None = None) -> None:
        self.port = free_port()
        self.status = status
        self.tls = tls
        self.posts: list[tuple[int, dict, dict]] = []  # (status answered, headers, JSON body)
        self.lock = threading.Lock()
        self.server: HTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.posts.append((receiver.status, dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def answered(self, status: int) -> list[tuple[dict, dict]]:
        with self.lock:
            return [(headers, body) for given, headers, body in self.posts if given == status]


def metrics(base: str) -> str:
    with urllib.request.urlopen(base + "metrics", timeout=5) as response:
        return response.read().decode()


def counter(text: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", text, re.MULTILINE).group(1))


def test_every_event_arrives_once_in_order_across_outages(tmp_path: Path) -> None:
    receiver = Receiver()  # not started: the server is down when the run starts
    log, stderr = tmp_path / "events.jsonl", tmp_path / "stderr"
    url = f"http://edgecam:{PASSWORD}@127.0.0.1:{receiver.port}/{PATH}"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = subprocess.Popen(
        [sys.executable, "-m", "edgecam", "--log-level", "debug", "run", "--headless",
         "--duration", "120", "--log", str(log), "--webhook", url, "--webhook-token", TOKEN,
         "--preview", "127.0.0.1:0"],
        env=env, stdout=subprocess.DEVNULL, stderr=stderr.open("w"))

    def said(text: str, times: int = 1) -> bool:
        assert run.poll() is None, stderr.read_text()
        return stderr.read_text().count(text) == times

    def logged() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    try:
        wait_for(lambda: said("cannot deliver (Connection refused)"), 60, "the first outage")
        down_at = logged()
        wait_for(lambda: logged() >= down_at + 60, 60, "60 frames more while the server is down")
        receiver.start()
        wait_for(lambda: said("delivering again"), 60, "the recovery")
        receiver.status = 503  # a server that is up but cannot take events for a while
        wait_for(lambda: len(receiver.answered(503)) >= 2, 60, "a retried 503")
        receiver.status = 200
        wait_for(lambda: said("delivering again", 2), 60, "the second recovery")
        base = re.search(r"web preview at (\S+)", stderr.read_text()).group(1)
        counted = metrics(base)
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
    finally:
        run.kill()
        run.wait()
        receiver.stop()
    delivered = receiver.answered(200)
    assert len(delivered) > 60
    assert [body for _, body in delivered] == read_jsonl(log)  # each frame once, in order
    keys = [headers["Idempotency-Key"] for headers, _ in delivered]
    assert len(set(keys)) == len(keys)
    assert all(headers["Authorization"] == f"Bearer {TOKEN}"
               and headers["Content-Type"] == "application/json" for headers, _ in delivered)
    assert counter(counted, "edgecam_webhook_delivered_total") > 0
    assert counter(counted, "edgecam_webhook_failures_total") >= 3  # refused connections, two 503s
    assert counter(counted, "edgecam_webhook_dropped_total") == 0
    text = stderr.read_text()
    assert [line for line in text.splitlines() if line.startswith("WARNING")] == [
        f"WARNING edgecam.sinks.webhook: webhook http://***@127.0.0.1:{receiver.port}/…: {what}"
        for what in ("cannot deliver (Connection refused): retrying with back-off; classification "
                     "goes on (1000 events wait at most, then the oldest are dropped)",
                     "delivering again",
                     "cannot deliver (HTTP 503 Service Unavailable): retrying with back-off; "
                     "classification goes on (1000 events wait at most, then the oldest are dropped)",
                     "delivering again")]
    assert not any(secret in output for secret in (TOKEN, PASSWORD, PATH) for output in (text, counted))


def test_a_refused_event_is_dropped_not_retried() -> None:
    receiver = Receiver(404)
    receiver.start()
    try:
        result = edgecam("run", "--headless", "--frames", "20", "--webhook",
                         f"http://edgecam:{PASSWORD}@127.0.0.1:{receiver.port}/{PATH}", check=True)
    finally:
        receiver.stop()
    refused = receiver.answered(404)
    assert len(refused) == 20  # each event once
    basic = base64.b64encode(f"edgecam:{PASSWORD}".encode()).decode()
    assert all(headers["Authorization"] == f"Basic {basic}" for headers, _ in refused)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "refused an event (HTTP 404 Not Found): dropped" in warnings[0]
    assert PASSWORD not in result.stderr and PATH not in result.stderr


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server's TLS context with a self-signed certificate for 127.0.0.1, and the certificate."""
    openssl = require("openssl", "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


def test_tls_is_verified(self_signed: tuple[ssl.SSLContext, Path]) -> None:
    """Delivered once the system trusts the certificate (SSL_CERT_FILE: OpenSSL's CA file); not a
    byte while it does not, and what waits is given up at exit."""
    context, cert = self_signed
    receiver = Receiver(tls=context)
    receiver.start()
    url = f"https://127.0.0.1:{receiver.port}/hook"
    try:
        edgecam("run", "--headless", "--frames", "10", "--webhook", url,
                env={"SSL_CERT_FILE": str(cert)}, check=True)
        assert len(receiver.answered(200)) == 10
        result = edgecam("run", "--headless", "--frames", "20", "--webhook", url, timeout=60,
                         check=True)
    finally:
        receiver.stop()
    assert len(receiver.posts) == 10
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2
    assert "cannot deliver (TLS certificate not trusted: self-signed certificate)" in warnings[0]
    assert "20 events not delivered" in warnings[1]
