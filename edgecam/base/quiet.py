"""Native libraries (LiteRT, XNNPACK, MLIR, absl) write log lines straight to file descriptor 2,
past Python's logging: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every load,
pages of converter diagnostics on every build. `native_stderr_hidden` drops them for one call;
errors still reach the user as the exceptions those calls raise."""
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
