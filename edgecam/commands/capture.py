"""`edgecam capture`: take photos of one class from any source into an ImageFolder dataset
(DATASET/LABEL/*.jpg), the input of `edgecam train`."""
from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

from edgecam.base import options
from edgecam.commands import settings_of

log = logging.getLogger(__name__)

# A label is a folder name and a line of the labels file: no separators, no control characters,
# not hidden.
LABEL = re.compile(r"^[^/\\\x00-\x1f.][^/\\\x00-\x1f]*$")


def capture_options() -> list[options.Option]:
    from edgecam import sources
    from edgecam.runtime import pipeline

    return [o for o in pipeline.OPTIONS if o.key == "source"] + sources.OPTIONS + [
        options.Option("count", options.integer(1), 20, "how many photos to take", metavar="N"),
        options.Option("every", options.number(0.0), 1.0, "seconds between photos (move the object "
                       "or the camera in between)", metavar="S"),
        options.Option("countdown", options.number(0.0), 3.0, "seconds to get ready before the "
                       "first photo", metavar="S"),
    ]


def register(commands: argparse._SubParsersAction) -> None:
    capture = commands.add_parser("capture", help="take photos of one class into a dataset folder")
    capture.add_argument("--label", required=True, metavar="NAME",
                         help="the class these photos show: the folder DATASET/NAME")
    capture.add_argument("--out", required=True, metavar="DATASET", help="the dataset folder")
    capture.add_argument("--config", metavar="FILE", help="TOML file with any of these options")
    options.add_arguments(capture, capture_options())
    capture.set_defaults(func=cmd_capture)


def countdown(seconds: float, label: str) -> None:
    while seconds > 0:
        print(f"capturing '{label}' in {seconds:.0f}…", file=sys.stderr, flush=True)
        time.sleep(min(1.0, seconds))
        seconds -= 1.0


def cmd_capture(args: argparse.Namespace) -> int:
    from edgecam.base.errors import EdgecamError, UsageError
    from edgecam.base.progress import Progress
    from edgecam.sinks.shots import ShotWriter
    from edgecam.sources import open_source

    settings = settings_of(args, capture_options())
    if not LABEL.match(args.label):
        raise UsageError(f"--label {args.label!r}: a class name is a folder name: no '/', '\\', "
                         "control characters or leading '.'")
    folder = Path(args.out) / args.label
    if len(settings.source) > 1:
        raise UsageError("capture takes photos from one camera: give --source once")
    source = open_source(settings.source[0], settings)
    shots = ShotWriter(folder)
    saved = 0
    with source:
        countdown(settings.countdown, args.label)
        progress = Progress(f"capturing {args.label}", settings.count, unit="photos")
        next_shot = time.monotonic()
        while saved < settings.count:
            time.sleep(max(0.0, next_shot - time.monotonic()))
            frame = source.read()
            if frame is None:
                break
            next_shot = time.monotonic() + settings.every
            path = shots.save(frame.image)
            saved += 1
            progress.advance(note=path.name)
    if saved == 0:
        raise EdgecamError(f"source {source.uri} gave no frames: nothing captured")
    progress.finish(f"{saved} photos in {folder}")
    if saved < settings.count:
        log.warning("source %s ended after %d of %d photos", source.uri, saved, settings.count)
    print(f"{saved} photos of '{args.label}' in {folder}")
    return 0
