"""The built-in `demo` source: the demo clip (edgecam.base.samples) paced like a camera, looping
forever. Everything in edgecam runs with it on a machine without a camera."""
from __future__ import annotations

import time

import numpy as np

from edgecam.base.samples import DemoClip
from edgecam.sources.base import LiveSource


class DemoSource(LiveSource):
    def __init__(self, uri: str = "demo", fps: float = 30.0, width: int = 1280,
                 height: int = 720) -> None:
        super().__init__(uri)
        self.fps = fps
        self.size = (width, height)
        self._index = 0
        self._next_time = 0.0

    def _connect(self) -> None:
        self.clip = DemoClip(*self.size)
        self._next_time = time.monotonic()

    def _grab(self) -> np.ndarray | None:
        if self.fps > 0:
            delay = self._next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_time = max(self._next_time + 1.0 / self.fps, time.monotonic() - 1.0)
        self._current = self.clip.shot(self._index)
        image = self.clip.frame(self._index)
        self._index += 1
        return image

    def _name(self) -> str:
        return f"demo/{self._current}"

    def _disconnect(self) -> None:
        pass
