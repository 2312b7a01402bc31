"""A desktop window showing each frame with its prediction; q or Esc (or closing it) ends the run,
c saves the frame as a training photo when --shots is given."""
from __future__ import annotations

import logging
from collections.abc import Sequence

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
    """A window per camera (titled with its name when the run has several)."""

    def __init__(self, title: str = "edgecam", shots: ShotWriter | None = None,
                 cameras: Sequence[str] = ("",)) -> None:
        self.titles = {name: f"{title} · {name}" if name else title for name in cameras}
        self.shots = shots
        self._sized: set[str] = set()

    def open(self) -> None:
        try:
            for title in self.titles.values():
                # Resizable, keeping the aspect ratio, without Qt's toolbar over the picture.
                cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as e:
            raise EdgecamError(f"cannot open a window ({str(e).strip().splitlines()[-1]}): run with "
                               "--headless, or install opencv-python (not -headless)") from None

    def write(self, frame: Frame, prediction: Prediction) -> None:
        title = self.titles.get(frame.camera)
        if title is None:
            return
        image = draw_overlay(display_image(frame.image, max_width=1920), prediction)
        if title not in self._sized:  # a new window is small; open it at the picture's size once
            cv2.resizeWindow(title, image.shape[1], image.shape[0])
            self._sized.add(title)
        cv2.imshow(title, image)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1
        if key in QUIT_KEYS or closed:
            self.stop_requested = True
        elif key in SHOT_KEYS and self.shots is not None:
            log.info("saved %s", self.shots.save(frame.image))

    def close(self, reloading: bool = False) -> None:
        try:
            for title in self.titles.values():
                cv2.destroyWindow(title)
            cv2.waitKey(1)
        except cv2.error:
            pass
