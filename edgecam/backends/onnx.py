"""onnxruntime on the CPU. Imports no torch: this is the path a 512 MB Pi Zero 2 W runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgecam.errors import ModelError


class OnnxBackend:
    name = "onnx"

    def __init__(self, path: Path, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelError(f"model file {path} cannot be loaded by onnxruntime ({reason}): "
                             "rebuild it with `edgecam models build`") from None
        first = self.session.get_inputs()[0]
        shape = first.shape
        if first.type != "tensor(uint8)" or len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise ModelError(f"model file {path} takes {first.type} {shape}; edgecam needs uint8 "
                             "[N, S, S, 3] RGB input with the normalisation inside the graph")
        self.input_name = first.name
        self.input_size = int(shape[1])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]
