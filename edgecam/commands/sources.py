"""`edgecam sources`: the cameras this machine has and the URI that opens each."""
from __future__ import annotations

import argparse
import json


def register(commands: argparse._SubParsersAction) -> None:
    sources = commands.add_parser("sources", help="list this machine's cameras and their URIs")
    sources.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sources.set_defaults(func=cmd_sources)


def cmd_sources(args: argparse.Namespace) -> int:
    from edgecam.sources.devices import cameras

    found = cameras()
    if args.json:
        print(json.dumps([c.as_dict() for c in found], indent=2))
        return 0
    if not found:
        print("no cameras found: no V4L2 capture device under /sys/class/video4linux, and no Pi "
              "camera (or picamera2 is not installed). Streams and files work without one: "
              "edgecam run --source rtsp://... | http://... | FILE | demo")
        return 0
    width = max(len(c.uri) for c in found)
    for camera in found:
        formats = f"  [{', '.join(camera.formats)}]" if camera.formats else ""
        note = f"  ({camera.note})" if camera.note else ""
        # The same camera under a name that survives replugging, for a service's config.
        link = f"  stable: v4l2://{camera.link}" if camera.link else ""
        print(f"{camera.uri:<{width}}  {camera.name}  {camera.device}{formats}{link}{note}")
    return 0
