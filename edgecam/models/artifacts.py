"""The artifacts a backend loads: verified from the cache, or built there on first use.

Building needs torch, so the builders are imported only when a build is due: the device path, with
its artifacts in the cache, never imports them."""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path

from edgecam.base import extras
from edgecam.base.errors import ModelError
from edgecam.models import store

log = logging.getLogger(__name__)

# (spec, the artifact's path, calibration folder of an int8 build or None) → the build's details
Builder = Callable[[store.ModelSpec, Path, Path | None], dict]


# Artifact kind → "module:function" of its builder, imported only when that kind is built: each
# needs torch and its own converter (onnx, litert-torch, pnnx), none of which the device has.
BUILDERS = {
    "onnx": "edgecam.models.build:onnx",
    "torchscript": "edgecam.models.build:torchscript",
    "onnx-int8": "edgecam.models.quantize:build_int8",
    "litert": "edgecam.models.to_litert:build_fp32",
    "litert-int8": "edgecam.models.to_litert:build_int8",
    "ncnn": "edgecam.models.to_ncnn:build",
}


def builder(kind: str) -> Builder:
    """The builder of `kind` (raises ImportError where its build tools are not installed)."""
    module, function = BUILDERS[kind].split(":")
    return getattr(importlib.import_module(module), function)


def build(spec: store.ModelSpec, kind: str, path: Path, calib: Path | None = None) -> dict:
    """Build `kind` of `spec` into `path` (atomically, checked against eager torch); `calib` is
    the folder of calibration images of an int8 build (default: the demo clip)."""
    return builder(kind)(spec, path, calib)


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
    with extras.needs_build(f"model {spec.name} has no built {kind} file in {store.cache_dir()}, and "
                            "building one"):
        make = builder(kind)
    make(spec, path, None)
    return path
