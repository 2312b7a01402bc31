"""Draws the top-k labels, scores, FPS and inference time (and the --roi frame) on a frame, legible
at any size: the frame is first brought to a displayable size, the text scales with it and never
runs off its right edge, and it sits on a darkened panel so it reads on bright and dark scenes
alike."""
from __future__ import annotations

import cv2
import numpy as np

from edgecam.base.frame import Prediction

FONT = cv2.FONT_HERSHEY_SIMPLEX
MAX_LABEL = 32  # characters; ImageNet has a few very long class names
WHITE, YELLOW, ROI_COLOUR = (255, 255, 255), (0, 255, 255), (255, 160, 0)  # BGR


def display_image(rgb: np.ndarray, min_side: int = 360, max_width: int = 1280) -> np.ndarray:
    """The frame as BGR at a size worth drawing text on: a thumbnail (or a sliver) is enlarged
    until both sides are at least `min_side` (text on 96 px would be unreadable), a large frame is
    reduced to `max_width` (less to draw, encode and send) unless that made it too small again."""
    height, width = rgb.shape[:2]
    grow = max(min_side / height, min_side / width)
    factor = grow if grow > 1 else max(min(1.0, max_width / width), min_side / height)
    if factor != 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def overlay_lines(prediction: Prediction) -> list[str]:
    lines = [f"{t.score * 100:5.1f}%  {_short(t.label)}" for t in prediction.top]
    lines.append(f"{prediction.fps:.1f} FPS  {prediction.inference_ms:.1f} ms  {prediction.model}")
    return lines


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 3] + "..."


def draw_overlay(image: np.ndarray, prediction: Prediction) -> np.ndarray:
    """A copy of `image` (BGR) with the prediction drawn in its top-left corner on a dark panel,
    and the --roi region (the part that was classified) framed."""
    out = image.copy()
    height, width = out.shape[:2]
    if "roi" in prediction.extra:
        left, top, right, bottom = prediction.extra["roi"]
        cv2.rectangle(out, (round(left * width), round(top * height)),
                      (round(right * width) - 1, round(bottom * height) - 1), ROI_COLOUR,
                      max(1, round(height / 360)))
    lines = overlay_lines(prediction)
    scale = max(0.35, height / 720 * 0.8)
    widest = max(cv2.getTextSize(line, FONT, scale, 1)[0][0] for line in lines)
    # Keep the panel inside the frame: a tall narrow frame gets smaller text, not clipped text.
    scale = max(0.3, min(scale, scale * 0.9 * width / (widest * 1.1 + 1)))
    thickness = max(1, round(scale * 2))
    sizes = [cv2.getTextSize(line, FONT, scale, thickness)[0] for line in lines]
    line_height = max(h for _, h in sizes) + round(12 * scale)
    margin = max(2, round(10 * scale))
    x1 = min(max(w for w, _ in sizes) + 2 * margin, width)
    y1 = min(line_height * len(lines) + margin, height)
    out[:y1, :x1] >>= 2  # a quarter of the brightness: white text has contrast on any scene
    for i, line in enumerate(lines):
        y = margin + line_height * (i + 1) - round(8 * scale)
        colour = WHITE if i < len(lines) - 1 else YELLOW
        cv2.putText(out, line, (margin, y), FONT, scale, colour, thickness, cv2.LINE_AA)
    return out
