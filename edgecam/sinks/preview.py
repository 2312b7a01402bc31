"""The web preview: an MJPEG stream of the overlaid frames, a page that shows it with the live
predictions, /api/status (JSON) and /metrics (Prometheus), on the stdlib's threading HTTP server.

The inference loop only swaps in the newest frame (write() takes a lock for a pointer swap); an
encoder thread draws and JPEG-encodes it, and only while a stream has a viewer. Each viewer's
connection has its own thread and always gets the newest JPEG, so a slow viewer skips frames
instead of slowing anything else."""
from __future__ import annotations

import contextlib
import hmac
import http.cookies
import ipaddress
import json
import logging
import re
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cv2

from edgecam.base import priority
from edgecam.base.errors import EdgecamError, UsageError
from edgecam.base.frame import Frame, Prediction
from edgecam.sinks.base import Sink, record
from edgecam.sinks.metrics import Metrics
from edgecam.sinks.overlay import display_image, draw_overlay
from edgecam.sinks.preview_page import PAGE
from edgecam.sinks.shots import ShotWriter

log = logging.getLogger(__name__)

BOUNDARY = "edgecam-frame"
# Connections waiting to be accepted: a burst of page loads, polls and viewers fits (the stdlib's
# default of 5 stalled every 7th of 50 connects by a second, in SYN retries).
BACKLOG = 64
# Connections that have not sent their request yet: past this many, a new one closes the one that
# has waited longest, so connections held open without a request (slowloris) cannot lock out a
# browser, which sends its request at once.
MAX_WAITING = 64
# Requests served at once (viewers included); the excess gets 503.
MAX_SERVING = 64
# A connection that sends no request (or stalls its reader) this long is closed.
IDLE_SECONDS = 10.0
# The page's ?token= is traded for this cookie, so the page, its polls and its stream carry no
# token in their URLs (browser history, proxy logs).
COOKIE = "edgecam_token"
TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")
QUIET_ERRORS = (ConnectionResetError, BrokenPipeError, TimeoutError, ConnectionAbortedError)


def parse_address(value: str) -> tuple[str, int]:
    """'[HOST:]PORT' (HOST may be an IPv6 address in brackets) → (host, port); host defaults to
    127.0.0.1."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535 or (sep and not host):
        raise ValueError("must be [HOST:]PORT with a port from 0 to 65535")
    return host, int(port)


def shown_address(host: str, port: int) -> str:
    """host:port as a user types it: IPv6 in brackets ([::]:8090, not :::8090)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_name(header: str) -> str:
    """The name in a Host header, without its port: 'example.org:8090' and '[::1]:8090' give
    'example.org' and '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class PreviewServer(ThreadingHTTPServer):
    """The stdlib's threading server with a real backlog, bounded threads (MAX_WAITING + MAX_SERVING)
    and no traceback for a client that went away."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = BACKLOG

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.serving = threading.BoundedSemaphore(MAX_SERVING)
        self._waiting: OrderedDict[socket.socket, None] = OrderedDict()
        self._waiting_lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address: tuple) -> None:
        with self._waiting_lock:
            if len(self._waiting) >= MAX_WAITING:
                oldest, _ = self._waiting.popitem(last=False)
                with contextlib.suppress(OSError):  # its thread reads EOF and ends
                    oldest.shutdown(socket.SHUT_RDWR)
            self._waiting[request] = None
        super().process_request(request, client_address)

    def admit(self, request: socket.socket) -> bool:
        """The request of this connection has arrived: it stops waiting, and is served if fewer
        than MAX_SERVING are (then `release` must follow)."""
        with self._waiting_lock:
            self._waiting.pop(request, None)
        return self.serving.acquire(blocking=False)

    def shutdown_request(self, request: socket.socket) -> None:
        with self._waiting_lock:  # before the close: an evicted socket is never one closed already
            self._waiting.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket, client_address: tuple) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, QUIET_ERRORS):
            log.debug("web preview %s went away: %s", client_address[0], type(error).__name__)
        else:
            log.warning("web preview: a request from %s failed: %s: %s", client_address[0],
                        type(error).__name__, error)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass
class Tile:
    """One camera's part of the preview: its newest frame, its newest JPEG, who watches it."""

    latest: tuple[Frame, Prediction] | None = None
    version: int = 0  # bumped by each write()
    encoded: int = 0  # the version last encoded
    jpeg: bytes = b""
    jpeg_version: int = 0  # bumped by each encoded frame
    viewers: int = 0

    @property
    def wanted(self) -> bool:
        """A newer frame than the last JPEG, and someone to see it."""
        return self.viewers > 0 and self.version != self.encoded


class Preview(Sink):
    """With several cameras, each has a tile on the page and a stream, /stream/NAME.mjpg;
    /stream.mjpg is the first camera's."""

    def __init__(self, host: str, port: int, token: str | None, metrics: Metrics,
                 max_fps: float = 10.0, width: int = 640, quality: int = 80,
                 shots: ShotWriter | None = None, hosts: tuple[str, ...] = (),
                 cameras: Sequence[str] = ("",)) -> None:
        if not is_loopback(host) and not token:
            raise UsageError(f"--preview {shown_address(host, port)} is reachable from other machines: set "
                             "--preview-token (or preview_token in the config) so only those "
                             "who know it can watch")
        self.host, self.port, self.token = host, port, token
        self.hosts = frozenset(name.lower() for name in hosts)
        self.metrics = metrics
        self.width = width
        self.quality = quality
        self.min_interval = 1.0 / max_fps
        self.shots = shots
        self.cameras = list(cameras)
        self.tiles = {name: Tile() for name in self.cameras}
        self.encoded = 0  # frames JPEG-encoded: only while someone watches a stream
        # One lock, two conditions: the encoder waits for a frame (and is woken by write() only
        # when it does, not at every inferred frame), the streams wait for a JPEG.
        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)
        self._new_jpeg = threading.Condition(self._lock)
        self._encoder_waiting = False
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}/"

    @property
    def viewers(self) -> int:
        return sum(tile.viewers for tile in self.tiles.values())

    def open(self) -> None:
        handler = type("Handler", (PreviewHandler,), {"preview": self})
        server_class = type("Server", (PreviewServer,), {
            "address_family": socket.AF_INET6 if ":" in self.host else socket.AF_INET})
        try:
            self._server = server_class((self.host, self.port), handler)
        except OSError as e:
            raise EdgecamError(f"web preview cannot listen on {shown_address(self.host, self.port)} "
                               f"({e.strerror}): choose another --preview port") from None
        self.metrics.gauges["edgecam_preview_viewers"] = ("viewers of the MJPEG streams",
                                                          lambda: self.viewers)
        self.metrics.counters["edgecam_preview_encoded_frames_total"] = (
            "frames JPEG-encoded for the streams (only while they have viewers)", lambda: self.encoded)
        self._threads = [threading.Thread(target=self._server.serve_forever, name="preview http",
                                          daemon=True),
                         threading.Thread(target=self._encode, name="preview encoder", daemon=True)]
        for thread in self._threads:
            thread.start()
        log.info("web preview at %s", self.url)

    def write(self, frame: Frame, prediction: Prediction) -> None:
        with self._lock:
            tile = self.tiles.get(frame.camera)
            if tile is None:
                return
            tile.latest = (frame, prediction)
            tile.version += 1
            if self._encoder_waiting:
                self._new_frame.notify()

    def close(self, reloading: bool = False) -> None:
        with self._lock:
            self._stopping = True
            self._new_frame.notify_all()
            self._new_jpeg.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _encode(self) -> None:
        priority.run_nicer(priority.OUTPUT)
        next_time = time.monotonic()
        while True:
            with self._lock:
                # at most max_fps per stream: the time left until the next slot is waited out here
                self._new_frame.wait_for(lambda: self._stopping, max(0.0, next_time - time.monotonic()))
                self._encoder_waiting = True
                self._new_frame.wait_for(
                    lambda: self._stopping or any(tile.wanted for tile in self.tiles.values()))
                self._encoder_waiting = False
                if self._stopping:
                    return
                next_time = time.monotonic() + self.min_interval
                work = [(tile, tile.latest) for tile in self.tiles.values() if tile.wanted]
                for tile, _ in work:
                    tile.encoded = tile.version
            for tile, (frame, prediction) in work:  # type: ignore[misc]
                jpeg = self._jpeg_of(frame, prediction)
                if jpeg is None:
                    continue
                with self._lock:
                    tile.jpeg, tile.jpeg_version = jpeg, tile.jpeg_version + 1
                    self.encoded += 1
                    self._new_jpeg.notify_all()

    def _jpeg_of(self, frame: Frame, prediction: Prediction) -> bytes | None:
        try:
            image = draw_overlay(display_image(frame.image, max_width=self.width), prediction)
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for a {image.shape} frame")
        except Exception:
            log.exception("web preview: encoding a frame failed")
            self.metrics.error("preview")
            return None
        return jpeg.tobytes()

    def next_jpeg(self, camera: str, after: int, timeout: float = 1.0) -> tuple[bytes, int] | None:
        """The newest JPEG of `camera` once it is newer than version `after`, or None on timeout
        or stop."""
        tile = self.tiles[camera]
        with self._lock:
            self._new_jpeg.wait_for(lambda: self._stopping or tile.jpeg_version > after, timeout)
            if self._stopping or tile.jpeg_version <= after:
                return None
            return tile.jpeg, tile.jpeg_version

    def watch(self, camera: str, delta: int) -> None:
        with self._lock:
            self.tiles[camera].viewers += delta
            self._new_frame.notify_all()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def status(self) -> dict:
        with self._lock:
            latest = {name: tile.latest for name, tile in self.tiles.items()}
            viewers = {name: tile.viewers for name, tile in self.tiles.items()}
        first = latest[self.cameras[0]]
        status = {"frames": self.metrics.frames, "dropped": self.metrics.dropped,
                  "viewers": sum(viewers.values()), "prediction": None if first is None else record(*first),
                  "shots": None if self.shots is None else self.shots.label,
                  "health": self.metrics.health.read()}
        if len(self.cameras) > 1:
            status["cameras"] = [{"name": name, "viewers": viewers[name],
                                  "prediction": None if latest[name] is None else record(*latest[name])}
                                 for name in self.cameras]
        return status

    def take_shot(self, camera: str | None = None) -> str | None:
        """Save the newest frame of `camera` (the first one's by default) as a training photo; its
        file name, or None without one."""
        with self._lock:
            latest = self.tiles[camera or self.cameras[0]].latest
        if self.shots is None or latest is None:
            return None
        path = self.shots.save(latest[0].image)
        log.info("saved %s", path)
        return path.name

    def authorized(self, path: str, authorization: str | None, cookie: str | None = None) -> bool:
        if not self.token:
            return True
        return hmac.compare_digest(given_token(path, authorization, cookie).encode(), self.token.encode())

    def host_allowed(self, header: str | None) -> bool:
        """Without a token the preview answers only to loopback names, its own address and the
        --preview-hosts names: a web page that rebinds its name to 127.0.0.1 sends its own name as
        Host. With a token (a reverse proxy, another machine) the token is the check, unless
        --preview-hosts names the hosts."""
        if not header:  # an HTTP/1.0 tool; browsers always send one
            return True
        if self.token and not self.hosts:
            return True
        name = host_name(header)
        return name in self.hosts or is_loopback(name) or name == self.host.lower()


def token_cookie(token: str) -> str:
    """The Set-Cookie value that hands the page its token: HttpOnly (no script reads it),
    SameSite=Strict (no other site's page sends it); quoted as cookies need."""
    jar = http.cookies.SimpleCookie()
    jar[COOKIE] = token
    jar[COOKIE]["httponly"] = True
    jar[COOKIE]["samesite"] = "Strict"
    return jar[COOKIE].OutputString()


def given_token(path: str, authorization: str | None, cookie: str | None) -> str:
    """The token a request carries: an Authorization: Bearer header, else ?token=, else the page's
    cookie; "" without one."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer":  # auth schemes are case-insensitive (RFC 9110)
        return credentials.strip()
    in_query = parse_qs(urlsplit(path).query).get("token")
    if in_query:
        return in_query[0]
    jar = http.cookies.SimpleCookie()
    with contextlib.suppress(http.cookies.CookieError):
        jar.load(cookie or "")
    return jar[COOKIE].value if COOKIE in jar else ""


class PreviewHandler(BaseHTTPRequestHandler):
    preview: Preview
    server: PreviewServer
    timeout = IDLE_SECONDS  # socketserver applies it to the connection's socket
    admitted = False

    def version_string(self) -> str:
        return "edgecam"  # not the Python version

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        self.admitted = self.server.admit(self.request)
        if not self.admitted:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                       b"too many viewers and requests at once: try again shortly\n",
                       {"Retry-After": "5"})
        return self.admitted

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.admitted:
                self.server.serving.release()
                self.admitted = False

    def _refused(self) -> bool:
        if not self.preview.host_allowed(self.headers.get("Host")):
            self._send(HTTPStatus.MISDIRECTED_REQUEST, "text/plain; charset=utf-8",
                       b"this preview does not answer to this host name: open it as "
                       b"http://127.0.0.1:PORT/, or add the name to --preview-hosts\n")
            return True
        if self.preview.authorized(self.path, self.headers.get("Authorization"), self.headers.get("Cookie")):
            return False
        self._send(HTTPStatus.UNAUTHORIZED, "text/plain; charset=utf-8",
                   b"a token is required: add ?token=... or an Authorization: Bearer header\n",
                   {"WWW-Authenticate": 'Bearer realm="edgecam"'})
        return True

    def do_POST(self) -> None:
        if self._refused():
            return
        url = urlsplit(self.path)
        camera = parse_qs(url.query).get("camera", [None])[0]
        if url.path != "/api/shot" or (camera is not None and camera not in self.preview.tiles):
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")
            return
        try:
            saved = self.preview.take_shot(camera)
        except EdgecamError as e:
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "application/json",
                       json.dumps({"error": str(e)}).encode())
            return
        if saved is None:
            self._send(HTTPStatus.CONFLICT, "application/json",
                       b'{"error": "no --shots folder, or no frame yet"}')
            return
        self._send(HTTPStatus.OK, "application/json", json.dumps({"saved": saved}).encode())

    def do_HEAD(self) -> None:
        """What GET would answer, without the body (uptime checkers, curl -I)."""
        self.do_GET()

    def do_GET(self) -> None:
        if self._refused():
            return
        url = urlsplit(self.path)
        route = url.path
        if route in ("/", "/index.html") and self.preview.token and "token" in parse_qs(url.query):
            # the token leaves the address bar for a cookie only this page's own requests carry
            self._send(HTTPStatus.SEE_OTHER, "text/plain; charset=utf-8", b"", {
                "Location": route.rpartition("/")[2] or "./",
                "Set-Cookie": token_cookie(self.preview.token)})
        elif route in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE.encode())
        elif (camera := self._camera_of(route)) is not None and self.command == "HEAD":
            self._send(HTTPStatus.OK, f"multipart/x-mixed-replace; boundary={BOUNDARY}", b"")
        elif camera is not None:
            self._stream(camera)
        elif route == "/api/status":
            self._send(HTTPStatus.OK, "application/json",
                       json.dumps(self.preview.status(), ensure_ascii=False).encode())
        elif route == "/metrics":
            self._send(HTTPStatus.OK, "text/plain; version=0.0.4; charset=utf-8",
                       self.preview.metrics.render().encode())
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _send(self, status: HTTPStatus, content_type: str, body: bytes,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _camera_of(self, route: str) -> str | None:
        """The camera a stream route names: /stream.mjpg the first, /stream/NAME.mjpg that one."""
        if route == "/stream.mjpg":
            return self.preview.cameras[0]
        found = re.fullmatch(r"/stream/([^/]+)\.mjpg", route)
        return found.group(1) if found and found.group(1) in self.preview.tiles else None

    def _stream(self, camera: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.preview.watch(camera, +1)
        version = 0
        try:
            while not self.preview.stopping:
                item = self.preview.next_jpeg(camera, version)
                if item is None:
                    continue
                jpeg, version = item
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the viewer went away
        finally:
            self.preview.watch(camera, -1)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        # the request line may carry ?token=...: never logged
        log.debug("web preview %s: %s", self.client_address[0], TOKEN_IN_QUERY.sub(r"\1***", format % args))
