"""The artifacts a backend loads: verified from the cache, or built there on first use.

Building needs torch, so the builders are imported only when a build is due: the device path, with
its artifacts in the cache, never imports them."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from edgecam.base.errors import ModelError
from edgecam.models import store

log = logging.getLogger(__name__)

# (spec, the artifact's path, calibration folder of an int8 build or None) → the build's details
Builder = Callable[[store.ModelSpec, Path, Path | None], dict]


def builders() -> dict[str, Builder]:
    """Artifact kind → its builder (raises ImportError where torch is not installed)."""
    from edgecam.models import build, quantize

    return {"onnx": build.onnx, "torchscript": build.torchscript, "onnx-int8": quantize.build_int8}


def build(spec: store.ModelSpec, kind: str, path: Path, calib: Path | None = None) -> dict:
    """Build `kind` of `spec` into `path` (atomically, checked against eager torch); `calib` is
    the folder of calibration images of an int8 build (default: the demo clip)."""
    return builders()[kind](spec, path, calib)


def ensure(spec: store.ModelSpec, kind: str, allow_untrained: bool = False) -> Path:
    """The path of a verified artifact of `kind`, building (or rebuilding) it when needed.
    A network without trained weights here runs only with `allow_untrained` (benchmarks)."""
    if spec.path is not None:
        return spec.path
    if store.weights_id(spec) is None:
        if not allow_untrained:
            raise ModelError(store.untrained_message(spec) + ", or pass --allow-untrained to run it with "
                             "random weights (for benchmarks)")
        log.warning("model %s runs with untrained (random) weights: its labels mean nothing", spec.name)
    path = store.artifact_path(spec, kind)
    if path.exists():
        if store.verified(spec, path):
            return path
        log.warning("cached model %s does not match its recorded sha256 (corrupt or stale): "
                    "rebuilding it", path)
    try:
        table = builders()
    except ImportError as e:
        raise ModelError(f"model {spec.name} has no built {kind} file in {store.cache_dir()} and building "
                         f"one needs torch ({e.name} is not installed): pip install torch, or copy "
                         f"a built {path.name} and its .json there") from None
    table[kind](spec, path, None)
    return path
