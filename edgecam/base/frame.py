"""What flows through the pipeline."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Stamp(NamedTuple):
    """Which picture a result is of, without its pixels: what an output that queues many results
    (the log) keeps of each frame."""

    index: int
    timestamp: float
    source: str
    camera: str = ""


@dataclass(frozen=True)
class Frame:
    """One captured picture: RGB uint8 HxWx3, its index in the source and its capture time."""

    image: np.ndarray
    index: int
    timestamp: float  # time.time() at capture
    source: str = ""
    # The same picture already scaled by the camera's ISP near the model input (picamera2's lores
    # stream); preprocessing starts from it when present.
    model_image: np.ndarray | None = None
    camera: str = ""  # its camera's name when a run has several (or names its one); else ""

    @property
    def stamp(self) -> Stamp:
        return Stamp(self.index, self.timestamp, self.source, self.camera)


@dataclass(frozen=True)
class Label:
    label: str
    index: int
    score: float


@dataclass(frozen=True)
class Prediction:
    """The top-k of one frame and what it cost."""

    top: list[Label]
    inference_ms: float
    fps: float = 0.0
    model: str = ""
    backend: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def best(self) -> Label:
        return self.top[0]
