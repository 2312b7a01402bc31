"""TorchScript: the same network as the ONNX file, traced and frozen, taking the same uint8 input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from edgecam.backends.base import Backend
from edgecam.base import atomic
from edgecam.base.errors import ModelError


class TorchScriptBackend(Backend):
    def __init__(self, path: Path, threads: int, name: str = "torchscript") -> None:
        self.name = name
        torch.set_num_threads(threads)
        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelError(f"model file {path} cannot be loaded by TorchScript ({reason}): "
                             "rebuild it with `edgecam models build --torchscript`") from None
        meta = atomic.sidecar(path)
        try:
            self.input_size = int(json.loads(meta.read_text())["input"])
        except (OSError, ValueError, KeyError):
            raise ModelError(f"model file {path} has no readable {meta.name} beside it: rebuild it "
                             "with `edgecam models build --torchscript`") from None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(batch)).numpy()
