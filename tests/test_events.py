"""Event mode: change, threshold and stable events on smoothed scores, snapshots with retention,
and a real headless run that logs only events."""
from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
from conftest import edgecam, read_jsonl

from edgecam.base.frame import Frame, Label, Prediction
from edgecam.sinks.events import EventDetector, Snapshots


def prediction(label: str, score: float) -> Prediction:
    return Prediction([Label(label, 0, score), Label("other", 1, score / 2)], 10.0)


def events(detector: EventDetector, frames: list[tuple[str, float]]) -> list[tuple[int, str, bool | None]]:
    found = []
    for i, (label, score) in enumerate(frames):
        event = detector.update(prediction(label, score))
        if event:
            found.append((i, event["label"], event.get("above")))
    return found


def test_change_events_once_per_new_label() -> None:
    frames = [("cat", 0.9)] * 3 + [("dog", 0.8)] * 2 + [("cat", 0.7)]
    assert events(EventDetector("change"), frames) == [(0, "cat", None), (3, "dog", None), (5, "cat", None)]


def test_threshold_events_on_crossing_up_and_down() -> None:
    frames = [("cat", 0.3), ("cat", 0.6), ("cat", 0.7), ("dog", 0.8), ("dog", 0.2), ("dog", 0.1)]
    assert events(EventDetector("threshold", threshold=0.5), frames) == \
        [(1, "cat", True), (3, "dog", True), (4, "dog", False)]


def test_stable_waits_for_n_frames_and_ignores_flicker() -> None:
    frames = [("cat", 0.9)] * 3 + [("dog", 0.9)] + [("cat", 0.9)] * 3 + [("dog", 0.9)] * 3
    assert events(EventDetector("stable", stable_frames=3), frames) == [(2, "cat", None), (9, "dog", None)]


def test_smoothing_absorbs_a_single_odd_frame() -> None:
    frames = [("cat", 0.6)] * 4 + [("dog", 0.7)] + [("cat", 0.6)] * 4
    assert events(EventDetector("change", smooth_frames=1), frames) == \
        [(0, "cat", None), (4, "dog", None), (5, "cat", None)]
    assert events(EventDetector("change", smooth_frames=3), frames) == [(0, "cat", None)]


def test_snapshots_keep_the_newest_within_count_and_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), np.uint8)  # noise: every JPEG is about the same size
    for keep, max_bytes in ((3, None), (None, 100_000)):
        folder = tmp_path / f"keep{keep}"
        snapshots = Snapshots(folder, keep, max_bytes)
        snapshots.open()
        for i in range(8):
            snapshots.handle((Frame(image, i, 1.7e9 + i, "demo"), prediction("tabby cat", 0.9)))
        snapshots.close()
        files = sorted(folder.iterdir())
        sizes = sum(p.stat().st_size for p in files)
        assert (len(files) == 3) if keep else (sizes <= 100_000 and len(files) >= 1)
        assert files[-1].name.endswith("_7_tabby-cat.jpg")
        assert all(cv2.imread(str(p)) is not None for p in files)


def test_a_run_logs_and_snapshots_only_change_events(tmp_path: Path) -> None:
    log, folder = tmp_path / "events.jsonl", tmp_path / "snaps"
    result = edgecam("run", "--headless", "--frames", "60", "--events", "change", "--smooth", "3",
                     "--log", str(log), "--snapshots", str(folder), "--snapshot-keep", "2", check=True)
    records = read_jsonl(log)
    assert 1 <= len(records) < 60, result.stderr
    kinds = {r["event"]["kind"] for r in records}
    assert kinds == {"change"}
    labels = [r["event"]["label"] for r in records]
    assert all(a != b for a, b in itertools.pairwise(labels))
    assert [r["event"]["previous"] for r in records] == [None, *labels[:-1]]
    snaps = sorted(folder.iterdir())
    assert 1 <= len(snaps) <= 2 and all(cv2.imread(str(p)) is not None for p in snaps)
