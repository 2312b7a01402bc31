"""The benchmark's entry for one latency measurement (edgecam.backends.timing): the project's
backends plus the two usual recipes it is compared with, torch eager and OpenCV DNN.

Run as `python -m edgecam.bench.measure MODEL BACKEND THREADS RUNS` by the benchmark, so that each
(model, backend) starts clean and its peak RSS is its own."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgecam.backends import timing
from edgecam.backends.timing import Predict
from edgecam.base import atomic
from edgecam.models import store


def torch_eager(spec: store.ModelSpec, threads: int) -> Predict:
    """The PyTorch tutorial's path: the eager module, normalisation in torch, no export."""
    import torch

    from edgecam.models import build

    torch.set_num_threads(threads)
    model = build.Preprocessed(build.network(spec), spec.mean, spec.std).eval()

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch)).numpy()

    return predict


def opencv_dnn(spec: store.ModelSpec, threads: int) -> Predict:
    """OpenCV's DNN module on a float NCHW export of the same network (it takes no uint8 graph)."""
    import cv2

    path = float_onnx(spec)
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromONNX(str(path))

    def predict(batch: np.ndarray) -> np.ndarray:
        net.setInput(cv2.dnn.blobFromImages(list(batch)))
        return net.forward()

    return predict


def float_onnx(spec: store.ModelSpec) -> Path:
    """A float32 NCHW 0..255 input export, normalisation in-graph, cached beside the others."""
    path = store.cache_dir() / f"{spec.name}.float.onnx"
    if path.exists():
        return path
    import torch

    from edgecam.models import build

    class FloatInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = build.Preprocessed(build.network(spec), spec.mean, spec.std)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner.net((x - self.inner.mean) * self.inner.scale)

    model = FloatInput().eval()
    example = torch.zeros(1, 3, spec.input, spec.input)
    with atomic.replaced(path) as tmp, torch.no_grad():
        build._export_onnx(model, example, tmp)
    return path


def predictor(spec: store.ModelSpec, backend: str, threads: int, allow_untrained: bool) -> Predict:
    if backend == "torch-eager":
        return torch_eager(spec, threads)
    if backend == "opencv-dnn":
        return opencv_dnn(spec, threads)
    return timing.backend_predictor(spec, backend, threads, allow_untrained)


if __name__ == "__main__":
    raise SystemExit(timing.main(sys.argv[1:], predictor))
