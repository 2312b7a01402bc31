"""Network streams for real: a GStreamer RTSP server and an FFmpeg HTTP MJPEG server on loopback,
streaming a clip rendered from real photos. edgecam classifies them, survives the server being
killed and restarted (one warning, frames before and after the gap), counts a server that hangs
without closing as stopped, and exits 1 once the stream stays away past --reconnect-timeout.
The servers and the clip (the `server` and `clip` fixtures) are in conftest.py: test_faults uses
them too."""
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

import pytest
from conftest import CLIP_SIZE, Server, read_jsonl, wait_for

from edgecam.base.errors import SourceError
from edgecam.base.options import resolve
from edgecam.bench.pipeline import free_port
from edgecam.sources import OPTIONS, open_source


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
        warnings = lambda: [line for line in stderr.read_text().splitlines() if line.startswith("WARNING")]  # noqa: E731
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
    # edgecam's own lines only (its progress bar when this run built the model): no traceback, no
    # FFmpeg or OpenCV chatter at each reconnect attempt
    assert all(line.split(" ", 1)[0] in ("INFO", "WARNING", "edgecam:") or line.startswith("building ")
               for line in text.splitlines()), text
    before = [r for r in records() if capture_time(r) < killed]
    after = [r for r in records() if capture_time(r) > restarted]
    assert len(before) >= 5 and len(after) >= 5, (len(before), len(after))
    assert all(r["source"] == server.uri for r in records())
    # frames keep their numbering across the gap, and what they show is still recognised
    assert after[0]["frame"] > before[-1]["frame"]
    labels = {r["top"][0]["label"] for r in records()}
    assert labels & {"tabby", "tiger cat", "Egyptian cat", "espresso", "cup", "coffee mug"}, labels
    outage = [line for line in text.splitlines() if line.startswith("WARNING") and server.uri in line]
    expected = 1 if server.kind == "rtsp" else 2  # the HTTP run lost its server twice
    assert len(outage) == expected, text
    assert "resumed after" in text
    if server.kind == "http":
        errors = [line for line in text.splitlines() if line.startswith("edgecam: error:")]
        assert len(errors) == 1 and "delivered no frame for 20 s" in errors[0], text


def read_within(source, seconds: float):
    """source.read(), failing the test instead of hanging it."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(source.read).result(timeout=seconds)


def read_until_it_fails(source) -> None:
    while True:
        read_within(source, 60)


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
            read_until_it_fails(source)
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
