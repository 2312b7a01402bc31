"""The headless log survives: rotation keeps the configured files, kill -9 leaves only valid lines,
and a full disk, a read-only remount or a removed folder cost records, never the run."""
from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import edgecam, read_jsonl, wait_for

from edgecam.base.frame import Frame, Label, Prediction
from edgecam.sinks.logfile import JsonlFormat, LogFile


def start_run(*args: str, stderr: Path) -> subprocess.Popen:
    """`edgecam run` on the endless demo clip, in the background."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--headless", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr.open("w"))


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_rotation_at_1mb_keeps_the_configured_number_of_files(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    log = LogFile(path, JsonlFormat(), max_bytes=1 << 20, keep=3)
    log.open()
    image = np.zeros((8, 8, 3), np.uint8)
    prediction = Prediction([Label(f"label {i}", i, 0.1) for i in range(5)], 12.5, 30.0, "m", "onnx")
    frames = 12000  # about 5 MB of records
    for i in range(frames):
        log.write(Frame(image, i, 1.7e9 + i / 30, "demo"), prediction)
    log.close()
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["run.jsonl", "run.jsonl.1", "run.jsonl.2", "run.jsonl.3"]
    assert all(p.stat().st_size <= 1 << 20 for p in files)
    assert all(p.stat().st_size > 900_000 for p in files[1:])
    # Oldest to newest, the kept records follow each other without a gap, up to the last one.
    kept = [r["frame"] for p in reversed(files[1:]) for r in read_jsonl(p)] + \
           [r["frame"] for r in read_jsonl(path)]
    assert kept == list(range(frames - len(kept), frames))


def test_csv_log_rotates_with_a_header_in_each_file(tmp_path: Path) -> None:
    path = tmp_path / "run.csv"
    edgecam("run", "--headless", "--frames", "30", "--topk", "2", "--log", str(path),
            "--log-max-bytes", "2k", "--log-keep", "1", check=True)
    files = [path, tmp_path / "run.csv.1"]
    assert sorted(tmp_path.iterdir()) == sorted(files)
    rows = [row for p in files for row in csv.DictReader(p.open())]
    assert rows and all(set(row) == {"time", "frame", "source", "model", "backend", "inference_ms",
                                     "fps", "event", "label_1", "score_1", "label_2", "score_2"}
                        for row in rows)
    assert all(0 <= float(row["score_2"]) <= float(row["score_1"]) <= 1 for row in rows)


def test_kill_9_leaves_a_log_whose_every_line_parses(tmp_path: Path) -> None:
    path = tmp_path / "crash.jsonl"
    run = start_run("--log", str(path), stderr=tmp_path / "stderr")
    try:
        wait_for(lambda: lines_in(path) >= 15, what="15 logged frames")
        run.send_signal(signal.SIGKILL)
        run.wait(30)
    finally:
        run.kill()
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete, rest = lines[:-1], lines[-1]  # `rest` is the line being written, if any
    assert len(complete) >= 15
    frames = [json.loads(line)["frame"] for line in complete]
    assert frames == sorted(frames)
    # A second run appends after whatever the crash left, and the log stays valid.
    edgecam("run", "--headless", "--frames", "3", "--log", str(path), check=True)
    after = path.read_bytes().split(b"\n")
    assert after[-1] == b""
    bad = [line for line in after[:-1] if not _parses(line)]
    assert bad == ([rest] if rest else [])


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def write_until_it_fails(fd: int) -> None:
    while os.write(fd, b"\0" * 4096):
        pass


def test_full_disk_read_only_and_removed_folder_cost_records_not_the_run(tiny_disk: Path,
                                                                         tmp_path: Path) -> None:
    path = tiny_disk / "logs" / "run.jsonl"
    stderr = tmp_path / "stderr"
    run = start_run("--log", str(path), stderr=stderr)
    try:
        wait_for(lambda: lines_in(path) >= 3, what="the first records")
        # Fill the disk: the log cannot grow, edgecam warns once and keeps classifying.
        filler = tiny_disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError, match=r"^\[Errno 28\] ") as full:  # ENOSPC
                write_until_it_fails(fd)
        finally:
            os.close(fd)
        assert full.value.errno == errno.ENOSPC
        wait_for(lambda: "the disk is full" in stderr.read_text(), what="the disk-full warning")
        full = path.stat().st_size
        time.sleep(2)
        assert path.stat().st_size == full
        filler.unlink()
        wait_for(lambda: path.stat().st_size > full + 1000, what="logging to resume")
        # A read-only file system mounted over the log folder, then taken away again.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path.parent)],
                       check=True)
        try:
            wait_for(lambda: "Read-only file system" in stderr.read_text(),
                     what="the read-only warning")
        finally:
            subprocess.run(["umount", str(path.parent)], check=True)
        frozen = path.stat().st_size
        wait_for(lambda: path.stat().st_size > frozen + 1000, what="logging to resume")
        # The folder removed: a warning, and logging resumes once it is back.
        (tiny_disk / "logs").rename(tiny_disk / "moved")
        wait_for(lambda: "No such file or directory" in stderr.read_text(), what="the missing-folder warning")
        (tiny_disk / "logs").mkdir()
        wait_for(lambda: lines_in(path) >= 3, what="logging into the folder again")
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
    finally:
        run.kill()
    messages = stderr.read_text()
    assert messages.count("WARNING") == 3, messages
    assert messages.count("writing again") == 3
    classified = int(messages.split("classified ")[1].split()[0])
    records = read_jsonl(tiny_disk / "moved" / "run.jsonl") + read_jsonl(path)
    assert 0 < len(records) < classified  # records were lost while inference went on
    assert [r["frame"] for r in records] == sorted(r["frame"] for r in records)
