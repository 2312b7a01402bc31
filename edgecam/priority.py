"""Helper threads run in the gaps inference leaves. onnxruntime's threads meet at the end of every
operator, so a helper that preempts one of them (to resize the next frame, write a log line or
encode a preview JPEG) stalls all of them; a nicer helper gets a core only while one is idle, and
the network's threads leave such gaps at every operator boundary."""
from __future__ import annotations

import os
import sys
import threading

# Steps nicer than the inference thread. Preparing the next frame is on the critical path when
# the network is faster than it, so it is only mildly nicer; outputs can wait.
PREPARE = 5
OUTPUT = 10


def run_nicer(steps: int) -> None:
    """Make the calling thread `steps` nicer than it is now (a thread of its own on Linux; a no-op
    elsewhere, where the nice value belongs to the whole process)."""
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except OSError:  # a sandbox that forbids it: run at the same priority
        pass
