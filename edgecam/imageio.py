"""Reading image files as RGB arrays, with one-line errors."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgecam.errors import SourceError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_rgb(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"image {path} does not exist")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise SourceError(f"image {path} cannot be read: {e.strerror}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"image {path} is not a readable image (JPEG, PNG, BMP, WebP, TIFF)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
