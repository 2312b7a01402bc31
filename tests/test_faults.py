"""Fault suite: real faults injected into real `edgecam run`s. Sources that break and come back (a
video file replaced then truncated, a folder changing under a looping run, an RTSP server lost
several times in a row and then for good), the cached model corrupted (before a start, while a run
uses it, with the cache read-only), the log's disk full with rotation on and its folder removed,
and SIGHUP storms. Signals at random moments are in test_faults_signals.py.

The behaviour asserted: a run keeps going through what it can survive, and otherwise ends with one
`edgecam: error:` line and exit 1; never a traceback; the log always parses."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import pytest
from conftest import (
    MODEL_FILES,
    Server,
    edgecam,
    photo,
    read_jsonl,
    require,
    require_encoder,
    wait_for,
)
from test_errors import assert_one_line_error
from test_logs import lines_in, start_run
from test_streams import capture_time

from edgecam.base.samples import SHOTS

pytestmark = pytest.mark.faults


def finished(run: subprocess.Popen, stderr: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    """Wait for a background run to end, as a CompletedProcess the one-line-error check takes."""
    run.wait(timeout)
    return subprocess.CompletedProcess(run.args, run.returncode, "", stderr.read_text())


def stop(run: subprocess.Popen, stderr: Path) -> str:
    """SIGTERM a background run that must still be going; it must exit 0. Its stderr."""
    assert run.poll() is None, stderr.read_text()
    run.send_signal(signal.SIGTERM)
    result = finished(run, stderr, 60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def warnings_in(stderr: Path) -> list[str]:
    return [line for line in stderr.read_text().splitlines() if line.startswith("WARNING")]


def records(log: Path) -> list[dict]:
    """The log's records so far (none before it is created); every line must parse."""
    return read_jsonl(log) if log.exists() else []


def top1(record: dict) -> str:
    return record["top"][0]["label"]


# --- sources ------------------------------------------------------------------------------------

def still_video(path: Path, name: str, frames: int = 20) -> Path:
    """A short video of one of the real photos (MPEG-4 in MP4, written by OpenCV)."""
    size = (320, 240)
    require_encoder("mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30, size)
    image = cv2.cvtColor(cv2.resize(photo(name), size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return path


def test_looping_video_file_replaced_then_truncated(tmp_path: Path) -> None:
    """A looping video replaced while running is picked up at its next pass (it is read again from
    the file as it is now); truncated, it ends the run with one line naming it, exit 1."""
    video, log, stderr = tmp_path / "clip.mp4", tmp_path / "run.jsonl", tmp_path / "stderr"
    still_video(video, "chelsea")
    run = start_run("--source", str(video), "--loop", "--log", str(log), stderr=stderr)
    try:
        wait_for(lambda: lines_in(log) >= 30 or run.poll() is not None, what="a pass and a loop")
        os.replace(still_video(tmp_path / "next.mp4", "coffee"), video)
        wait_for(lambda: top1(read_jsonl(log)[-1]) in SHOTS["coffee"] or run.poll() is not None,
                 what="the replaced video")
        os.truncate(video, video.stat().st_size // 2)
        result = finished(run, stderr)
    finally:
        run.kill()
    assert_one_line_error(result, 1, str(video), "cannot be decoded")
    assert not warnings_in(stderr), result.stderr
    ffmpeg = [line for line in result.stderr.splitlines() if line.startswith("[")]  # [mov @ 0x…] …
    assert not ffmpeg, result.stderr
    labels = [top1(r) for r in read_jsonl(log)]
    assert labels[0] in SHOTS["chelsea"] and labels[-1] in SHOTS["coffee"], labels


def test_looping_folder_with_images_removed_and_added(tmp_path: Path, photo_files: dict[str, Path]) -> None:
    """A looping folder is listed again at each pass: an image removed leaves (at most one warning
    if it goes between the listing and its read), one added joins; emptied, the folder ends the
    run with one line, exit 1."""
    folder, log, stderr = tmp_path / "photos", tmp_path / "run.jsonl", tmp_path / "stderr"
    folder.mkdir()
    for name in ("chelsea", "coffee"):
        shutil.copy(photo_files[name], folder)
    sources = lambda: [Path(r["source"]).stem for r in records(log)]  # noqa: E731
    run = start_run("--source", str(folder), "--loop", "--log", str(log), stderr=stderr)
    try:
        wait_for(lambda: {"chelsea", "coffee"} <= set(sources()) or run.poll() is not None,
                 what="both photos")
        (folder / photo_files["chelsea"].name).unlink()
        shutil.copy(photo_files["rocket"], folder)
        wait_for(lambda: sources().count("rocket") >= 3 or run.poll() is not None,
                 what="the added photo")
        for image in folder.iterdir():
            image.unlink()
        result = finished(run, stderr)
    finally:
        run.kill()
    assert_one_line_error(result, 1, str(folder), "has no images")
    seen = sources()
    assert "chelsea" not in seen[seen.index("rocket"):], seen  # gone from the passes after it left
    removed = [w for w in warnings_in(stderr) if "does not exist" in w]
    assert removed == warnings_in(stderr) and len(removed) <= 3, result.stderr


@pytest.mark.parametrize("server", ["rtsp"], indirect=True)
def test_rtsp_outages_in_a_row_then_gone_for_good(server: Server, tmp_path: Path) -> None:
    """Three outages in a row: one warning each and frames after each; then the server stays away
    and the run gives up after --reconnect-timeout: one line, exit 1, and the log parses."""
    log, stderr = tmp_path / "run.jsonl", tmp_path / "stderr"
    run = start_run("--source", server.uri, "--log", str(log), "--read-timeout", "2",
                    "--reconnect-timeout", "10", stderr=stderr)
    try:
        since = 0.0
        for outage in range(1, 4):
            wait_for(lambda since=since: sum(capture_time(r) > since for r in records(log)) >= 3
                     or run.poll() is not None, 120, f"frames before outage {outage}")
            server.kill()
            wait_for(lambda outage=outage: len(warnings_in(stderr)) == outage or run.poll() is not None,
                     60, f"the warning of outage {outage}")
            server.start()
            since = time.time()
        wait_for(lambda: sum(capture_time(r) > since for r in records(log)) >= 3
                 or run.poll() is not None, 120, "frames after the last outage")
        server.kill()  # for good
        result = finished(run, stderr)
    finally:
        run.kill()
    assert_one_line_error(result, 1, server.uri, "delivered no frame for 10 s")
    assert len(warnings_in(stderr)) == 4 and result.stderr.count("resumed after") == 3, result.stderr
    frames = [r["frame"] for r in read_jsonl(log)]
    assert frames == sorted(frames) and len(frames) >= 12


# --- the model cache ----------------------------------------------------------------------------

def leftovers(cache: Path) -> list[str]:
    """Temporary files a build left: `.NAME.xxxx` (the artifact or its sidecar; older builds named
    the sidecar's `NAME.tmp`)."""
    return [p.name for p in cache.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def assert_rebuilt(result: subprocess.CompletedProcess, cache: Path, model_cache: Path) -> None:
    assert result.returncode == 0, result.stderr
    assert "rebuilding" in result.stderr and "Traceback" not in result.stderr, result.stderr
    model = (cache / MODEL_FILES[0]).read_bytes()
    assert model == (model_cache / MODEL_FILES[0]).read_bytes()
    assert json.loads((cache / MODEL_FILES[1]).read_text())["sha256"] == \
        json.loads((model_cache / MODEL_FILES[1]).read_text())["sha256"]
    assert not leftovers(cache)


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 3)


CORRUPTIONS = {
    "model truncated": lambda cache: truncate(cache / MODEL_FILES[0]),
    "sidecar missing": lambda cache: (cache / MODEL_FILES[1]).unlink(),
    "sidecar garbage": lambda cache: (cache / MODEL_FILES[1]).write_bytes(os.urandom(300)),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_corrupt_cached_model_is_rebuilt(corruption: str, cache: Path, model_cache: Path) -> None:
    CORRUPTIONS[corruption](cache)
    assert_rebuilt(edgecam("run", "--headless", "--frames", "2"), cache, model_cache)


def test_model_corrupted_while_a_run_uses_it(cache: Path, model_cache: Path, tmp_path: Path) -> None:
    """Garbage written over the model file in place while a run has it loaded: that run goes on
    (the model is in memory) and stops cleanly; the next start sees the damage and rebuilds."""
    log, stderr = tmp_path / "run.jsonl", tmp_path / "stderr"
    run = start_run("--log", str(log), stderr=stderr)
    try:
        wait_for(lambda: lines_in(log) >= 5 or run.poll() is not None, what="the first records")
        model = cache / MODEL_FILES[0]
        with model.open("r+b") as f:
            f.seek(model.stat().st_size // 2)
            f.write(os.urandom(1 << 16))
        corrupted = lines_in(log)
        wait_for(lambda: lines_in(log) >= corrupted + 20 or run.poll() is not None,
                 what="records after the corruption")
        stop(run, stderr)
    finally:
        run.kill()
    assert read_jsonl(log)
    assert_rebuilt(edgecam("run", "--headless", "--frames", "2"), cache, model_cache)


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` bind-mounted read-only over itself: even root cannot write there (a read-only
    /var/lib or SD card)."""
    require("mount", "mount")
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {mounted.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_cache_needing_a_rebuild_is_one_line(cache: Path) -> None:
    truncate(cache / MODEL_FILES[0])
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    with read_only(cache):
        result = edgecam("run", "--headless", "--frames", "2")
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before  # nothing half-written
    assert_one_line_error(result, 1, str(cache))


# --- the log ------------------------------------------------------------------------------------

def test_rotating_log_through_a_full_disk_and_a_removed_folder(tiny_disk: Path, tmp_path: Path) -> None:
    """With rotation on: the disk fills (records are lost, the run goes on), space is freed (logging
    and rotation resume), the folder is deleted and made again (logging resumes), and a SIGTERM
    while the disk is full again exits 0. Every file parses, none is over the limit, and the
    records kept are in order across the rotated files."""
    folder, stderr, limit = tiny_disk / "logs", tmp_path / "stderr", 16 << 10
    path, rotated = folder / "run.jsonl", folder / "run.jsonl.1"
    filler = tiny_disk / "filler"
    run = start_run("--log", str(path), "--log-max-bytes", str(limit), "--log-keep", "2",
                    stderr=stderr)
    try:
        wait_for(lambda: rotated.exists() or run.poll() is not None, what="a first rotation")
        fill(filler)
        wait_for(lambda: "the disk is full" in stderr.read_text(), what="the disk-full warning")
        filler.unlink()
        wait_for(lambda: "writing again" in stderr.read_text(), what="logging to resume")
        first = inode(rotated)
        wait_for(lambda: inode(rotated) not in (first, None), what="a rotation after the disk was full")
        shutil.rmtree(folder)
        wait_for(lambda: len(warnings_in(stderr)) == 2, what="the missing-folder warning")
        folder.mkdir()
        wait_for(lambda: lines_in(path) >= 3, what="logging into the new folder")
        fill(filler)
        wait_for(lambda: len(warnings_in(stderr)) == 3, what="the second disk-full warning")
        messages = stop(run, stderr)
    finally:
        run.kill()
    assert messages.count("writing again") == 2, messages
    assert all(int(line.split("(")[1].split()[0]) > 0 for line in messages.splitlines()
               if "writing again" in line), messages  # records were lost, not queued
    files = [folder / "run.jsonl.2", rotated, path]
    kept = [r["frame"] for p in files if p.exists() for r in read_jsonl(p)]
    assert kept == sorted(kept) and len(kept) >= 3
    assert all(p.stat().st_size <= limit for p in files if p.exists())


def inode(path: Path) -> int | None:
    """The file's inode number; None while a rotation has it renamed away."""
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def write_until_it_fails(f: io.RawIOBase) -> None:
    while f.write(bytes(4096)):
        pass


def fill(filler: Path) -> None:
    """Write `filler` until the file system is full."""
    with filler.open("wb", buffering=0) as f, pytest.raises(OSError, match=r"^\[Errno 28\] ") as full:
        write_until_it_fails(f)
    assert full.value.errno == 28, full.value  # ENOSPC


# --- configuration reload -----------------------------------------------------------------------

def test_sighup_storm_ends_with_a_working_run(tmp_path: Path) -> None:
    """Ten SIGHUPs in quick succession, some landing mid-restart (ignored while the model loads):
    the run ends up going with the latest config, and SIGTERM still exits 0."""
    log, config, stderr = tmp_path / "run.jsonl", tmp_path / "edgecam.toml", tmp_path / "stderr"
    config.write_text(f'topk = 2\nlog = "{log}"\n')
    run = start_run("--config", str(config), stderr=stderr)
    try:
        wait_for(lambda: lines_in(log) >= 5 or run.poll() is not None, what="the first records")
        config.write_text(f'topk = 3\nlog = "{log}"\n')
        for _ in range(10):
            run.send_signal(signal.SIGHUP)
            time.sleep(0.05)
        storm_over = time.time()
        wait_for(lambda: sum(capture_time(r) > storm_over and len(r["top"]) == 3
                             for r in records(log)) >= 10 or run.poll() is not None,
                 what="records after the storm")
        messages = stop(run, stderr)
    finally:
        run.kill()
    assert 1 <= messages.count("restarting the run") <= 10, messages
    sizes = [len(r["top"]) for r in read_jsonl(log)]
    assert sizes[0] == 2 and sizes[-1] == 3 and sizes == sorted(sizes)
