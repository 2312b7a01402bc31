"""--webhook: each event (or frame) POSTed as JSON to a URL, on a thread of its own.

Up to QUEUE events wait for delivery (beyond that the oldest are dropped and counted). An event the
server could not take (no connection, 5xx, 429) is sent again with exponential back-off until it is
delivered; later ones wait behind it, so they arrive in order and each once. One the server refuses
(another 4xx, a redirect: edgecam follows none, the bearer token must not travel) is dropped. Each
outage costs one warning, and so does the recovery. Every request carries an Idempotency-Key that
stays the same across the retries of one event, so a receiver can spot a retry whose first attempt
it did take although the answer got lost. TLS is verified against the system's CAs, always. The
URL's user:password@ goes as HTTP Basic authentication, unless a --webhook-token is given.

Credentials stay out of every output: messages show the URL as scheme://host:port/… (its user,
password, path and query are not shown: webhook URLs often carry their secret in the path)."""
from __future__ import annotations

import base64
import http.client
import json
import logging
import math
import ssl
import threading
import time
import uuid
from urllib.parse import unquote, urlsplit

from edgecam.base.frame import Frame, Prediction, Stamp
from edgecam.base.redact import masked
from edgecam.sinks.base import ThreadedSink, record
from edgecam.sinks.metrics import Metrics

log = logging.getLogger(__name__)

QUEUE = 1000  # events waiting for delivery
FIRST_DELAY, MAX_DELAY = 0.5, 30.0  # seconds of back-off: doubled after each failed attempt
REQUEST_TIMEOUT = 10.0  # seconds for the connection and each answer
ANSWER_BYTES = 1 << 16  # of an answer's body (unused) read to keep the connection; more: closed
CLOSE_SECONDS = 5.0  # how long close() keeps trying to deliver what is queued


def shown(url: str) -> str:
    """The URL as messages show it: scheme://host:port/… (see the module's docstring)."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path.strip("/") or parts.query else "/"
    return f"{parts.scheme}://{'***@' if '@' in parts.netloc else ''}{host}{port}{rest}"


def describe(error: Exception) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {error.verify_message}"
    return masked(getattr(error, "strerror", None) or str(error) or type(error).__name__)


class Webhook(ThreadedSink[tuple[Stamp, Prediction]]):
    def __init__(self, url: str, token: str | None = None, metrics: Metrics | None = None) -> None:
        super().__init__("webhook", QUEUE)
        parts = urlsplit(url)
        self.shown = shown(url)
        self.metrics = metrics
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "", parts.port
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.headers = {"Content-Type": "application/json", "User-Agent": "edgecam"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif parts.username is not None:
            user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.headers["Authorization"] = f"Basic {base64.b64encode(user.encode()).decode()}"
        self.tls = ssl.create_default_context() if self.https else None
        self.delivered = 0
        self.failures = 0  # attempts that failed: no answer, 5xx, 429, or a refusal
        self.refused = 0  # events the server refused (dropped)
        self.abandoned = 0  # events still undelivered when close() gave up
        self._connection: http.client.HTTPConnection | None = None
        self._down = False  # in an outage: warned already
        self._refusing = False  # refusing events: warned already
        self._deadline = math.inf  # set by close(): time.monotonic() at which to give up
        self._wake = threading.Event()  # close() cuts a back-off short

    def open(self) -> None:
        if self.metrics is not None:
            for name, help_text, read in (
                    ("delivered", "events the --webhook server took", lambda: self.delivered),
                    ("failures", "failed --webhook attempts (no answer, 5xx, 429, refused)",
                     lambda: self.failures),
                    ("dropped", "events never delivered to the --webhook: the queue was full, the "
                     "server refused them, or it was still down at exit",
                     lambda: self.handoff.skipped + self.refused + self.abandoned)):
                self.metrics.counters[f"edgecam_webhook_{name}_total"] = (help_text, read)
        super().open()
        log.info("posting events to %s", self.shown)

    def item(self, frame: Frame, prediction: Prediction) -> tuple[Stamp, Prediction]:
        return frame.stamp, prediction  # not the pixels: up to QUEUE of these wait

    def handle(self, item: tuple[Stamp, Prediction]) -> None:
        """Deliver one event, retrying while the server cannot take it, until close() gives up."""
        body = json.dumps(record(*item), ensure_ascii=False).encode()
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex}
        delay = FIRST_DELAY
        while (left := self._deadline - time.monotonic()) > 0:
            status, reason = self._attempt(body, headers, min(REQUEST_TIMEOUT, left))
            if status is not None and 200 <= status < 300:
                self._delivered()
                return
            self.failures += 1
            if status is not None and status != 429 and status < 500:
                self._refused(reason)
                return
            if not self._down:
                log.warning("webhook %s: cannot deliver (%s): retrying with back-off; classification "
                            "goes on (%d events wait at most, then the oldest are dropped)",
                            self.shown, reason, QUEUE)
            self._down = True
            if self._wake.wait(min(delay, max(0.0, self._deadline - time.monotonic()))):
                self._wake.clear()
            delay = min(2 * delay, MAX_DELAY)
        self.abandoned += 1

    def _attempt(self, body: bytes, headers: dict[str, str],
                 timeout: float) -> tuple[int | None, str]:
        """One POST: the answer's status and reason, or None and why no answer came."""
        while True:
            connection = self._connect(timeout)
            reused = connection.sock is not None
            try:
                connection.request("POST", self.target, body, headers)
                response = connection.getresponse()
                response.read(ANSWER_BYTES)
            except (OSError, http.client.HTTPException) as e:
                connection.close()
                if reused and isinstance(e, ConnectionError):
                    continue  # the server closed a kept-alive connection: send again on a new one
                return None, describe(e)
            if not response.isclosed():
                connection.close()
            return response.status, f"HTTP {response.status} {response.reason}"

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        """The kept-alive connection (http.client opens it again when the server closed it)."""
        if self._connection is None:
            self._connection = (http.client.HTTPSConnection(self.host, self.port, context=self.tls)
                                if self.https else http.client.HTTPConnection(self.host, self.port))
        self._connection.timeout = timeout
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout)
        return self._connection

    def _delivered(self) -> None:
        self.delivered += 1
        if self._down:
            log.warning("webhook %s: delivering again", self.shown)
        self._down = self._refusing = False

    def _refused(self, reason: str) -> None:
        self.refused += 1
        if not self._refusing:
            log.warning("webhook %s refused an event (%s): dropped; check the URL and "
                        "--webhook-token (further refusals are counted, not logged)",
                        self.shown, reason)
        self._refusing = True

    def close(self, reloading: bool = False) -> None:
        """Deliver what is queued for up to CLOSE_SECONDS, then give up with one warning."""
        self._deadline = time.monotonic() + CLOSE_SECONDS
        self._wake.set()
        self.handoff.stop(CLOSE_SECONDS + REQUEST_TIMEOUT)
        if self._connection is not None:
            self._connection.close()
        if self.abandoned:
            log.warning("webhook %s: %d events not delivered (the server was still unreachable "
                        "%.0f s after the run ended)", self.shown, self.abandoned, CLOSE_SECONDS)
