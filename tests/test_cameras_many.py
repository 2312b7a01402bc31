"""Several cameras in one process, one network: a looping file and an RTSP stream from a real
server on loopback, classified side by side. The stream's server dies and comes back while the
file's records keep flowing; every output names the camera (records, CSV, MQTT topics, metrics,
the preview's tiles and streams); a camera that cannot be opened is one line and the others run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
from conftest import USER, Server, Subscriber, edgecam, read_jsonl, wait_for

from edgecam.base.errors import UsageError
from edgecam.base.options import resolve
from edgecam.bench.pipeline import free_port
from edgecam.runtime import pipeline
from edgecam.runtime.cameras import cameras


def capture_time(record: dict) -> float:
    return datetime.fromisoformat(record["time"]).timestamp()


@pytest.mark.parametrize("server", ["rtsp"], indirect=True)
def test_a_file_keeps_flowing_while_the_stream_beside_it_restarts(server: Server, clip: Path,
                                                                  tmp_path: Path) -> None:
    log, stderr = tmp_path / "run.jsonl", tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        run = subprocess.Popen(
            [sys.executable, "-m", "edgecam", "run", "--headless", "--camera", f"file={clip}", "--loop",
             "--camera", f"street={server.uri}", "--log", str(log), "--read-timeout", "3",
             "--reconnect-timeout", "60"], stdout=subprocess.DEVNULL, stderr=err,
            env={k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")})
    try:
        def records(camera: str, after: float = 0.0) -> list[dict]:
            found = read_jsonl(log) if log.exists() else []
            return [r for r in found if r["camera"] == camera and capture_time(r) > after]

        wait_for(lambda: min(len(records("street")), len(records("file"))) >= 5 or run.poll() is not None,
                 120, "both cameras' first records")
        server.kill()
        killed = time.time()
        wait_for(lambda: "WARNING" in stderr.read_text() or run.poll() is not None, 60, "the outage warning")
        # the file is classified while the stream is away
        wait_for(lambda: len(records("file", after=time.time() - 0.1)) or run.poll() is not None, 30,
                 "the file's records during the outage")
        assert not records("street", after=killed + 1)
        server.start()
        restarted = time.time()
        wait_for(lambda: len(records("street", after=restarted)) >= 5 or run.poll() is not None, 90,
                 "the stream's records after it came back")
        assert run.poll() is None, stderr.read_text()
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=30) == 0, stderr.read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    everything = read_jsonl(log)
    assert {r["camera"] for r in everything} == {"file", "street"}
    assert {r["source"] for r in everything if r["camera"] == "street"} == {server.uri}
    outage = [line for line in stderr.read_text().splitlines() if line.startswith("WARNING")]
    assert len(outage) == 1 and server.uri in outage[0], stderr.read_text()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read() if "mjpg" not in url else response.read(50_000)


def test_every_output_names_its_camera(broker: int, tmp_path: Path) -> None:
    log, csv, port = tmp_path / "run.jsonl", tmp_path / "run.csv", free_port()
    live = Subscriber(broker)
    run = subprocess.Popen(
        [sys.executable, "-m", "edgecam", "run", "--headless", "--source", "demo", "--camera", "door=demo",
         "--camera", "yard=demo", "--events", "change", "--log", str(log), "--preview", f"127.0.0.1:{port}",
         "--mqtt", f"mqtt://{USER}:p%40ss%20word@127.0.0.1:{broker}/home", "--mqtt-discovery",
         "--duration", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}/"
        status = wait_for(lambda: (s := _status(base)) and all(c["prediction"] for c in s["cameras"]) and s,
                          90, "both cameras on the preview")
        assert [c["name"] for c in status["cameras"]] == ["door", "yard"]
        for name in ("door", "yard"):
            assert fetch(f"{base}stream/{name}.mjpg").startswith(b"--edgecam-frame")
        with pytest.raises(urllib.error.HTTPError):
            fetch(f"{base}stream/nowhere.mjpg")
        metrics = fetch(base + "metrics").decode()
        assert all(f'edgecam_frames_total{{camera="{name}"}}' in metrics for name in ("door", "yard"))
        wait_for(lambda: live.on("home/door/event") and live.on("home/yard/event"), 30, "events per camera")
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
        live.close()
    assert run.returncode == 0, err
    records = read_jsonl(log)
    assert {r["camera"] for r in records} == {"door", "yard"}
    # events are per camera: each camera's first record is its own first event
    for name in ("door", "yard"):
        mine = [r for r in records if r["camera"] == name]
        assert mine[0]["event"]["previous"] is None
    topics = {topic for topic, _, _ in live.messages}
    assert {"homeassistant/sensor/home_door/label/config", "homeassistant/sensor/home_yard/label/config",
            "home/door/state", "home/yard/state", "home/status"} <= topics
    edgecam("run", "--headless", "--source", "demo", "--source", "demo", "--frames", "10", "--log", str(csv),
            check=True)
    header, *rows = csv.read_text().splitlines()
    assert header.startswith("time,camera,frame,") and {r.split(",")[1] for r in rows} == {"demo", "demo-2"}


def _status(base: str) -> dict | None:
    try:
        return json.loads(fetch(base + "api/status"))
    except OSError:
        return None


def test_a_camera_that_cannot_open_is_one_line_and_the_others_run(tmp_path: Path) -> None:
    log, dead = tmp_path / "run.jsonl", f"rtsp://127.0.0.1:{free_port()}/gone"
    result = edgecam("run", "--headless", "--camera", "ok=demo", "--camera", f"gone={dead}", "--frames", "20",
                     "--read-timeout", "1", "--reconnect-timeout", "0", "--log", str(log))
    assert result.returncode == 0, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "camera gone:" in errors[0] and "going on with the other cameras" in errors[0]
    assert {r["camera"] for r in read_jsonl(log)} == {"ok"}
    strict = edgecam("run", "--headless", "--camera", "ok=demo", "--camera", f"gone={dead}", "--frames", "20",
                     "--read-timeout", "1", "--reconnect-timeout", "0", "--require-all-cameras")
    assert strict.returncode == 1 and strict.stderr.strip().splitlines()[-1].startswith("edgecam: error:")


def test_one_source_stays_exactly_as_before(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    edgecam("run", "--headless", "--frames", "5", "--log", str(log), check=True)
    assert all("camera" not in r for r in read_jsonl(log))


def test_cameras_from_flags_and_config_tables() -> None:
    settings = resolve(pipeline.run_options(), {"source": ["demo", "usb:0", "rtsp://cam.local/s", "demo"]})
    assert [c.name for c in cameras(settings)] == ["demo", "usb0", "cam-local", "demo-2"]
    config = {"camera": [{"name": "door", "source": "demo", "rotation": 90, "roi": "0,0,0.5,1"},
                         {"name": "yard", "source": "usb:1", "camera_size": "640x480"}]}
    door, yard = cameras(resolve(pipeline.run_options(), {}, config))
    assert (door.settings.rotation, str(door.settings.roi)) == (90, "0,0,0.5,1")
    assert yard.settings.camera_size == (640, 480) and yard.settings.rotation == 0
    result = edgecam("run", "--headless", "--frames", "1", "--camera", "door=demo", "--camera", "door=demo")
    assert result.returncode == 2 and "two cameras are named 'door'" in result.stderr, result.stderr
    for table, message in (({"name": "Door!", "source": "demo"}, "camera name 'Door!' must be"),
                           ({"name": "door", "source": "demo", "colour": "red"},
                            "a camera has no key 'colour'"),
                           ({"name": "door"}, "each camera needs a source")):
        with pytest.raises(UsageError) as refused:
            cameras(resolve(pipeline.run_options(), {}, {"camera": [table]}))
        assert message in str(refused.value)


def test_the_service_config_shows_two_cameras() -> None:
    text = (Path(__file__).parents[1] / "systemd" / "edgecam.toml").read_text()
    example = text.split("# [[camera]]", 1)[1]
    uncommented = "\n".join(line[2:] if line.startswith("# ") else "" for line in
                            ("# [[camera]]" + example).splitlines())
    settings = resolve(pipeline.run_options(), {}, tomllib.loads(uncommented))
    assert [(c.name, c.settings.rotation) for c in cameras(settings)] == [("door", 180), ("street", 0)]
