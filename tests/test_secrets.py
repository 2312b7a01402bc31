"""A password in a camera or stream URL reaches no output: not the log records, not stderr (the
journal) at debug level, not the preview page, its status or its metrics, not the MQTT messages, not
an error line. Each shows the URL as `scheme://user:***@host/...`. The broker's own password stays
out of them too."""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import PASSWORD, USER, Server, Subscriber, edgecam, read_jsonl, wait_for

from edgecam.bench.pipeline import free_port

SECRET = "Pa55w0rd"


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode("utf-8", errors="replace")


@pytest.mark.parametrize("server", ["http"], indirect=True)
def test_a_stream_password_reaches_no_output(server: Server, broker: int, tmp_path: Path) -> None:
    url = server.uri.replace("http://", f"http://camuser:{SECRET}@")
    shown = server.uri.replace("http://", "http://camuser:***@")
    log, port = tmp_path / "run.jsonl", free_port()
    mqtt = f"mqtt://{USER}:p%40ss%20word@127.0.0.1:{broker}/cam"
    subscriber = Subscriber(broker)
    run = subprocess.Popen(
        [sys.executable, "-m", "edgecam", "--log-level", "debug", "run", "--source", url, "--headless",
         "--duration", "20", "--log", str(log), "--preview", f"127.0.0.1:{port}", "--mqtt", mqtt,
         "--mqtt-discovery"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pages = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None:
            try:
                status = fetch(f"http://127.0.0.1:{port}/api/status")
            except OSError:
                time.sleep(0.2)
                continue
            if '"frames": 0' not in status:
                break
        pages = [fetch(f"http://127.0.0.1:{port}{path}") for path in ("/", "/api/status", "/metrics")]
    finally:
        run.terminate()
        out, err = run.communicate(timeout=30)
    try:
        wait_for(lambda: "offline" in subscriber.on("cam/status"), 20, "the goodbye on MQTT")
    finally:
        subscriber.close()
    assert run.returncode == 0, err
    records = read_jsonl(log)
    assert records and {r["source"] for r in records} == {shown}
    assert shown in pages[1]
    events = [payload for topic, payload, _ in subscriber.messages if topic == "cam/event"]
    assert events and all(shown in payload for payload in events)
    messages = "\n".join(f"{topic} {payload}" for topic, payload, _ in subscriber.messages)
    for name, text in [("stdout", out), ("stderr", err), ("log", log.read_text()), ("MQTT", messages),
                       *zip(("page", "status", "metrics"), pages, strict=True)]:
        assert SECRET not in text, f"the password is in the {name}"
        assert PASSWORD not in text and "p%40ss" not in text, f"the broker's password is in the {name}"


def test_an_error_line_masks_the_password() -> None:
    url = f"rtsp://camuser:{SECRET}@127.0.0.1:{free_port()}/stream"
    result = edgecam("run", "--source", url, "--headless", "--frames", "1", "--read-timeout", "1",
                     "--reconnect-timeout", "0")
    assert result.returncode != 0
    assert SECRET not in result.stdout + result.stderr
    assert "rtsp://camuser:***@127.0.0.1" in result.stderr.strip().splitlines()[-1]
