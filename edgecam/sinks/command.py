"""--exec: a command of the user's run for each event (or frame), the event as JSON on its stdin and
its gist in the environment (EDGECAM_LABEL, EDGECAM_SCORE, EDGECAM_EVENT, EDGECAM_CAMERA).

No shell is involved unless the user writes one (sh -c '...'). The command runs on a thread of its
own, at most one at a time: events that arrive while it runs are not queued, only the newest one
waits (a slow command sees the present, not a backlog). Each run gets --exec-timeout seconds, then
its whole process group is killed (what a shell started goes too). Failures are counted in
edgecam_errors_total{output="exec"} and warned once per burst: a run that succeeds ends the burst."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import time

from edgecam.base.errors import EdgecamError
from edgecam.base.frame import Frame, Prediction, Stamp
from edgecam.base.redact import masked
from edgecam.sinks.base import ThreadedSink, record
from edgecam.sinks.metrics import Metrics

log = logging.getLogger(__name__)

STDERR = 2  # what the command prints goes to edgecam's stderr (the journal under systemd)
CLOSE_MARGIN = 2.0  # seconds close() waits beyond the command's time


def environment(stamp: Stamp, prediction: Prediction) -> dict[str, str]:
    """The EDGECAM_* variables of one run: the event's label and score, or the top-1's for a frame
    that is no event (--events every); both empty for a frame none of whose labels passed."""
    event = prediction.extra.get("event")
    best = (event["label"], event["score"]) if event else (
        (prediction.top[0].label, prediction.top[0].score) if prediction.top else None)
    return {"EDGECAM_LABEL": best[0] if best else "", "EDGECAM_SCORE": str(round(best[1], 5)) if best else "",
            "EDGECAM_EVENT": event["kind"] if event else "frame",
            "EDGECAM_CAMERA": stamp.camera or masked(stamp.source)}


class Command(ThreadedSink[tuple[Stamp, Prediction]]):
    def __init__(self, argv: tuple[str, ...], timeout: float = 10.0,
                 metrics: Metrics | None = None) -> None:
        super().__init__("exec")  # capacity 1: while a run goes on, only the newest event waits
        self.argv = argv
        self.timeout = timeout
        self.metrics = metrics
        self.name = masked(argv[0])
        self._failing = False  # in a burst of failures: warned already
        self._deadline = math.inf  # set by close(): time.monotonic() by which the last run ends

    def open(self) -> None:
        if shutil.which(self.argv[0]) is None:
            raise EdgecamError(f"--exec: command {self.name!r} not found or not executable: give its "
                               "full path, or install it")
        if self.metrics is not None:
            self.metrics.counters["edgecam_exec_skipped_total"] = (
                "events not run because the --exec command was still running",
                lambda: self.handoff.skipped)
        super().open()

    def item(self, frame: Frame, prediction: Prediction) -> tuple[Stamp, Prediction]:
        return frame.stamp, prediction  # not the pixels: the command gets the record only

    def handle(self, item: tuple[Stamp, Prediction]) -> None:
        timeout = min(self.timeout, self._deadline - time.monotonic())
        if timeout <= 0:
            log.warning("--exec %s: the last event was not run: the run ended while the command "
                        "before it ran", self.name)
            return
        payload = json.dumps(record(*item), ensure_ascii=False).encode() + b"\n"
        failure = self._run(payload, {**os.environ, **environment(*item)}, timeout)
        if failure is None:
            if self._failing:
                log.info("--exec %s succeeds again", self.name)
            self._failing = False
            return
        if self.metrics is not None:
            self.metrics.error("exec")
        if not self._failing:
            log.warning("--exec %s %s; classification goes on (failures are counted, and warned "
                        "again only after a run succeeds)", self.name, failure)
        self._failing = True

    def _run(self, payload: bytes, env: dict[str, str], timeout: float) -> str | None:
        """One run of the command, killed after `timeout` seconds; what went wrong, or None."""
        try:
            process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=STDERR, env=env,
                                       start_new_session=True)  # its own process group, to kill
        except OSError as e:
            return f"cannot be started ({e.strerror})"
        try:
            process.communicate(payload, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return (f"ran longer than --exec-timeout ({self.timeout:g} s) and was killed"
                    if timeout == self.timeout else "was killed: edgecam stopped")
        if process.returncode < 0:
            return f"was killed by signal {-process.returncode}"
        if process.returncode > 0:
            return f"exited with status {process.returncode}"
        return None

    def close(self, reloading: bool = False) -> None:
        """Let the running command and the event waiting run, both within one --exec-timeout from
        now: a stop never waits longer than that."""
        self._deadline = time.monotonic() + self.timeout
        self.handoff.stop(self.timeout + CLOSE_MARGIN)
