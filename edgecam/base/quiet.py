"""Native libraries (LiteRT, XNNPACK, MLIR, absl) write log lines straight to file descriptor 2,
past Python's logging: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every load,
pages of converter diagnostics on every build. `native_stderr_hidden` drops them for one call;
errors still reach the user as the exceptions those calls raise. OpenCV and its FFmpeg have log
levels of their own: `quiet_opencv` lowers them."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_hidden(said: list[str] | None = None) -> Iterator[None]:
    """Hold back what native code writes to file descriptor 2 during the block; its non-empty lines
    go to `said` when given (ncnn's only reason for a failed load is such a line)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read when TensorFlow's C++ logging starts
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if said is not None:
                sink.seek(0)
                said.extend(line.strip() for line in sink.read().decode(errors="replace").splitlines()
                            if line.strip())


def quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own messages off stderr: every failure they report reaches the
    user as one edgecam line, and a reconnect loop would print theirs at every attempt. A user's
    OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL win (FFmpeg reads its own once, at first use)."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
