"""A desktop window showing each frame with its prediction; q or Esc (or closing it) ends the run,
c saves the frame as a training photo when --shots is given."""
from __future__ import annotations

import logging

import cv2

from edgecam.base.errors import EdgecamError
from edgecam.base.frame import Frame, Prediction
from edgecam.sinks.base import Sink
from edgecam.sinks.overlay import display_image, draw_overlay
from edgecam.sinks.shots import ShotWriter

log = logging.getLogger(__name__)

QUIT_KEYS = {ord("q"), ord("Q"), 27}
SHOT_KEYS = {ord("c"), ord("C")}


class Window(Sink):
    def __init__(self, title: str = "edgecam", shots: ShotWriter | None = None) -> None:
        self.title = title
        self.shots = shots
        self._sized = False

    def open(self) -> None:
        try:
            # Resizable, keeping the aspect ratio, without Qt's toolbar over the picture.
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as e:
            raise EdgecamError(f"cannot open a window ({str(e).strip().splitlines()[-1]}): run with "
                               "--headless, or install opencv-python (not -headless)") from None

    def write(self, frame: Frame, prediction: Prediction) -> None:
        image = draw_overlay(display_image(frame.image, max_width=1920), prediction)
        if not self._sized:  # a new window is small; open it at the picture's size once
            cv2.resizeWindow(self.title, image.shape[1], image.shape[0])
            self._sized = True
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if key in QUIT_KEYS or closed:
            self.stop_requested = True
        elif key in SHOT_KEYS and self.shots is not None:
            log.info("saved %s", self.shots.save(frame.image))

    def close(self, reloading: bool = False) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
