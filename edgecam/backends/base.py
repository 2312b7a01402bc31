"""The one interface every inference backend has: predict(uint8 NHWC batch) -> float32 logits, and
the two facts the run loop reads, `name` and `input_size`, both set by the constructor.

Each implementation lives in a module of its own that imports only its runtime (onnxruntime,
torch), and is imported only when chosen (edgecam.backends.load)."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Backend(ABC):
    name: str  # the --backend choice it serves: one class may serve several (onnx, onnx-int8)
    input_size: int  # side of the square uint8 RGB input

    @abstractmethod
    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 array (N, S, S, 3) at `input_size` → float32 logits (N, classes)."""
