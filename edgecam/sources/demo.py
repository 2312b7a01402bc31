"""The built-in `demo` source: a camera-sized clip rendered from real photos that ship with
scikit-image (slow zooms and pans over a cat, an espresso, a rocket and a motorbike), paced like a
camera, looping forever. Everything in edgecam runs with it on a machine without a camera."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import cv2
import numpy as np

from edgecam.errors import SourceError
from edgecam.sources.base import LiveSource

# photo (a file in scikit-image's data folder) → what an ImageNet classifier should see in it
SHOTS: dict[str, tuple[str, ...]] = {
    "chelsea": ("tabby", "tiger cat", "Egyptian cat"),
    "coffee": ("espresso", "cup", "coffee mug"),
    "rocket": ("missile", "projectile"),
    "motorcycle": ("moped", "motor scooter"),
}
FILES = {"chelsea": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg",
         "motorcycle": "motorcycle_left.png"}


def photos() -> dict[str, np.ndarray]:
    """The photos as RGB arrays, read straight from the installed scikit-image package: importing
    scikit-image itself would cost half a second and tens of MB the demo does not need."""
    found = importlib.util.find_spec("skimage")
    if found is None or not found.submodule_search_locations:
        raise SourceError("the demo source renders photos from scikit-image: "
                          "pip install 'edgecam[demo]' (or pip install scikit-image)")
    folder = Path(list(found.submodule_search_locations)[0]) / "data"
    result = {}
    for name, file in FILES.items():
        bgr = cv2.imread(str(folder / file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"demo photo {folder / file} is missing: pip install --force-reinstall "
                              "scikit-image")
        result[name] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return result


class DemoClip:
    """Frame i of the clip, computed on demand: each shot zooms from 1.0 to 1.25 and drifts."""

    def __init__(self, width: int = 1280, height: int = 720, shot_frames: int = 90) -> None:
        self.width, self.height, self.shot_frames = width, height, shot_frames
        self.photos = photos()
        self.names = list(self.photos)

    def __len__(self) -> int:
        return len(self.names) * self.shot_frames

    def shot(self, index: int) -> str:
        return self.names[(index // self.shot_frames) % len(self.names)]

    def frame(self, index: int) -> np.ndarray:
        photo = self.photos[self.shot(index)]
        t = (index % self.shot_frames) / max(self.shot_frames - 1, 1)
        h, w = photo.shape[:2]
        zoom = max(self.width / w, self.height / h) * (1.0 + 0.25 * t)
        # drift the photo's centre a little, alternating direction from shot to shot
        direction = 1 if (index // self.shot_frames) % 2 == 0 else -1
        cx = w / 2 + direction * 0.04 * w * (t - 0.5)
        cy = h / 2 - 0.03 * h * (t - 0.5)
        matrix = np.array([[zoom, 0, self.width / 2 - zoom * cx],
                           [0, zoom, self.height / 2 - zoom * cy]], dtype=np.float64)
        return cv2.warpAffine(photo, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)


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
