"""The display window, for real: edgecam runs under Xvfb, a screenshot of the X screen (xwd) shows
the frame with the overlay; and the overlay stays inside and legible on frames of any shape."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import edgecam, require

from edgecam.base.frame import Label, Prediction
from edgecam.sinks.overlay import display_image, draw_overlay

GREY = 128

PREDICTION = Prediction([Label("espresso", 967, 0.93), Label("cup", 968, 0.04)], 23.4, 9.5,
                        "efficientnet_lite0", "onnx")


@pytest.mark.parametrize(("height", "width"), [(96, 96), (480, 640), (3000, 4000), (1200, 90), (60, 1900)])
def test_overlay_fits_and_reads_on_any_frame_size(height: int, width: int) -> None:
    blank = display_image(np.full((height, width, 3), GREY, np.uint8))
    drawn = draw_overlay(blank, PREDICTION)
    assert drawn.shape == blank.shape and min(drawn.shape[:2]) >= 360
    changed = np.any(drawn != blank, axis=2)
    ys, xs = np.nonzero(changed)
    # the panel starts at the top-left corner and leaves the rest of the frame alone
    assert ys.min() == 0 and xs.min() == 0
    assert changed.mean() < 0.9
    panel = drawn[: ys.max() + 1, : xs.max() + 1]
    bright, dark = (panel.min(axis=2) > 200).sum(), (panel.max(axis=2) < 50).sum()
    assert bright > 50 and dark > bright  # light text on a dark panel


def read_xwd(data: bytes) -> np.ndarray:
    """An X window dump (TrueColor, 24 or 32 bits per pixel) as an RGB array."""
    header = np.frombuffer(data[:100], ">u4")
    header_size, width, height = int(header[0]), int(header[4]), int(header[5])
    byte_order, bits_per_pixel, bytes_per_line = int(header[7]), int(header[11]), int(header[12])
    masks, ncolors = header[14:17], int(header[19])
    assert bits_per_pixel in (24, 32), f"xwd wrote {bits_per_pixel} bits per pixel"
    start = header_size + 12 * ncolors
    rows = np.frombuffer(data[start:start + height * bytes_per_line], np.uint8).reshape(height, -1)
    step = bits_per_pixel // 8
    pixel_bytes = rows[:, : width * step].reshape(height, width, step).astype(np.uint32)
    if byte_order == 1:  # MSBFirst
        pixel_bytes = pixel_bytes[:, :, ::-1]
    pixels = sum(pixel_bytes[:, :, i] << (8 * i) for i in range(step))
    channels = [(pixels & int(m)) >> (int(m) & -int(m)).bit_length() - 1 for m in masks]
    return np.stack(channels, axis=2).astype(np.uint8)


@pytest.fixture
def xvfb(tmp_path: Path):
    """A virtual X display of its own, on the first free display number."""
    require("Xvfb", "xvfb")
    require("xwd", "x11-apps")  # screenshot() takes the screen with it
    number = next(n for n in range(90, 300) if not Path(f"/tmp/.X11-unix/X{n}").exists()
                  and not Path(f"/tmp/.X{n}-lock").exists())
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            assert server.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.1)
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(10)


def screenshot(display: str) -> np.ndarray:
    dump = subprocess.run(["xwd", "-root", "-silent", "-display", display], capture_output=True,
                          check=True, timeout=30).stdout
    return read_xwd(dump)


def test_window_shows_the_overlay_under_xvfb(xvfb: str, tmp_path: Path) -> None:
    require("xdotool", "xdotool")  # types the keys into the window
    blank = tmp_path / "grey.png"
    cv2.imwrite(str(blank), np.full((480, 640, 3), GREY, np.uint8))
    env = {k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"}
    env["DISPLAY"] = xvfb
    run = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--source", str(blank), "--loop",
                            "--display", "--duration", "120", "--shots", str(tmp_path / "ds" / "grey")],
                           env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert run.poll() is None, run.stderr.read()
            screen = screenshot(xvfb)
            grey = np.all(screen == GREY, axis=2)
            if grey.sum() > 640 * 480 // 2:
                break
            assert time.monotonic() < deadline, "no grey frame appeared in the window"
            time.sleep(0.5)
        # The frame is where the grey is; its top-left corner holds the overlay.
        ys, xs = np.nonzero(grey)
        top, left, bottom, right = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
        frame = screen[top:bottom, left:right].astype(int)
        assert frame.shape[0] >= 400 and frame.shape[1] >= 500
        label_region = frame[: frame.shape[0] // 3, : frame.shape[1] // 2]
        rest = frame[frame.shape[0] // 2:, frame.shape[1] // 2:]
        assert np.all(rest == GREY)  # the blank frame, untouched
        differs = np.any(label_region != GREY, axis=2).mean()
        assert differs > 0.3, f"only {differs:.0%} of the label region differs from the blank frame"
        assert (label_region.min(axis=2) > 200).sum() > 200, "no light text"
        assert (label_region.max(axis=2) < 50).sum() > 2000, "no dark panel behind the text"
        # c saves the frame (without the overlay) as a training photo; q ends the run cleanly.
        # check=False: what counts is each key's effect, checked below (the photo, the exit code).
        # A key can be lost while the window manager-less display settles focus: sent again until
        # it took effect (one photo: the second press would save grey_0002.jpg).
        photo = tmp_path / "ds" / "grey" / "grey_0001.jpg"
        deadline = time.monotonic() + 60
        while not photo.exists():
            assert time.monotonic() < deadline, "c saved no photo"
            subprocess.run(["xdotool", "search", "--name", "^edgecam$", "windowfocus", "--sync",
                            "key", "c"], env=env, timeout=30, capture_output=True, check=False)
            for _ in range(25):
                if photo.exists():
                    break
                time.sleep(0.2)
        subprocess.run(["xdotool", "search", "--name", "^edgecam$", "windowfocus", "--sync",
                        "key", "q"], env=env, timeout=30, capture_output=True, check=False)
        assert run.wait(60) == 0
        saved = cv2.imread(str(photo)).astype(int)
        assert saved.shape == (480, 640, 3) and np.abs(saved - GREY).max() <= 3
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_display_without_a_display_is_a_clear_error() -> None:
    result = edgecam("run", "--display", "--frames", "1")
    assert result.returncode == 1 and "--display: no display found" in result.stderr
    result = edgecam("run", "--display", "--headless", "--frames", "1")
    assert result.returncode == 2 and "contradict" in result.stderr
