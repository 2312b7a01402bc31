"""The demo clip: camera-sized frames rendered from real photos that ship with scikit-image (slow
zooms and pans over a cat, an espresso, a rocket and a motorbike). The `demo` source paces it like a
camera; int8 calibration, `--backend auto` and the benchmarks take their sample frames from it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from edgecam.base.errors import SourceError
from edgecam.base.preprocess import center_crop_resize

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
    folder = Path(next(iter(found.submodule_search_locations))) / "data"
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


def model_frames(size: int, count: int, width: int = 1280, height: int = 720) -> np.ndarray:
    """`count` frames spread evenly over the demo clip, each brought to the model input `size`."""
    clip = DemoClip(width, height)
    picks = np.linspace(0, len(clip) - 1, count).round().astype(int)
    return np.stack([center_crop_resize(clip.frame(int(i)), size) for i in picks])
