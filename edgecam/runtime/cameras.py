"""The cameras of a run: each a name, a source URI and its own source settings. From `--source`
given once or several times (names made from the URIs), or `--camera NAME=URI` / `[[camera]]`
tables in the config, each of which may set any source option (rotation, camera_size, …) and its
own roi. One camera without a name is today's single-camera run: its outputs carry no name."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edgecam import sources
from edgecam.base.errors import UsageError
from edgecam.base.options import Option, Settings
from edgecam.base.preprocess import Roi

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
# Keys a [[camera]] table may set besides its name and source: the source options and the region.
CAMERA_KEYS = ("roi", *(o.key for o in sources.OPTIONS))


def camera_entries(value: Any) -> tuple[dict[str, Any], ...]:
    """--camera NAME=URI (the flag, given several times) or the config's [[camera]] tables: each
    a dict with name and source and maybe other keys, checked for form (values are parsed once
    the options are known, in `cameras`)."""
    entries = value if isinstance(value, list | tuple) else [value]
    parsed = []
    for given in entries:
        entry = given
        if isinstance(given, str):
            name, sep, uri = given.partition("=")
            if not sep or not uri:
                raise ValueError(f"{given!r} is not NAME=URI, e.g. door=rtsp://192.0.2.10/stream")
            entry = {"name": name, "source": uri}
        if not isinstance(entry, dict) or not isinstance(entry.get("source"), str) or not entry["source"]:
            raise ValueError("each camera needs a source: [[camera]] name = \"door\" source = \"usb:0\"")
        unknown = set(entry) - {"name", "source", *CAMERA_KEYS}
        if unknown:
            raise ValueError(f"a camera has no key {sorted(unknown)[0]!r} (it may set name, source, "
                             f"{', '.join(CAMERA_KEYS)})")
        if "name" in entry and not (isinstance(entry["name"], str) and NAME.fullmatch(entry["name"])):
            raise ValueError(f"camera name {entry['name']!r} must be 1-32 of a-z, 0-9, _ and -, as "
                             "it names MQTT topics and URLs")
        parsed.append(dict(entry))
    return tuple(parsed)


def source_uris(value: Any) -> tuple[str, ...]:
    """--source (once or several times) or the config's `source`: one URI or a list of them."""
    uris = [value] if isinstance(value, str) else value
    if not isinstance(uris, list | tuple) or not uris or not all(isinstance(u, str) and u for u in uris):
        raise ValueError("must be a source URI or a list of them")
    return tuple(uris)


OPTIONS = [
    Option("source", source_uris, ("demo",), "what to classify: picam:N, usb:N, csi://N, rtsp://…, "
           "http://…, a file, a folder or demo; several times (or a list in the config) for several "
           "cameras in one process, batched through one network", metavar="URI", many=True,
           type=tuple[str, ...]),
    Option("camera", camera_entries, (), "a named camera: NAME=URI, several times; in the config, "
           "[[camera]] tables with name, source and any source option (rotation, camera_size, roi, "
           "…) of their own. Replaces source", metavar="NAME=URI", many=True,
           type=tuple[dict, ...]),
    Option("require_all_cameras", bool, False, "end the run when any camera fails to open or gives "
           "up reconnecting, instead of going on with the others", switch=True),
]


@dataclass(frozen=True)
class Camera:
    name: str  # "" for the one camera of a run that names none
    uri: str
    settings: Settings  # the run's, with this camera's own source options and roi


def cameras(settings: Settings) -> list[Camera]:
    """The cameras `settings` ask for, each with its own settings; names unique."""
    if settings.camera:
        made = [_camera(entry, settings) for entry in settings.camera]
    else:
        made = [Camera("", uri, settings) for uri in settings.source]
    if len(made) > 1:
        taken: set[str] = {c.name for c in made if c.name}
        made = [c if c.name else replace(c, name=unique_name(default_name(c.uri), taken)) for c in made]
    names = [c.name for c in made]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UsageError(f"two cameras are named {twice!r}: give each its own name")
    return made


def _camera(entry: dict[str, Any], settings: Settings) -> Camera:
    parsers = {"roi": Roi.parse, **{o.key: o.parse for o in sources.OPTIONS}}
    overrides = {}
    for key, value in entry.items():
        if key in parsers:
            try:
                overrides[key] = parsers[key](value)
            except ValueError as e:
                raise UsageError(f"camera {entry.get('name', entry['source'])!r}: key '{key}' {e}") from None
    return Camera(entry.get("name", ""), entry["source"], replace(settings, **overrides))


def default_name(uri: str) -> str:
    """A camera's name from its URI: demo, usb0, picam1, csi0, the host of a stream, a file's stem."""
    scheme, _, rest = uri.partition(":")
    if uri == "demo" or uri.startswith("demo:"):
        base = "demo"
    elif scheme in ("usb", "picam") and rest.isdigit():
        base = scheme + rest
    elif scheme == "csi":
        base = "csi" + rest.strip("/")
    elif scheme in ("rtsp", "rtsps", "http", "https"):
        base = urlsplit(uri).hostname or scheme
    else:
        base = Path(uri).stem or "camera"
    return re.sub(r"[^a-z0-9_-]+", "-", base.lower()).strip("-")[:28] or "camera"


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`, … when taken; added to `taken`."""
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    taken.add(candidate)
    return candidate
