"""Inference backends: `load(...)` gives a Backend (edgecam.backends.base) with
`predict(uint8 NHWC batch) -> logits`.

Each backend module is imported only when chosen and imports only its own runtime, so the
onnxruntime, LiteRT and ncnn paths never import torch."""
from __future__ import annotations

import importlib
from pathlib import Path

from edgecam.backends.base import Backend
from edgecam.models import artifacts, store

# backend name → (module, class, artifact kind it loads)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "onnx": ("edgecam.backends.onnx", "OnnxBackend", "onnx"),
    "onnx-int8": ("edgecam.backends.onnx", "OnnxBackend", "onnx-int8"),
    "torchscript": ("edgecam.backends.torchscript", "TorchScriptBackend", "torchscript"),
    "litert": ("edgecam.backends.litert", "LiteRtBackend", "litert"),
    "litert-int8": ("edgecam.backends.litert", "LiteRtBackend", "litert-int8"),
    "ncnn": ("edgecam.backends.ncnn", "NcnnBackend", "ncnn"),
}


# Besides the backends themselves: measure them once here and keep the fastest (backends/auto.py).
CHOICES = (*BACKENDS, "auto")


def artifact(name: str, spec: store.ModelSpec, allow_untrained: bool = False) -> Path:
    """The verified file backend `name` loads for `spec`, built first when needed."""
    return artifacts.ensure(spec, BACKENDS[name][2], allow_untrained)


def load(name: str, spec: store.ModelSpec, threads: int, allow_untrained: bool = False) -> Backend:
    if name == "auto":
        from edgecam.backends import auto

        name = auto.choose(spec, threads, allow_untrained)
    module_name, class_name, _ = BACKENDS[name]
    path = artifact(name, spec, allow_untrained)
    # One class may serve several choices (onnx, onnx-int8): it is told which one.
    return getattr(importlib.import_module(module_name), class_name)(path, threads, name)
