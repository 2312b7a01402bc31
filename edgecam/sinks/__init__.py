"""Outputs: the window, the web preview with metrics, the log, events with snapshots, MQTT."""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgecam.base.errors import EdgecamError, UsageError
from edgecam.base.options import (
    Option,
    Settings,
    boolean,
    choice,
    integer,
    number,
    optional,
    text,
)
from edgecam.sinks.base import Sink
from edgecam.sinks.events import MODES
from edgecam.sinks.mqtt import BrokerUrl, parse_url
from edgecam.sinks.preview import parse_address

UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def byte_size(value: Any) -> int:
    """A size in bytes: 1048576, "500k", "1M", "1MiB", "2GB" (K/M/G are powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        found = re.fullmatch(r"\s*(\d+)\s*([kmg]?)(i?b)?\s*", str(value), re.IGNORECASE)
        if not found:
            raise ValueError("must be a size such as 1048576, 500k or 1M")
        size = int(found.group(1)) * UNITS[found.group(2).lower()]
    if size < 1:
        raise ValueError("must be at least 1 byte")
    return size


def address(value: Any) -> tuple[str, int]:
    return parse_address(str(value) if isinstance(value, int) and not isinstance(value, bool)
                         else text(value))


def host_names(value: Any) -> tuple[str, ...]:
    """Host names the preview answers to: "cam.example,cam" or a TOML list of names."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not names:
        raise ValueError("must be host names, e.g. camera.example,camera")
    parsed = []
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9.\-_:\[\]]+", name.strip()):
            raise ValueError(f"{name!r} is not a host name (no scheme, port or path): e.g. camera.example")
        parsed.append(name.strip().strip("[]").lower())
    return tuple(parsed)


def command_line(value: Any) -> tuple[str, ...]:
    """A command and its arguments, split as a shell would ("notify-send 'a cat'"), or a TOML list;
    run without a shell unless the user writes one (sh -c '...')."""
    import shlex

    try:
        words = shlex.split(value) if isinstance(value, str) else value
    except ValueError as e:
        raise ValueError(f"cannot be split into words ({e}): check its quotes") from None
    if not isinstance(words, list | tuple) or not words or not all(isinstance(w, str) for w in words):
        raise ValueError("must be a command line, e.g. 'notify-send edgecam' or "
                         '["notify-send", "edgecam"]')
    return tuple(words)


def web_url(value: Any) -> str:
    from urllib.parse import urlsplit

    url = text(value)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL, e.g. https://hooks.example/edgecam")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError("has a bad port") from None
    return url


def pin_labels(value: Any) -> tuple[tuple[str, str], ...]:
    """'17=cat,GPIO27=dog' (or a TOML table {17 = "cat"}) → ((pin, label), ...); a pin is a BCM
    number or a gpiozero pin name."""
    pairs = (value.items() if isinstance(value, dict)
             else [item.partition("=")[::2] for item in text(value).split(",")])
    parsed = []
    for given_pin, given_label in pairs:
        pin = str(given_pin).strip()
        label = given_label.strip() if isinstance(given_label, str) else ""
        if not re.fullmatch(r"(GPIO|BCM)?\d{1,2}", pin, re.IGNORECASE) or not label:
            raise ValueError(f"{pin}={label} is not PIN=LABEL: e.g. 17=cat (BCM numbering) or GPIO17=cat")
        parsed.append((pin, label))
    return tuple(parsed)


OPTIONS = [
    Option("headless", boolean, False, "no window, even when a display is available", switch=True),
    Option("display", boolean, False, "show the window (the default when a display is available)",
           switch=True),
    Option("preview", optional(address), None, "serve a web preview, /api/status and /metrics at "
           "[HOST:]PORT (host 127.0.0.1 unless given)", metavar="[HOST:]PORT"),
    Option("preview_token", optional(text), None, "token every preview request must carry "
           "(?token= or Authorization: Bearer); required when HOST is not loopback",
           metavar="TOKEN", secret=True),
    Option("preview_hosts", optional(host_names), None, "host names the preview also answers to "
           "(a reverse proxy's); others get 421. Without it, a preview without a token answers to "
           "loopback and its own address only, one with a token to any name", metavar="NAME[,NAME]"),
    Option("shots", optional(text), None, "folder DATASET/LABEL where the window's c key and the "
           "preview's 'take a photo' button save the current frame (edgecam train's layout)",
           metavar="DATASET/LABEL"),
    Option("preview_fps", number(0.5, 120.0), 10.0, "most frames per second the preview encodes "
           "(each JPEG costs CPU the network could use)", metavar="FPS"),
    Option("preview_width", integer(160, 3840), 640, "width the preview is encoded at; wider "
           "frames are reduced to it (a 1280-wide JPEG costs three times the CPU)",
           metavar="PIXELS"),
    Option("log", optional(text), None, "append one record per classified frame (or event) to "
           "this file", metavar="PATH"),
    Option("log_format", choice("auto", "jsonl", "csv"), "auto", "jsonl or csv; auto: csv for a "
           ".csv path, else jsonl"),
    Option("log_max_bytes", optional(byte_size), None, "start a new log file beyond this size, "
           "e.g. 10M", metavar="SIZE"),
    Option("log_keep", integer(0, 1000), 5, "rotated log files kept besides the current one",
           metavar="N"),
    Option("events", choice(*MODES), "every", "what the log, MQTT and snapshots get: every frame, "
           "or an event when the top-1 label changes, crosses --event-threshold, or is stable for "
           "--event-frames frames"),
    Option("event_threshold", number(0.0, 1.0), 0.5, "score for --events threshold",
           metavar="SCORE"),
    Option("event_frames", integer(1, 100000), 5, "frames a label must stay on top for --events "
           "stable", metavar="N"),
    Option("smooth", integer(1, 1000), 1, "average the scores over the last N frames before "
           "deciding on events", metavar="N"),
    Option("snapshots", optional(text), None, "save a JPEG of the frame for each event in this "
           "folder", metavar="DIR"),
    Option("snapshot_keep", optional(integer(1)), 100, "keep at most N snapshots", metavar="N"),
    Option("snapshot_max_bytes", optional(byte_size), None, "keep at most this many bytes of "
           "snapshots, e.g. 500M", metavar="SIZE"),
    Option("mqtt", optional(lambda v: parse_url(text(v))), None, "publish events to an MQTT broker: "
           "mqtt://[user:password@]host[:port]/topic, or mqtts:// for TLS", metavar="URL",
           type=BrokerUrl | None, secret=True),
    Option("mqtt_ca", optional(text), None, "CA certificate file for an mqtts:// broker with a "
           "private CA", metavar="FILE"),
    Option("mqtt_discovery", boolean, False, "announce the label and score sensors to Home "
           "Assistant (MQTT discovery)", switch=True),
    Option("exec", optional(command_line), None, "run this command for each event (as --log gets "
           "them), the event as JSON on its stdin and EDGECAM_LABEL, EDGECAM_SCORE, EDGECAM_EVENT, "
           "EDGECAM_CAMERA in its environment; no shell unless you write one (sh -c '...'); at most "
           "one at a time", metavar="CMD", type=tuple[str, ...] | None),
    Option("exec_timeout", number(0.1, 3600.0), 10.0, "seconds a --exec command may run before it "
           "is killed", metavar="S"),
    Option("webhook", optional(web_url), None, "POST each event as JSON to this URL (retried with "
           "back-off; TLS verified)", metavar="URL", secret=True),
    Option("webhook_token", optional(text), None, "bearer token the --webhook requests carry",
           metavar="TOKEN", secret=True),
    Option("gpio", optional(pin_labels), None, "Raspberry Pi output pins held high while their "
           "label is the current event's: PIN=LABEL[,PIN=LABEL] (BCM numbers)", metavar="PIN=LABEL",
           type=tuple[tuple[str, str], ...] | None),
    Option("record", optional(text), None, "write the annotated stream to this video file "
           "(.mp4, .avi or .mkv); frames the writer cannot keep up with are dropped and counted",
           metavar="FILE"),
    Option("record_segment", optional(number(1.0)), None, "start a new --record file every S "
           "seconds (FILE_<time>.mp4)", metavar="S"),
    Option("record_max_bytes", optional(byte_size), None, "remove the oldest --record segments "
           "beyond this total size, e.g. 2G", metavar="SIZE"),
]

DISCOVERY_PREFIX = "homeassistant"



def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def wants_window(settings: Settings) -> bool:
    if settings.display and settings.headless:
        raise UsageError("--display and --headless contradict each other: give one of them")
    if settings.display and not has_display():
        raise EdgecamError("--display: no display found (DISPLAY is not set): run on the desktop, "
                           "set DISPLAY, or use --preview PORT to watch in a browser")
    return settings.display or (not settings.headless and has_display())


def make_sinks(settings: Settings, topk: int, cameras: Sequence[str] = ("",)) -> list[Sink]:
    """The outputs `settings` (of OPTIONS) ask for; `topk`: the labels each prediction has, the
    columns of a CSV log; `cameras`: the names of the run's cameras ("" for one unnamed). Metrics
    come first (they count every frame); the log, MQTT and snapshots get every frame or only
    events; the window and preview show every frame."""
    from edgecam.sinks.metrics import Metrics

    metrics = Metrics()
    sinks: list[Sink] = [metrics]
    outputs: list[Sink] = []
    if settings.log:
        from edgecam.sinks.logfile import CsvFormat, JsonlFormat, LogFile

        path = Path(settings.log)
        csv = settings.log_format == "csv" or (settings.log_format == "auto"
                                               and path.suffix.lower() == ".csv")
        if csv and topk == 0:
            raise UsageError(f"--log {path}: --topk 0 reports any number of labels, which a CSV's "
                             "columns cannot hold: log to a .jsonl file or give --topk K")
        fmt = CsvFormat(topk, cameras=any(cameras)) if csv else JsonlFormat()
        outputs.append(LogFile(path, fmt, settings.log_max_bytes, settings.log_keep, metrics))
    if settings.snapshots:
        from edgecam.sinks.events import Snapshots

        outputs.append(Snapshots(Path(settings.snapshots), settings.snapshot_keep,
                                 settings.snapshot_max_bytes, metrics=metrics))
    if settings.mqtt:
        from edgecam.sinks.mqtt import Mqtt

        outputs.append(Mqtt(settings.mqtt, settings.mqtt_ca,
                            DISCOVERY_PREFIX if settings.mqtt_discovery else None, metrics, cameras))
    if settings.exec:
        from edgecam.sinks.command import Command

        outputs.append(Command(settings.exec, settings.exec_timeout, metrics))
    if settings.webhook:
        from edgecam.sinks.webhook import Webhook

        outputs.append(Webhook(settings.webhook, settings.webhook_token, metrics))
    if settings.gpio:
        from edgecam.sinks.gpio import Pins

        outputs.append(Pins(settings.gpio))
    if settings.events == "every":
        sinks += outputs
    elif outputs:
        from edgecam.sinks.events import EventDetector, EventFilter

        sinks.append(EventFilter(lambda: EventDetector(settings.events, settings.event_threshold,
                                                       settings.event_frames, settings.smooth),
                                 outputs, metrics))
    shots = None
    if settings.shots:
        from edgecam.sinks.shots import ShotWriter

        shots = ShotWriter(Path(settings.shots))
    if wants_window(settings):
        from edgecam.sinks.window import Window

        sinks.append(Window(shots=shots, cameras=cameras))
    if settings.preview:
        from edgecam.sinks.preview import Preview

        host, port = settings.preview
        sinks.append(Preview(host, port, settings.preview_token, metrics, settings.preview_fps,
                             settings.preview_width, shots=shots, hosts=settings.preview_hosts or (),
                             cameras=cameras))
    if settings.record:
        from edgecam.sinks.record import Recorder

        sinks.append(Recorder(Path(settings.record), settings.record_segment,
                              settings.record_max_bytes, metrics, cameras=cameras))
    return sinks
