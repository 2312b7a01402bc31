"""Counters of a run in the Prometheus text format (served at /metrics by the web preview).

Dropped frames are the gaps in the source's frame numbers: a live source numbers every frame it
captures, so a gap is a frame that was replaced by a newer one before the network got to it.
Board health (edgecam.base.health) is read when rendering, at most once a second, and only the
values this machine has get a line."""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from edgecam.base.frame import Frame, Prediction
from edgecam.base.health import Monitor
from edgecam.sinks.base import Sink

# Inference latency buckets in seconds: a Pi Zero 2 W takes ~0.5 s for Lite0, a Pi 5 ~20 ms.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class CameraCounts:
    frames: int = 0
    dropped: int = 0
    fps: float = 0.0
    last_index: int | None = None


class Metrics(Sink):
    def __init__(self, health: Monitor | None = None) -> None:
        self._lock = threading.Lock()
        self.health = health or Monitor()
        self.started = time.time()
        # per camera ("" for the one camera of a run that names none): labelled when named
        self.cameras: dict[str, CameraCounts] = {}
        self.model = self.backend = ""
        self.buckets = [0] * len(BUCKETS)
        self.latency_sum = 0.0
        self.errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        # Gauges owned by other outputs (the preview's viewer count), read when rendering.
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.counters: dict[str, tuple[str, Callable[[], float]]] = {}  # the same, only ever growing

    def write(self, frame: Frame, prediction: Prediction) -> None:
        seconds = prediction.inference_ms / 1000
        with self._lock:
            counts = self.cameras.setdefault(frame.camera, CameraCounts())
            if counts.last_index is not None and frame.index > counts.last_index + 1:
                counts.dropped += frame.index - counts.last_index - 1
            counts.last_index = frame.index
            counts.frames += 1
            counts.fps = prediction.fps
            self.model, self.backend = prediction.model, prediction.backend
            self.latency_sum += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1

    @property
    def frames(self) -> int:
        with self._lock:
            return self._frames()

    def _frames(self) -> int:
        return sum(c.frames for c in self.cameras.values())

    @property
    def dropped(self) -> int:
        with self._lock:
            return sum(c.dropped for c in self.cameras.values())

    def _per_camera(self, value: Callable[[CameraCounts], float]) -> list[tuple[str, float]]:
        """A sample per camera, labelled with its name; one unnamed camera (or none yet): one
        sample without a label, as a single-camera run always had."""
        if set(self.cameras) <= {""}:
            return [("", value(self.cameras.get("", CameraCounts())))]
        return [(f'{{camera="{_esc(name)}"}}', value(counts))
                for name, counts in sorted(self.cameras.items())]

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
                *_metric("edgecam_frames_total", "counter", "frames classified",
                         self._per_camera(lambda c: c.frames)),
                *_metric("edgecam_frames_dropped_total", "counter",
                         "frames captured but replaced by a newer one before classification",
                         self._per_camera(lambda c: c.dropped)),
                *_metric("edgecam_fps", "gauge", "classified frames per second, recent average",
                         self._per_camera(lambda c: round(c.fps, 3))),
                "# HELP edgecam_inference_seconds time the network took per frame",
                "# TYPE edgecam_inference_seconds histogram",
                *(f'edgecam_inference_seconds_bucket{{le="{bound}"}} {count}'
                  for bound, count in zip(BUCKETS, self.buckets, strict=True)),
                f'edgecam_inference_seconds_bucket{{le="+Inf"}} {self._frames()}',
                f"edgecam_inference_seconds_sum {self.latency_sum:.6f}",
                f"edgecam_inference_seconds_count {self._frames()}",
                *_metric("edgecam_errors_total", "counter", "failures of an output, by output",
                         [(f'{{output="{k}"}}', v) for k, v in sorted(self.errors.items())]),
                *_metric("edgecam_events_total", "counter", "events passed on, by kind",
                         [(f'{{kind="{k}"}}', v) for k, v in sorted(self.events.items())]),
            ]
        for kind, owned in (("gauge", self.gauges), ("counter", self.counters)):
            for name, (help_text, read) in sorted(owned.items()):
                lines += _metric(name, kind, help_text, [("", read())])
        lines += health_lines(self.health.read())
        return "\n".join(lines) + "\n"


HEALTH_GAUGES = (
    ("cpu_temperature_celsius", "edgecam_cpu_temperature_celsius", "CPU temperature"),
    ("throttled", "edgecam_throttled", "1 while the CPU runs slower than it could (Raspberry Pi "
     "firmware: ARM frequency capped, throttled or at its soft temperature limit), else 0"),
    ("under_voltage", "edgecam_under_voltage", "1 while the supply voltage is too low (Raspberry "
     "Pi firmware), else 0"),
)


def health_lines(health: dict) -> list[str]:
    """The gauges of the health values present (edgecam.base.health.read); a flag is 0 or 1."""
    return [line for key, name, help_text in HEALTH_GAUGES if key in health
            for line in _metric(name, "gauge", help_text, [("", _number(health[key]))])]


def _number(value: float | bool) -> float:
    return int(value) if isinstance(value, bool) else value


def _metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}",
            *(f"{name}{labels} {value}" for labels, value in samples)]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
