"""What a device install lacks: `pip install edgecam` is the runtime only, and building, exporting,
quantizing, pulling checkpoints and training need the `build` extra (torch and the converters).
Where one of those is missing, the user gets one line naming the extra and the alternative: build
the model elsewhere and import its package."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from edgecam.base.errors import EdgecamError

# The top-level modules that only `pip install 'edgecam[build]'` provides.
BUILD_MODULES = frozenset({"torch", "torchvision", "onnx", "litert_torch", "ai_edge_quantizer", "pnnx",
                           "ncnn", "ai_edge_litert", "jax"})
INSTALL = "pip install 'edgecam[build]'"
ALTERNATIVE = ("or build it on another machine, `edgecam models export NAME -o FILE.edgecam.zip` there "
               "and `edgecam models import FILE.edgecam.zip` here")


class BuildExtraMissing(EdgecamError):
    """A step that needs the build extra, on an install without it."""


def missing(what: str, module: str) -> BuildExtraMissing:
    """The one line for `what` (e.g. "building the onnx file of efficientnet_lite0") lacking `module`."""
    return BuildExtraMissing(f"{what} needs {module}, which is not installed here: {INSTALL}, {ALTERNATIVE}")


def is_build_module(error: ImportError) -> bool:
    """Whether `error` is the absence of one of the build extra's modules."""
    return bool(error.name) and error.name.partition(".")[0] in BUILD_MODULES


@contextlib.contextmanager
def needs_build(what: str) -> Iterator[None]:
    """Turn the ImportError of a missing build module inside the block into its one line."""
    try:
        yield
    except ImportError as e:
        if not is_build_module(e):
            raise
        raise missing(what, e.name) from None
