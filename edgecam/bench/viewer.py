"""Someone watching the web preview, in a process of its own as a browser would be, so that its
reading costs the pipeline no interpreter time: `python -m edgecam.bench.viewer URL` reads the
MJPEG stream until it is terminated: it prints `watching` once the stream is open and, at the end,
how many bytes it received."""
from __future__ import annotations

import contextlib
import signal
import sys
import time
import urllib.request


class Watcher:
    def __init__(self, url: str) -> None:
        self.url = url
        self.received = 0

    def watch(self, connect_seconds: float = 60.0) -> None:
        deadline = time.monotonic() + connect_seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url, timeout=5) as stream:
                    print("watching", flush=True)
                    while chunk := stream.read1(1 << 20):
                        self.received += len(chunk)
                return
            except OSError:
                time.sleep(0.05)  # the server is not up yet


if __name__ == "__main__":
    watcher = Watcher(sys.argv[1])
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # terminate: stop reading, report
    with contextlib.suppress(KeyboardInterrupt):
        watcher.watch()
    print(watcher.received)
