"""Events for headless loggers: instead of every frame, pass on only the frames where something
happened (the top-1 label changed, crossed a score threshold, or held for N frames), judged on
scores smoothed over the last few frames so one noisy frame does not make an event.

An event rides along with the prediction (`prediction.extra["event"]`), so the log, MQTT and the
snapshots that receive it all carry the same event."""
from __future__ import annotations

import logging
import re
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import cv2

from edgecam.base import atomic
from edgecam.base.errors import EdgecamError
from edgecam.base.frame import Frame, Prediction
from edgecam.sinks.base import Sink, ThreadedSink
from edgecam.sinks.metrics import Metrics

log = logging.getLogger(__name__)

MODES = ("every", "change", "threshold", "stable")


class Smoother:
    """The mean score of each label over the last `frames` frames (a label outside a frame's
    top-k counts as 0 there), and the best of them; None when those frames reported no label
    (--only, --ignore, --min-score let none pass)."""

    def __init__(self, frames: int) -> None:
        self.history: deque[dict[str, float]] = deque(maxlen=frames)

    def update(self, prediction: Prediction) -> tuple[str | None, float]:
        self.history.append({t.label: t.score for t in prediction.top})
        sums: dict[str, float] = defaultdict(float)
        for scores in self.history:
            for label, score in scores.items():
                sums[label] += score
        if not sums:
            return None, 0.0
        label = max(sums, key=sums.__getitem__)
        return label, sums[label] / len(self.history)


class EventDetector:
    """Turns each frame's (smoothed) top-1 into an event or None.

    change: the label differs from the last event's. threshold: the label rose to `threshold` or
    more, changed while above it, or fell below it. stable: a label stayed top-1 for
    `stable_frames` frames in a row and is not the last event's label."""

    def __init__(self, mode: str, threshold: float = 0.5, stable_frames: int = 5,
                 smooth_frames: int = 1) -> None:
        self.mode = mode
        self.threshold = threshold
        self.stable_frames = stable_frames
        self.smoother = Smoother(smooth_frames)
        self.state: str | None = None  # the label the last event reported (None: below threshold)
        self._candidate: str | None = None
        self._run = 0

    def update(self, prediction: Prediction) -> dict | None:
        label, score = self.smoother.update(prediction)
        if label is None and self.mode != "threshold":
            # nothing of interest in sight: no event, but the next label seen is news again
            self.state = self._candidate = None
            self._run = 0
            return None
        if self.mode == "threshold":
            new: str | None = label if label is not None and score >= self.threshold else None
        elif self.mode == "stable":
            self._run = self._run + 1 if label == self._candidate else 1
            self._candidate = label
            new = label if self._run >= self.stable_frames else self.state
        else:
            new = label
        if new == self.state:
            return None
        event = {"kind": self.mode, "label": label or self.state, "score": round(score, 5),
                 "previous": self.state}
        if self.mode == "threshold":
            event["above"] = new is not None
        self.state = new
        return event


class EventFilter(Sink):
    """Passes only the frames that are events on to `outputs`, with the event attached. Each
    camera has a detector of its own (`detector` makes one): a label seen by one camera is not
    news to another."""

    def __init__(self, detector: Callable[[], EventDetector], outputs: list[Sink],
                 metrics: Metrics | None = None):
        self.detectors: defaultdict[str, EventDetector] = defaultdict(detector)
        self.outputs = outputs
        self.metrics = metrics

    def open(self) -> None:
        opened: list[Sink] = []
        try:
            for output in self.outputs:
                output.open()
                opened.append(output)
        except BaseException:
            for output in reversed(opened):  # what opened is released: the run does not go on
                output.close()
            raise

    def write(self, frame: Frame, prediction: Prediction) -> None:
        event = self.detectors[frame.camera].update(prediction)
        if event is None:
            return
        if self.metrics is not None:
            self.metrics.event(event["kind"])
        prediction = replace(prediction, extra={**prediction.extra, "event": event})
        for output in self.outputs:
            output.write(frame, prediction)

    def close(self, reloading: bool = False) -> None:
        for output in reversed(self.outputs):
            output.close(reloading)


SNAPSHOT_NAME = re.compile(r"^\d{8}-\d{6}\.\d{3}_([a-z0-9][a-z0-9_-]*_)?\d+_.*\.jpg$")


class Snapshots(ThreadedSink[tuple[Frame, Prediction]]):
    """A JPEG of the frame for each event it receives, written on a thread of its own (skipped
    when that thread is still busy), keeping at most `keep` files and `max_bytes` in `folder`."""

    def __init__(self, folder: Path, keep: int | None = 100, max_bytes: int | None = None,
                 quality: int = 90, metrics: Metrics | None = None) -> None:
        super().__init__("snapshots")
        self.folder = folder
        self.keep = keep
        self.max_bytes = max_bytes
        self.quality = quality
        self.metrics = metrics
        self._files: deque[tuple[Path, int]] = deque()  # oldest first, with sizes
        self._bytes = 0
        self._failing = False

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            existing = sorted(p for p in self.folder.iterdir() if SNAPSHOT_NAME.match(p.name))
        except OSError as e:
            raise EdgecamError(f"snapshot folder {self.folder} cannot be used ({e.strerror}): choose "
                               "another --snapshots folder or fix its permissions") from None
        for path in existing:
            self._add(path, path.stat().st_size)
        self._prune()
        super().open()

    def handle(self, item: tuple[Frame, Prediction]) -> None:
        """Save one JPEG, then drop the oldest beyond the limits."""
        frame, prediction = item
        stamp = datetime.fromtimestamp(frame.timestamp, UTC).strftime("%Y%m%d-%H%M%S.%f")[:-3]
        name = prediction.top[0].label if prediction.top else prediction.extra.get("event", {}).get("label")
        label = re.sub(r"[^A-Za-z0-9]+", "-", name or "").strip("-")[:40] or "frame"
        camera = f"{frame.camera}_" if frame.camera else ""
        path = self.folder / f"{stamp}_{camera}{frame.index}_{label}.jpg"
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for a {frame.image.shape} frame")
        try:
            with atomic.replaced(path) as partial:  # a reader never sees half a JPEG
                partial.write_bytes(jpeg.tobytes())
        except OSError as e:
            if self.metrics is not None:
                self.metrics.error("snapshots")
            if not self._failing:
                log.warning("snapshot %s cannot be written (%s): classification goes on", path,
                            e.strerror)
            self._failing = True
            return
        self._failing = False
        self._add(path, len(jpeg))
        self._prune()

    def _add(self, path: Path, size: int) -> None:
        self._files.append((path, size))
        self._bytes += size

    def _prune(self) -> None:
        while self._files and ((self.keep is not None and len(self._files) > self.keep)
                               or (self.max_bytes is not None and self._bytes > self.max_bytes)):
            path, size = self._files.popleft()
            self._bytes -= size
            path.unlink(missing_ok=True)
