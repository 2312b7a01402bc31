"""Counters of a run in the Prometheus text format (served at /metrics by the web preview).

Dropped frames are the gaps in the source's frame numbers: a live source numbers every frame it
captures, so a gap is a frame that was replaced by a newer one before the network got to it."""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from edgecam.base.frame import Frame, Prediction
from edgecam.sinks.base import Sink

# Inference latency buckets in seconds: a Pi Zero 2 W takes ~0.5 s for Lite0, a Pi 5 ~20 ms.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics(Sink):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.frames = 0
        self.dropped = 0
        self.fps = 0.0
        self.model = self.backend = ""
        self.buckets = [0] * len(BUCKETS)
        self.latency_sum = 0.0
        self.errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self._last_index: int | None = None
        # Gauges owned by other outputs (the preview's viewer count), read when rendering.
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.counters: dict[str, tuple[str, Callable[[], float]]] = {}  # the same, only ever growing

    def write(self, frame: Frame, prediction: Prediction) -> None:
        seconds = prediction.inference_ms / 1000
        with self._lock:
            if self._last_index is not None and frame.index > self._last_index + 1:
                self.dropped += frame.index - self._last_index - 1
            self._last_index = frame.index
            self.frames += 1
            self.fps = prediction.fps
            self.model, self.backend = prediction.model, prediction.backend
            self.latency_sum += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1

    def error(self, output: str) -> None:
        """Count a failure of `output` (log, mqtt, snapshots, preview)."""
        with self._lock:
            self.errors[output] += 1

    def event(self, kind: str) -> None:
        with self._lock:
            self.events[kind] += 1

    def render(self) -> str:
        with self._lock:
            lines = [
                *_metric("edgecam_info", "gauge", "the model and backend of this run",
                         [(f'{{model="{_esc(self.model)}",backend="{_esc(self.backend)}"}}', 1)]),
                *_metric("edgecam_start_time_seconds", "gauge", "when the run started (unix time)",
                         [("", round(self.started, 3))]),
                *_metric("edgecam_frames_total", "counter", "frames classified", [("", self.frames)]),
                *_metric("edgecam_frames_dropped_total", "counter",
                         "frames captured but replaced by a newer one before classification",
                         [("", self.dropped)]),
                *_metric("edgecam_fps", "gauge", "classified frames per second, recent average",
                         [("", round(self.fps, 3))]),
                "# HELP edgecam_inference_seconds time the network took per frame",
                "# TYPE edgecam_inference_seconds histogram",
                *(f'edgecam_inference_seconds_bucket{{le="{bound}"}} {count}'
                  for bound, count in zip(BUCKETS, self.buckets, strict=True)),
                f'edgecam_inference_seconds_bucket{{le="+Inf"}} {self.frames}',
                f"edgecam_inference_seconds_sum {self.latency_sum:.6f}",
                f"edgecam_inference_seconds_count {self.frames}",
                *_metric("edgecam_errors_total", "counter", "failures of an output, by output",
                         [(f'{{output="{k}"}}', v) for k, v in sorted(self.errors.items())]),
                *_metric("edgecam_events_total", "counter", "events passed on, by kind",
                         [(f'{{kind="{k}"}}', v) for k, v in sorted(self.events.items())]),
            ]
        for kind, owned in (("gauge", self.gauges), ("counter", self.counters)):
            for name, (help_text, read) in sorted(owned.items()):
                lines += _metric(name, kind, help_text, [("", read())])
        return "\n".join(lines) + "\n"


def _metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
            *(f"{name}{labels} {value}" for labels, value in samples)]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
