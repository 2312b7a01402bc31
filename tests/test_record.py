"""--record: real runs of the demo write video that ffprobe reads, frame for frame, drawn as the
window draws; SIGTERM leaves a finished file; segments are cut by capture time, named by it and
pruned oldest first; a full disk costs the recording, never the run."""
from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import edgecam, read_jsonl, require, tmpfs, wait_for

from edgecam.base.errors import EdgecamError, UsageError
from edgecam.base.frame import Frame, Label, Prediction
from edgecam.base.samples import DemoClip
from edgecam.sinks import record
from edgecam.sinks.metrics import Metrics
from edgecam.sinks.overlay import display_image, draw_overlay
from edgecam.sinks.record import Recorder

RECORDED = re.compile(r"recorded (\d+) frames to .*, (\d+) dropped")
T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC).timestamp()
PREDICTION = Prediction([Label("tabby cat", 281, 0.9), Label("tiger cat", 282, 0.05)], 12.5, 10.0,
                        "efficientnet_lite0", "onnx")


def probe(path: Path) -> dict:
    """ffprobe's view of the video stream, every frame decoded and counted."""
    ffprobe = require("ffprobe", "ffmpeg")
    out = subprocess.run([ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=codec_name,width,height,nb_read_frames,r_frame_rate",
                          "-show_entries", "format=duration", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    stream = found["streams"][0]
    num, den = stream["r_frame_rate"].split("/")
    return {"codec": stream["codec_name"], "size": (stream["width"], stream["height"]),
            "frames": int(stream["nb_read_frames"]), "rate": int(num) / int(den),
            "duration": float(found["format"]["duration"])}


def recorded(stderr: str) -> tuple[int, int]:
    """(frames written, frames dropped) as the run reports them."""
    found = RECORDED.search(stderr)
    assert found, stderr
    return int(found.group(1)), int(found.group(2))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return cv2.PSNR(a, b)


def test_a_run_records_every_frame_it_did_not_drop_drawn_as_the_window_draws(tmp_path: Path) -> None:
    out, log = tmp_path / "out.mp4", tmp_path / "run.jsonl"
    result = edgecam("run", "--headless", "--frames", "60", "--record", str(out), "--log", str(log))
    assert result.returncode == 0, result.stderr
    written, dropped = recorded(result.stderr)
    assert written + dropped == 60 and written > 0
    video = probe(out)
    assert video["frames"] == written
    assert video["codec"] == "mpeg4" and video["size"] == (1280, 720)  # the demo's frames
    assert video["duration"] == pytest.approx(written / video["rate"], abs=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "run.jsonl"]  # no .part left
    # The first frame recorded is one of the first classified (the writer drops the oldest), with
    # the overlay of its prediction: closer to that drawing than to the bare frame.
    capture = cv2.VideoCapture(str(out))
    ok, first = capture.read()
    capture.release()
    assert ok
    clip = DemoClip(1280, 720)
    best = max(read_jsonl(log)[:dropped + 1], key=lambda r: psnr(first, drawn(clip, r)))
    bare = cv2.cvtColor(clip.frame(best["frame"]), cv2.COLOR_RGB2BGR)
    assert psnr(first, drawn(clip, best)) > 30 > psnr(first, bare) + 3


def drawn(clip: DemoClip, logged: dict) -> np.ndarray:
    """The frame of a log record with the overlay of its prediction."""
    prediction = Prediction([Label(t["label"], t["index"], t["score"]) for t in logged["top"]],
                            logged["inference_ms"], logged["fps"], logged["model"], logged["backend"])
    return draw_overlay(display_image(clip.frame(logged["frame"])), prediction)


def test_sigterm_mid_run_leaves_a_finished_playable_file(tmp_path: Path) -> None:
    out, stderr = tmp_path / "live.mp4", tmp_path / "stderr"
    part = tmp_path / "live.part.mp4"
    with stderr.open("w") as errors:
        run = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--headless", "--record",
                                str(out)], stderr=errors)
    try:
        wait_for(lambda: part.exists() and part.stat().st_size > 100_000, what="frames being recorded")
        assert not out.exists()  # never half-visible under its own name
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
    finally:
        run.kill()
    written, _ = recorded(stderr.read_text())
    assert not part.exists()
    assert probe(out)["frames"] == written > 0


def frames(count: int, rate: float = 10.0, size: tuple[int, int] = (320, 180), camera: str = ""):
    """Demo frames captured at `rate` from T0 (12:00:00 UTC), small: a test's own camera."""
    clip = DemoClip(*size)
    for index in range(count):
        yield Frame(clip.frame(index), index, T0 + index / rate, "demo", camera=camera)


def record_frames(recorder: Recorder, count: int, **kwargs: float) -> None:
    """Open, write `count` frames as the recorder's thread does (in order, none dropped), close."""
    recorder.open()
    for frame in frames(count, **kwargs):
        recorder.handle((frame, PREDICTION))
    recorder.close()


def test_segments_are_cut_and_named_by_capture_time_and_the_oldest_pruned(tmp_path: Path) -> None:
    everything = tmp_path / "all"
    everything.mkdir()
    metrics = Metrics()
    record_frames(Recorder(everything / "cam.mp4", segment=1.0, metrics=metrics), 50)
    names = [f"cam_20261202-12000{s}.mp4" for s in range(5)]
    assert sorted(p.name for p in everything.iterdir()) == names
    for name in names:
        video = probe(everything / name)
        assert (video["frames"], video["rate"], video["size"]) == (10, 10.0, (640, 360))
    rendered = metrics.render().splitlines()
    assert "edgecam_record_frames_total 50" in rendered
    assert "edgecam_record_dropped_frames_total 0" in rendered
    sizes = [(everything / name).stat().st_size for name in names]

    pruned = tmp_path / "pruned"
    pruned.mkdir()
    (pruned / "cam_20261201-235959.mp4").write_bytes(b"an older run's" * 1000)  # pruned first
    (pruned / "cam.mp4").write_bytes(b"not a segment")  # left alone, as is any other file
    (pruned / "notes.txt").write_text("mine")
    limit = sizes[3] + sizes[4] + sizes[2] // 2
    record_frames(Recorder(pruned / "cam.mp4", segment=1.0, max_bytes=limit), 50)
    assert sorted(p.name for p in pruned.iterdir()) == ["cam.mp4", *names[3:], "notes.txt"]

    alone = tmp_path / "alone"
    alone.mkdir()
    record_frames(Recorder(alone / "cam.mkv", segment=1.0, max_bytes=1), 25)  # the newest stays
    assert [p.name for p in alone.iterdir()] == ["cam_20261202-120002.mkv"]
    assert probe(alone / "cam_20261202-120002.mkv")["frames"] == 5


def test_each_camera_has_files_rate_and_segments_of_its_own(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "yard.mkv", segment=2.0, cameras=("front", "back door"))
    recorder.open()
    front = frames(40, rate=10.0, camera="front")  # 4 s
    back = frames(80, rate=20.0, size=(960, 540), camera="back door")  # 4 s
    merged = sorted([*front, *back], key=lambda f: f.timestamp)  # as the run loop interleaves them
    for frame in merged:
        recorder.handle((frame, PREDICTION))
    recorder.close()
    found = {p.name: probe(p) for p in tmp_path.iterdir()}
    assert {name: (v["frames"], v["rate"], v["size"]) for name, v in found.items()} == {
        "yard_front_20261202-120000.mkv": (20, 10.0, (640, 360)),
        "yard_front_20261202-120002.mkv": (20, 10.0, (640, 360)),
        "yard_back-door_20261202-120000.mkv": (40, 20.0, (960, 540)),
        "yard_back-door_20261202-120002.mkv": (40, 20.0, (960, 540))}
    assert recorder.written == 120


@pytest.mark.parametrize(("suffix", "codec"), [(".avi", "mjpeg"), (".mkv", "mpeg4")])
def test_the_suffix_picks_the_container(tmp_path: Path, suffix: str, codec: str) -> None:
    out = tmp_path / f"out{suffix}"
    record_frames(Recorder(out), 3, rate=25.0, size=(641, 361))  # odd sides: made even
    assert probe(out) == {"codec": codec, "size": (640, 360), "frames": 3, "rate": 25.0,
                          "duration": pytest.approx(3 / 25, abs=0.05)}


def test_bad_paths_are_one_line_errors_at_start(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.mp4, \.mkv, \.avi"):
        Recorder(tmp_path / "out.webm")
    with pytest.raises(UsageError, match="--record-segment"):
        Recorder(tmp_path / "out.mp4", max_bytes=1 << 20)
    with pytest.raises(EdgecamError, match="does not exist"):
        Recorder(tmp_path / "missing" / "out.mp4").open()
    result = edgecam("run", "--headless", "--frames", "1", "--record", str(tmp_path / "out.webm"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("edgecam: error: --record ")


def test_a_read_only_folder_is_refused_at_start(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as folder, \
            pytest.raises(EdgecamError, match=r"cannot be written \(Read-only file system\)"):
        Recorder(folder / "out.mp4").open()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "edgecam.sinks.record" and r.levelno == logging.WARNING]


def test_a_disk_that_fills_costs_the_file_being_written_not_the_run(
        tiny_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No reserve: the writes fail (ENOSPC), the broken file is removed, one warning."""
    metrics = Metrics()
    recorder = Recorder(tiny_disk / "cam.mp4", metrics=metrics, reserve=0)
    record_frames(recorder, 100)
    assert len(warnings(caplog)) == 1 and "is lost" in warnings(caplog)[0]
    assert list(tiny_disk.iterdir()) == []
    assert 0 < recorder.unrecorded < 100 and recorder.written + recorder.unrecorded == 100
    assert metrics.errors["record"] == 1


def test_a_disk_nearly_full_finishes_the_file_and_recording_resumes_with_room(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record, "CHECK_SECONDS", 0.0)  # look at the disk before every frame
    monkeypatch.setattr(record, "RETRY_SECONDS", 0.0)  # and try again at the next one
    reserve = 1 << 20
    with tmpfs(tmp_path / "disk", "size=4m") as disk:
        # OpenCV writes in 256 KiB chunks: the second one takes the disk below the reserve
        filler = disk / "filler"
        filler.write_bytes(bytes(shutil.disk_usage(disk).free - reserve - (300 << 10)))
        recorder = Recorder(disk / "cam.mp4", reserve=reserve)
        recorder.open()
        stream = frames(1000)
        while not warnings(caplog):
            recorder.handle((next(stream), PREDICTION))
        assert "less than the 1.0 MiB it keeps free" in warnings(caplog)[0]
        first = probe(disk / "cam.mp4")  # finished while there was room: it plays
        assert first["frames"] == recorder.written
        recorder.handle((next(stream), PREDICTION))  # paused: not recorded
        assert recorder.unrecorded == 2  # this one and the one that found the disk full
        filler.unlink()  # room again
        resumed = next(stream)
        for frame in [resumed, next(stream), next(stream)]:
            recorder.handle((frame, PREDICTION))
        recorder.close()
        stamp = datetime.fromtimestamp(resumed.timestamp, UTC).strftime("%Y%m%d-%H%M%S")
        assert sorted(p.name for p in disk.iterdir()) == ["cam.mp4", f"cam_{stamp}.mp4"]
        assert probe(disk / f"cam_{stamp}.mp4")["frames"] == 3
    assert len(warnings(caplog)) == 1
    assert recorder.written == first["frames"] + 3
