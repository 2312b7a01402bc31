"""The web preview in a real headless Chromium (driven over the DevTools protocol): the page loads,
the MJPEG stream shows frames, the predictions update; plus the token, /api/status and /metrics."""
from __future__ import annotations

import base64
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import pytest
from conftest import edgecam, require, require_module, wait_for

TOKEN = "s3cret-token"


def get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def preview(tmp_path: Path):
    """`edgecam run --source demo --preview 127.0.0.1:0` with a token; yields its base URL."""
    stderr = tmp_path / "stderr"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--headless", "--preview",
                            "127.0.0.1:0", "--preview-token", TOKEN,
                            "--shots", str(tmp_path / "dataset" / "cat")], env=env,
                           stdout=subprocess.DEVNULL, stderr=stderr.open("w"))
    try:
        found = wait_for(lambda: run.poll() is None and re.search(r"web preview at (\S+)",
                                                                  stderr.read_text()),
                         what="the preview to listen")
        yield found.group(1)
        run.send_signal(signal.SIGTERM)
        assert run.wait(30) == 0, stderr.read_text()
    finally:
        run.kill()
        run.wait()


def metrics(base: str) -> dict[str, float]:
    status, body = get(base + "metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    return {name: float(value) for name, value in
            (line.rsplit(" ", 1) for line in body.decode().splitlines() if not line.startswith("#"))}


def test_token_status_and_metrics(preview: str) -> None:
    for route in ("", "api/status", "stream.mjpg", "metrics"):
        assert get(preview + route)[0] == 401
        assert get(preview + route + "?token=wrong")[0] == 401
    status, _body = get(preview + "api/status?token=" + TOKEN)
    assert status == 200
    wait_for(lambda: json.loads(get(preview + "api/status?token=" + TOKEN)[1])["prediction"],
             what="a first prediction")
    status = json.loads(get(preview + "api/status", {"Authorization": f"Bearer {TOKEN}"})[1])
    assert status["prediction"]["top"][0]["label"] and status["frames"] >= 1
    values = metrics(preview)
    assert values["edgecam_frames_total"] >= 1
    assert values['edgecam_inference_seconds_bucket{le="+Inf"}'] == values["edgecam_inference_seconds_count"]
    assert values["edgecam_inference_seconds_sum"] > 0
    # Nobody watches the stream: nothing was JPEG-encoded.
    assert values["edgecam_preview_viewers"] == 0 and values["edgecam_preview_encoded_frames_total"] == 0


class DevTools:
    """Just enough of the Chrome DevTools protocol: evaluate JavaScript, take a screenshot."""

    def __init__(self, websocket_url: str) -> None:
        import websocket

        self.socket = websocket.create_connection(websocket_url, timeout=30)
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.socket.recv())
            if reply.get("id") == message_id:
                assert "error" not in reply, reply
                return reply["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


@pytest.fixture
def chromium(tmp_path: Path):
    """A headless Chromium with its own profile, controlled through a DevTools port it picks."""
    binary = require("chromium", "chromium")
    require_module("websocket", "websocket-client", pip=True)  # DevTools talks over a WebSocket
    profile = tmp_path / "profile"
    browser = subprocess.Popen([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                "--no-first-run", "--disable-background-networking",
                                "--disable-component-update", "--disable-sync",
                                f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                "--remote-debugging-address=127.0.0.1", "--window-size=1400,900",
                                "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        port = wait_for(lambda: port_file.exists() and port_file.read_text().split("\n")[0],
                        what="chromium's DevTools port")
        pages = json.loads(get(f"http://127.0.0.1:{port}/json/list")[1])
        page = next(p for p in pages if p["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        yield tools
        tools.socket.close()
    finally:
        browser.terminate()
        try:
            browser.wait(20)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()


def test_page_shows_the_stream_and_live_predictions_in_chromium(preview: str, chromium: DevTools,
                                                                tmp_path: Path) -> None:
    chromium.call("Page.navigate", url=f"{preview}?token={TOKEN}")
    width = wait_for(lambda: chromium.evaluate(
        "document.getElementById('stream') && document.getElementById('stream').naturalWidth"),
        what="the stream's first frame")
    assert width >= 640
    first = wait_for(lambda: chromium.evaluate(
        "document.querySelector('#predictions .label') && document.getElementById('stats').textContent"),
        what="predictions on the page")
    wait_for(lambda: chromium.evaluate("document.getElementById('stats').textContent") != first,
             what="the predictions to update")
    labels = chromium.evaluate(
        "[...document.querySelectorAll('#predictions .label')].map(e => e.textContent)")
    assert len(labels) == 5 and all(labels)
    # the token left the address bar for a cookie: no URL the page asked for carries it
    assert chromium.evaluate("location.href") == preview
    fetched = chromium.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert any("api/status" in url for url in fetched) and not any(TOKEN in url for url in fetched)
    assert chromium.evaluate("document.cookie") == ""  # HttpOnly: no script reads it
    # FPS and latency are drawn on the stream only, not also on the panel from another moment
    assert "FPS" not in chromium.evaluate("document.body.innerText")
    # the 'take a photo' button saves the frame into the --shots folder, numbered
    chromium.evaluate("document.getElementById('shot').click()")
    wait_for(lambda: chromium.evaluate("document.getElementById('saved').textContent")
             == "saved cat_0001.jpg", what="the photo to be saved")
    photo = cv2.imread(str(tmp_path / "dataset" / "cat" / "cat_0001.jpg"))
    assert photo is not None and photo.shape == (720, 1280, 3)
    values = metrics(preview)
    assert values["edgecam_preview_viewers"] >= 1 and values["edgecam_preview_encoded_frames_total"] >= 1
    shot = chromium.call("Page.captureScreenshot", format="png")["data"]
    (tmp_path / "preview.png").write_bytes(base64.b64decode(shot))


def test_open_address_without_a_token_is_refused() -> None:
    result = edgecam("run", "--headless", "--frames", "1", "--preview", "0.0.0.0:8080")
    assert result.returncode == 2 and "--preview-token" in result.stderr
    assert edgecam("run", "--preview", "no-port").returncode == 2
