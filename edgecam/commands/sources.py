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
    print("\n# For the config (edgecam service config): one [[camera]] table per camera to classify")
    print(camera_tables(found), end="")
    return 0


def camera_tables(found: list) -> str:
    """A [[camera]] table for each camera that opens as listed (not the raw sensor nodes a Pi
    camera reads through picam:N), under the name edgecam would give it, by its stable link."""
    from edgecam.runtime.cameras import default_name, unique_name

    tables: list[str] = []
    taken: set[str] = set()
    for camera in found:
        if camera.uri.startswith("v4l2://") and "picam:N" in camera.note:
            continue
        name = unique_name(default_name(camera.uri), taken)
        uri = f"v4l2://{camera.link}" if camera.link else camera.uri
        tables.append(f'[[camera]]\nname = "{name}"\nsource = {json.dumps(uri)}\n')
    return "\n".join(tables)
