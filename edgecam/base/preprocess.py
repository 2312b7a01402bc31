"""The geometric part of preprocessing: centre crop to a square, resize to the model input.

Normalisation, layout and dtype happen inside the model graph, so this is the only pass over the
pixels in Python."""
from __future__ import annotations

import cv2
import numpy as np


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 HxWx3 → uint8 size×size×3: the largest centred square, resized to the model input.

    While the square is at least twice the input side it is halved with INTER_AREA's fast 2×2
    average (an exact box filter), then INTER_LINEAR covers the last factor below 2, where it
    aliases little. 720² → 224² costs 0.3 ms on one x86 core against 2.3 ms for a direct
    INTER_AREA, within 0.5 grey levels of it on average over the demo clip; this runs for every
    frame, beside inference, on a CPU that inference wants whole."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(square)
    while side >= 2 * size:
        even = side - side % 2  # an odd side would leave INTER_AREA's fast path for its slow one
        side = even // 2
        square = cv2.resize(square[:even, :even], (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_LINEAR)
