"""Sources opened from a URI: `demo`, a video file, an image, a folder of images."""
from __future__ import annotations

import re
from pathlib import Path

from edgecam.errors import SourceError, UsageError
from edgecam.imageio import is_image_file
from edgecam.options import Option, Settings, boolean
from edgecam.sources.base import Source

OPTIONS = [
    Option("loop", boolean, False, "start a video file or image folder again at its end",
           switch=True),
]

SCHEMES = "demo, a video file, an image file or a folder of images"


def open_source(uri: str, settings: Settings | None = None, input_size: int | None = None) -> Source:
    """The source a URI names, not yet opened. `settings` carries the source options (OPTIONS);
    `input_size` is the model's input side, for cameras that can deliver a stream at that size."""
    loop = bool(settings and settings.loop)
    if uri == "demo" or uri.startswith("demo:"):
        from edgecam.sources.demo import DemoSource

        return DemoSource(uri)
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", uri)
    if scheme and scheme.group(1) != "file":
        raise UsageError(f"source '{uri}': unsupported scheme '{scheme.group(1)}://' "
                         f"(supported: {SCHEMES})")
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
    if not path.exists():
        raise SourceError(f"source '{uri}' does not exist: give {SCHEMES}")
    from edgecam.sources.files import ImagesSource, VideoFileSource

    if path.is_dir() or is_image_file(path):
        return ImagesSource(path, loop)
    return VideoFileSource(path, loop)
