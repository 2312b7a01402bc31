"""Reading image files as RGB arrays, with one-line errors."""
from __future__ import annotations

import stat
from pathlib import Path

import cv2
import numpy as np

from edgecam.base.errors import SourceError
from edgecam.base.imagesize import max_pixels, pixel_size

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_rgb(path: str | Path) -> np.ndarray:
    """The image in `path` as uint8 RGB HxWx3, or a SourceError naming the file."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise SourceError(f"image {path} is a folder, not an image file")
        if not stat.S_ISREG(mode):  # a device or a pipe could block or never end
            raise SourceError(f"image {path} is not a regular file")
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise SourceError(f"image {path} does not exist") from None
    except OSError as e:  # unreadable, or a name too long for the file system
        raise SourceError(f"image {path} cannot be read: {e.strerror or e}") from None
    except ValueError:  # a NUL byte in the name
        raise SourceError(f"image {str(path)!r} does not exist") from None
    size = pixel_size(data[:65536].tobytes())
    if size is not None and size[0] * size[1] > max_pixels():
        raise SourceError(f"image {path} is {size[0]}×{size[1]} pixels ({size[0] * size[1] / 1e6:.0f} MP), "
                          f"more than the {max_pixels() / 1e6:g} MP edgecam decodes: make it smaller, or "
                          "raise EDGECAM_MAX_IMAGE_MP")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:  # most decoders return None for bad data; some raise
        image = None
    if image is None:
        raise SourceError(f"image {path} is not a readable image (JPEG, PNG, BMP, WebP, TIFF)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
