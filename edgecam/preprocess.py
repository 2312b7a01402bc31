"""The geometric part of preprocessing: centre crop to a square, resize to the model input.

Normalisation, layout and dtype happen inside the model graph, so this is the only pass over the
pixels in Python."""
from __future__ import annotations

import cv2
import numpy as np


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 HxWx3 → uint8 size×size×3: the largest centred square, resized with INTER_AREA
    (INTER_LINEAR when enlarging, where INTER_AREA would block-copy pixels)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)
