"""Files written atomically: a temporary file beside the target that replaces it only once it is
complete, so a reader (or the next start after a crash) sees the old file or the new one, never
half of one. Also where a file's `.json` sidecar lives."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class Unwritable(OSError):
    """The temporary file beside the target cannot be created (its folder cannot be made or
    written into). Raised before the block runs, so a caller can tell it from an OSError of the
    block's own writing."""


@contextlib.contextmanager
def replaced(path: Path, mode: int | None = None) -> Iterator[Path]:
    """A temporary file beside `path` (its folder created if need be) that becomes `path` only if
    the block succeeds, and is removed otherwise. It gets `mode`, or else the mode the umask gives
    a new file: mkstemp's 0600 would hide a file that root wrote (a model it built, say) from the
    service's user."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise Unwritable(e.errno, e.strerror, e.filename) from e
    os.close(fd)
    tmp = Path(name)
    try:
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        tmp.chmod(mode)
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str, mode: int | None = None) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with replaced(path, mode) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: object) -> None:
    """Write `data` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def sidecar(path: Path) -> Path:
    """The `.json` record kept beside `path` (`model.onnx` → `model.onnx.json`)."""
    return path.with_name(path.name + ".json")


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`; None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
