"""MQTT against a real mosquitto started here (loopback, its own config, a password): events and
the retained state arrive, Home Assistant discovery is announced, and kill -9 brings the will."""
from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import PASSWORD, USER, Subscriber, edgecam, wait_for

TOPIC = "home/hall"


def url(port: int) -> str:
    return f"mqtt://{USER}:p%40ss%20word@127.0.0.1:{port}/{TOPIC}"


def test_events_state_and_discovery_reach_a_subscriber(broker: int) -> None:
    live = Subscriber(broker)
    try:
        edgecam("run", "--headless", "--frames", "60", "--events", "change", "--mqtt", url(broker),
                "--mqtt-discovery", check=True)
        wait_for(lambda: "offline" in live.on(f"{TOPIC}/status"), 20, "the goodbye")
    finally:
        live.close()
    events = [json.loads(p) for p in live.on(f"{TOPIC}/event")]
    assert events and all(e["event"]["kind"] == "change" for e in events)
    labels = [e["event"]["label"] for e in events]
    assert all(a != b for a, b in itertools.pairwise(labels))  # each event is a change
    assert live.on(f"{TOPIC}/status") == ["online", "offline"]
    # A subscriber arriving later gets the retained state, status and discovery configs.
    late = Subscriber(broker)
    try:
        wait_for(lambda: late.on(f"{TOPIC}/state") and late.on(f"{TOPIC}/status"), 20, "retained messages")
        retained = {t for t, _, retain in late.messages if retain}
    finally:
        late.close()
    state = json.loads(late.on(f"{TOPIC}/state")[-1])
    assert state["label"] == labels[-1] and state["frame"] == events[-1]["frame"]
    assert late.on(f"{TOPIC}/status") == ["offline"]
    config = json.loads(late.on("homeassistant/sensor/home_hall/label/config")[0])
    assert config["state_topic"] == f"{TOPIC}/state" and config["availability_topic"] == f"{TOPIC}/status"
    assert {f"{TOPIC}/state", f"{TOPIC}/status", "homeassistant/sensor/home_hall/score/config"} <= retained


def test_kill_9_publishes_the_last_will(broker: int, tmp_path: Path) -> None:
    live = Subscriber(broker, f"{TOPIC}/#")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--headless", "--mqtt", url(broker)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: live.on(f"{TOPIC}/event"), what="the first event")
        assert live.on(f"{TOPIC}/status") == ["online"]
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        wait_for(lambda: "offline" in live.on(f"{TOPIC}/status"), 30, "the last will")
    finally:
        run.kill()
        run.wait()
        live.close()


def test_wrong_password_warns_once_and_inference_goes_on(broker: int) -> None:
    result = edgecam("run", "--headless", "--frames", "20", "--mqtt",
                     f"mqtt://{USER}:wrong@127.0.0.1:{broker}/{TOPIC}", check=True)
    assert result.stderr.count("WARNING") == 1 and "refused the connection" in result.stderr
    assert "classified 20 frames" in result.stderr


def test_a_broker_that_is_down_at_start_warns_once_and_is_counted_apart(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    stderr = tmp_path / "stderr"
    run = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--headless", "--duration", "30",
                            "--preview", "127.0.0.1:0", "--mqtt", f"mqtt://{USER}:{PASSWORD}@127.0.0.1:{port}/t"],
                           stdout=subprocess.DEVNULL, stderr=stderr.open("w"))
    try:
        base = wait_for(lambda: re.search(r"web preview at (\S+)", stderr.read_text()), 60,
                        "the preview").group(1)
        wait_for(lambda: "cannot reach the broker" in stderr.read_text(), 20, "the warning")

        def failures() -> dict[str, float]:
            with urllib.request.urlopen(base + "metrics", timeout=5) as response:
                text = response.read().decode()
            return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                    if line.startswith(("edgecam_mqtt_connection_failures_total", "edgecam_errors_total"))}

        counted = wait_for(lambda: (f := failures()).get("edgecam_mqtt_connection_failures_total", 0) >= 1
                           and f, 20, "a counted connection failure")
        assert 'edgecam_errors_total{output="mqtt"}' not in counted  # nothing was dropped yet
        run.send_signal(signal.SIGTERM)
        assert run.wait(30) == 0
    finally:
        run.kill()
        run.wait()
    text = stderr.read_text()
    warnings = [line for line in text.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and f"mqtt://{USER}:***@127.0.0.1:{port}/t" in warnings[0], warnings
    assert PASSWORD not in text


def test_bad_urls_are_usage_errors() -> None:
    for bad in ("http://host/topic", "mqtt:///topic", "mqtt://host:99999/t", "mqtt://host/a/#"):
        result = edgecam("run", "--headless", "--frames", "1", "--mqtt", bad)
        assert result.returncode == 2 and "--mqtt" in result.stderr, bad
