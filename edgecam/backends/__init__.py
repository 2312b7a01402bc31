"""Inference backends: `load(...)` gives an object with `predict(uint8 NHWC batch) -> logits`.

Each backend module is imported only when chosen, so the onnxruntime path never imports torch."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from edgecam.models import artifacts, store

# backend name → (module, class, artifact kind it loads)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "onnx": ("edgecam.backends.onnx", "OnnxBackend", "onnx"),
    "onnx-int8": ("edgecam.backends.onnx", "OnnxBackend", "onnx-int8"),
    "torchscript": ("edgecam.backends.torchscript", "TorchScriptBackend", "torchscript"),
}


class Backend(Protocol):
    name: str
    input_size: int  # side of the square uint8 RGB input

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 array (N, H, W, 3) → float32 logits (N, classes)."""
        ...


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
    backend = getattr(importlib.import_module(module_name), class_name)(path, threads)
    backend.name = name  # one class may serve several choices (onnx, onnx-int8)
    return backend
