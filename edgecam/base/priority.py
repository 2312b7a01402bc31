"""Helper threads run in the gaps inference leaves. onnxruntime's threads meet at the end of every
operator, so a helper that holds up one of them (to resize the next frame, write a log line or
encode a preview JPEG) stalls all of them; the network's threads leave gaps at every operator
boundary, and nicer helpers are meant to fill those. How promptly a waking onnxruntime thread gets
its core back is the other half: see Yielding."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
import time

log = logging.getLogger(__name__)

# Steps nicer than the inference thread. Preparing the next frame is on the critical path when
# the network is faster than it, so it is only mildly nicer; outputs can wait.
PREPARE = 5
OUTPUT = 10
# How long a starved helper keeps its nice level before it yields instantly again.
STARVED_HOLD = 10.0


def run_nicer(steps: int) -> None:
    """Make the calling thread `steps` nicer than it is now (a thread of its own on Linux; a no-op
    elsewhere, where the nice value belongs to the whole process)."""
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # a sandbox that forbids it: run at the same priority
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))


@functools.cache
def can_come_back(steps: int) -> bool:
    """Whether a thread `steps` nicer than the calling one may leave SCHED_IDLE again: root,
    CAP_SYS_NICE, or an RLIMIT_NICE that admits its nice level (systemd: LimitNICE=). Tried on a
    thread of its own, which starts with the caller's nice level."""
    if sys.platform != "linux":
        return False
    allowed: list[bool] = []

    def probe() -> None:
        tid = threading.get_native_id()
        run_nicer(steps)
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            allowed.append(True)
        except OSError:
            allowed.append(False)

    thread = threading.Thread(target=probe, name="priority probe")
    thread.start()
    thread.join()
    return allowed[0]


class Yielding:
    """The scheduling of a helper on the critical path (the prefetcher): `steps` nicer, and in the
    SCHED_IDLE class as long as it keeps ahead. A nicer thread may keep its core for the rest of its
    time slice when an onnxruntime thread wakes; an idle-class one is preempted at once (`edgecam
    bench --pipeline`, Lite0 on 2 cores, 50 paired rounds each: 0.963 of inference alone against
    0.943). But an idle-class thread gets next to no CPU while other processes keep every core busy
    (4.8 FPS against 58 with two busy loops beside it), so when the network had to wait for it
    (`starved()`) it runs at its nice level for STARVED_HOLD seconds, then yields again. Where it
    could not leave SCHED_IDLE (no permission), it only runs nicer. Methods run on the thread."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.idle = False
        self.starvations = 0
        self._may_idle = False
        self._until = 0.0

    def start(self) -> None:
        self._may_idle = can_come_back(self.steps)  # probed before this thread is any nicer
        run_nicer(self.steps)
        self._idle(True)

    def starved(self) -> None:
        if self.idle:
            self.starvations += 1
            log.log(logging.INFO if self.starvations == 1 else logging.DEBUG,
                    "the network waited for the %s thread (other processes keep the CPU busy): it "
                    "runs at nice +%d for %g s", threading.current_thread().name, self.steps,
                    STARVED_HOLD)
            self._idle(False)
        self._until = time.monotonic() + STARVED_HOLD

    def settle(self) -> None:
        if not self.idle and time.monotonic() >= self._until:
            self._idle(True)

    def _idle(self, idle: bool) -> None:
        if not self._may_idle:
            return
        policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
        try:
            os.sched_setscheduler(threading.get_native_id(), policy, os.sched_param(0))
            self.idle = idle
        except OSError:  # the permission changed under us: stay as we are
            pass
