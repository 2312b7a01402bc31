"""Draws the top-k labels, scores, FPS and inference time on a frame, legible at any size."""
from __future__ import annotations

import cv2
import numpy as np

from edgecam.frame import Prediction

FONT = cv2.FONT_HERSHEY_SIMPLEX


def overlay_lines(prediction: Prediction) -> list[str]:
    lines = [f"{t.score * 100:5.1f}%  {t.label}" for t in prediction.top]
    lines.append(f"{prediction.fps:.1f} FPS  {prediction.inference_ms:.1f} ms  {prediction.model}")
    return lines


def draw_overlay(image: np.ndarray, prediction: Prediction) -> np.ndarray:
    """A copy of `image` (any channel order) with the prediction drawn in its top-left corner on a
    dark translucent panel; text scales with the frame height."""
    out = image.copy()
    height = out.shape[0]
    scale = max(0.4, height / 720 * 0.8)
    thickness = max(1, round(scale * 2))
    lines = overlay_lines(prediction)
    sizes = [cv2.getTextSize(line, FONT, scale, thickness)[0] for line in lines]
    line_height = max(h for _, h in sizes) + round(12 * scale)
    margin = round(10 * scale)
    width = max(w for w, _ in sizes) + 2 * margin
    panel_height = line_height * len(lines) + margin
    x1, y1 = min(width, out.shape[1]), min(panel_height, height)
    region = out[:y1, :x1]
    region[:] = (region * 0.35).astype(out.dtype)
    for i, line in enumerate(lines):
        y = margin + line_height * (i + 1) - round(8 * scale)
        colour = (255, 255, 255) if i < len(lines) - 1 else (0, 255, 255)
        cv2.putText(out, line, (margin, y), FONT, scale, colour, thickness, cv2.LINE_AA)
    return out
