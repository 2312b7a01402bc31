"""Photos taken from a running source into a dataset folder, in the layout `edgecam train` reads."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from edgecam.base.errors import EdgecamError


class ShotWriter:
    """Saves photos of one class into DATASET/LABEL as LABEL_0001.jpg, … (the layout `edgecam
    train` reads); numbering continues after the photos already there, so nothing is overwritten."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.label = folder.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EdgecamError(f"dataset folder {folder} cannot be created ({e.strerror})") from None
        pattern = re.compile(re.escape(self.label) + r"_(\d+)\.jpg$")
        taken = [int(m.group(1)) for p in folder.glob("*.jpg") if (m := pattern.match(p.name))]
        self.index = max(taken, default=0) + 1

    def save(self, rgb: np.ndarray) -> Path:
        path = self.folder / f"{self.label}_{self.index:04d}.jpg"
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise EdgecamError(f"photo {path} cannot be written: check the folder's permissions "
                               "and free space")
        self.index += 1
        return path
