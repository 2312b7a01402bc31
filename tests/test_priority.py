"""Inference keeps the CPU: one inference thread per physical core, and while `edgecam run`
classifies, the threads that prepare the next frame, write the log and encode the preview run nicer
than the thread that runs the network, so they take the gaps it leaves instead of preempting its
onnxruntime workers; the one that prepares frames yields at once (SCHED_IDLE) unless the network
has to wait for it."""
from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for

from edgecam.base import priority
from edgecam.base.frame import Frame
from edgecam.base.machine import physical_cores
from edgecam.base.options import resolve
from edgecam.bench.pipeline import MemorySource, free_port
from edgecam.runtime import pipeline
from edgecam.runtime.pipeline import run_options
from edgecam.runtime.prefetch import Prefetcher, StageClock


class NiceRecordingSource(MemorySource):
    """Frames from memory; at frame 40 (a viewer is watching by then) it notes every thread's nice."""

    def __init__(self, frames: list[np.ndarray], ready: threading.Event) -> None:
        super().__init__(frames)
        self.ready = ready
        self.nice: dict[str, int] = {}
        self.policy: dict[str, int] = {}

    def read(self) -> Frame | None:
        if self._index == 40:
            self.ready.wait(30)
            threads = [t for t in threading.enumerate() if t.native_id is not None]
            self.nice = {t.name: os.getpriority(os.PRIO_PROCESS, t.native_id) for t in threads}
            self.policy = {t.name: os.sched_getscheduler(t.native_id) for t in threads}
        return super().read()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_helper_threads_run_nicer_than_the_inference_thread(model_cache: Path, tmp_path: Path) -> None:
    port = free_port()
    settings = resolve(run_options(), {"frames": 80, "headless": True, "log": str(tmp_path / "run.jsonl"),
                                       "preview": f"127.0.0.1:{port}"})
    ready = threading.Event()
    source = NiceRecordingSource([np.full((720, 1280, 3), 90, np.uint8)], ready)

    def watch() -> None:
        def first_bytes() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/stream.mjpg", timeout=5) as s:
                    s.read(1000)
                    ready.set()
                    s.read(100_000)
                return True
            except OSError:
                return False
        wait_for(first_bytes, 30, "the preview stream")

    viewer = threading.Thread(target=watch, daemon=True)
    viewer.start()
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    summary = pipeline.run(settings, source)
    assert summary.frames == 80
    nice = source.nice
    assert nice["MainThread"] == base  # the thread that runs the network
    expected = {"prefetch": priority.PREPARE, "log writer": priority.OUTPUT,
                "preview encoder": priority.OUTPUT}
    assert {name: nice[name] - base for name in expected} == {
        name: min(19 - base, steps) for name, steps in expected.items()}
    assert source.policy["MainThread"] == os.SCHED_OTHER
    assert source.policy["log writer"] == source.policy["preview encoder"] == os.SCHED_OTHER
    # where it may leave the idle class again (root; LimitNICE= in the unit), the preparer yields
    may_yield = priority.can_come_back(priority.PREPARE)
    assert source.policy["prefetch"] == (os.SCHED_IDLE if may_yield else os.SCHED_OTHER)


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="root's right, on Linux")
def test_root_may_leave_the_idle_class() -> None:
    assert priority.can_come_back(priority.PREPARE)


def prefetch_policy(prefetcher: Prefetcher) -> int:
    return os.sched_getscheduler(prefetcher._thread.native_id)


@pytest.mark.skipif(sys.platform != "linux" or not priority.can_come_back(priority.PREPARE),
                    reason="needs the right to leave SCHED_IDLE (root, or LimitNICE=+5)")
def test_a_prefetcher_the_network_waits_for_stops_yielding_then_yields_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Other processes keep every core busy, so the idle-class prefetcher gets no CPU and the network
    waits for it (here: its preparation takes 50 ms): it runs at its nice level for STARVED_HOLD
    seconds, then, keeping ahead again, goes back to the idle class."""
    monkeypatch.setattr(priority, "STARVED_HOLD", 0.5)
    slow = threading.Event()
    slow.set()

    def prepare(image: np.ndarray) -> np.ndarray:
        if slow.is_set():
            time.sleep(0.05)
        return image

    prefetcher = Prefetcher(MemorySource([np.zeros((8, 8, 3), np.uint8)]), prepare, StageClock())
    prefetcher.start()
    try:
        wait_for(lambda: prefetcher.scheduling.idle, 10, "the prefetcher to yield")
        assert prefetch_policy(prefetcher) == os.SCHED_IDLE
        for _ in range(3):
            assert prefetcher.get() is not None  # each one waited for about 50 ms
        wait_for(lambda: prefetch_policy(prefetcher) == os.SCHED_OTHER, 10, "the starved prefetcher")
        assert prefetcher.scheduling.starvations == 1
        slow.clear()

        def yielding_again() -> bool:
            prefetcher.get()
            return prefetch_policy(prefetcher) == os.SCHED_IDLE
        wait_for(yielding_again, 10, "the prefetcher to yield again", interval=0.01)
        assert os.getpriority(os.PRIO_PROCESS, prefetcher._thread.native_id) - os.getpriority(
            os.PRIO_PROCESS, 0) == min(19, priority.PREPARE)
    finally:
        prefetcher.stop()
        prefetcher.join()


@pytest.mark.skipif(sys.platform != "linux", reason="SCHED_IDLE is Linux's")
def test_a_prefetcher_that_could_not_leave_the_idle_class_never_enters_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unprivileged process without LimitNICE=: idle-class and starved would be for good."""
    monkeypatch.setattr(priority, "can_come_back", lambda steps: False)
    prefetcher = Prefetcher(MemorySource([np.zeros((8, 8, 3), np.uint8)]), lambda i: i, StageClock())
    prefetcher.start()
    try:
        assert prefetcher.get() is not None
        assert not prefetcher.scheduling.idle and prefetch_policy(prefetcher) == os.SCHED_OTHER
    finally:
        prefetcher.stop()
        prefetcher.join()


def test_default_threads_count_physical_cores_not_hardware_threads(tmp_path: Path) -> None:
    """Four CPUs that are two cores with two hardware threads each: two inference threads."""
    for cpu, siblings in {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}.items():
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "thread_siblings_list").write_text(siblings + "\n")
    assert physical_cores({0, 1, 2, 3}, tmp_path) == 2
    assert physical_cores({0, 2}, tmp_path) == 1  # pinned to one core's two threads
    assert physical_cores({0, 1, 5}, tmp_path) == 3  # topology unknown: every CPU counts
