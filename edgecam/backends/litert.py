"""LiteRT (TensorFlow Lite's runtime) with the XNNPACK delegate: the runtime of the TFLite
Raspberry Pi example, on the same uint8 NHWC graph as the ONNX files (normalisation inside).
Imports only `ai_edge_litert`: no torch, no onnx.

The file takes one frame; a batch of N resizes the input once to N and keeps that size while
batches of N keep coming (XNNPACK re-plans on every resize)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from edgecam.backends.base import Backend
from edgecam.base.errors import ModelError
from edgecam.base.quiet import native_stderr_hidden


class LiteRtBackend(Backend):
    """Serves both "litert" (fp32) and "litert-int8": both files take the uint8 frame, and the int8
    file's quantized logits are turned back into float here."""

    def __init__(self, path: Path, threads: int, name: str = "litert") -> None:
        self.name = name
        try:
            with native_stderr_hidden():  # XNNPACK announces itself on every load
                self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelError(f"model file {path} cannot be loaded by LiteRT ({reason}): rebuild it "
                             f"with `edgecam models build --backends {name}`") from None
        first = self.interpreter.get_input_details()[0]
        shape = first["shape"]
        if first["dtype"] != np.uint8 or len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise ModelError(f"model file {path} takes {first['dtype'].__name__} {list(shape)}; edgecam "
                             "needs uint8 [N, S, S, 3] RGB input with the normalisation inside the graph")
        self.input_index = first["index"]
        output = self.interpreter.get_output_details()[0]
        self.output_index = output["index"]
        # An int8 file's logits come out quantized: (q - zero point) × scale gives them back.
        self.output_scale, self.output_zero = output["quantization"]
        self.input_size = int(shape[1])
        self.batch = int(shape[0])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self.batch:
            self.interpreter.resize_tensor_input(self.input_index, list(batch.shape))
            self.interpreter.allocate_tensors()
            self.batch = len(batch)
        self.interpreter.set_tensor(self.input_index, batch)
        self.interpreter.invoke()
        # get_tensor copies: the interpreter's own buffer is overwritten by the next invoke
        logits = self.interpreter.get_tensor(self.output_index)
        if self.output_scale:
            return (logits.astype(np.float32) - self.output_zero) * np.float32(self.output_scale)
        return logits
