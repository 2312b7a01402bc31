"""Inference backends: `load(...)` gives a Backend (edgecam.backends.base) with
`predict(uint8 NHWC batch) -> logits`.

Each backend module is imported only when chosen and imports only its own runtime, so the
onnxruntime, LiteRT and ncnn paths never import torch."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import NamedTuple

from edgecam.backends.base import Backend
from edgecam.models import artifacts, store


class Entry(NamedTuple):
    module: str  # the edgecam module of the backend class
    cls: str
    artifact: str  # the kind of file it loads (edgecam.models.store.ARTIFACTS)
    runtime: str  # the module of the runtime it needs: one that is not installed is not offered by auto


BACKENDS: dict[str, Entry] = {
    "onnx": Entry("edgecam.backends.onnx", "OnnxBackend", "onnx", "onnxruntime"),
    "onnx-int8": Entry("edgecam.backends.onnx", "OnnxBackend", "onnx-int8", "onnxruntime"),
    "torchscript": Entry("edgecam.backends.torchscript", "TorchScriptBackend", "torchscript", "torch"),
    "litert": Entry("edgecam.backends.litert", "LiteRtBackend", "litert", "ai_edge_litert"),
    "litert-int8": Entry("edgecam.backends.litert", "LiteRtBackend", "litert-int8", "ai_edge_litert"),
    "ncnn": Entry("edgecam.backends.ncnn", "NcnnBackend", "ncnn", "ncnn"),
}


# Besides the backends themselves: measure them once here and keep the fastest (backends/auto.py).
CHOICES = (*BACKENDS, "auto")


def artifact(name: str, spec: store.ModelSpec, allow_untrained: bool = False) -> Path:
    """The verified file backend `name` loads for `spec`, built first when needed."""
    return artifacts.ensure(spec, BACKENDS[name].artifact, allow_untrained)


def load(name: str, spec: store.ModelSpec, threads: int, allow_untrained: bool = False) -> Backend:
    if name == "auto":
        from edgecam.backends import auto

        name = auto.choose(spec, threads, allow_untrained)
    entry = BACKENDS[name]
    path = artifact(name, spec, allow_untrained)
    # One class may serve several choices (onnx, onnx-int8): it is told which one.
    return getattr(importlib.import_module(entry.module), entry.cls)(path, threads, name)
