"""One latency measurement: a model on a backend, in this process, printed as JSON.

Run as `python -m edgecam.bench.measure MODEL BACKEND THREADS RUNS` by the benchmark, so that each
(model, backend) starts clean and its peak RSS is its own."""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from edgecam import backends, store
from edgecam.classifier import softmax

Predict = Callable[[np.ndarray], np.ndarray]

# What the benchmark can compare: the project's backends plus the two usual recipes.
BASELINES = ("torch-eager", "opencv-dnn")


def sample_inputs(size: int, count: int = 8) -> np.ndarray:
    """Real demo frames at the model input size (content matters for the top-1 check only);
    seeded noise where the demo photos are not installed."""
    from edgecam.errors import SourceError
    from edgecam.preprocess import center_crop_resize
    from edgecam.sources.demo import DemoClip

    try:
        clip = DemoClip(640, 360)
    except SourceError:
        return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), np.uint8)
    step = max(1, len(clip) // count)
    return np.stack([center_crop_resize(clip.frame(i * step), size) for i in range(count)])


def torch_eager(spec: store.ModelSpec, threads: int) -> Predict:
    """The PyTorch tutorial's path: the eager module, normalisation in torch, no export."""
    import torch

    from edgecam import build

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

    from edgecam import build

    class FloatInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = build.Preprocessed(build.network(spec), spec.mean, spec.std)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner.net((x - self.inner.mean) * self.inner.scale)

    model = FloatInput().eval()
    example = torch.zeros(1, 3, spec.input, spec.input)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with torch.no_grad():
        build._export_onnx(model, example, tmp)
    tmp.replace(path)
    return path


def predictor(spec: store.ModelSpec, backend: str, threads: int, allow_untrained: bool) -> Predict:
    if backend == "torch-eager":
        return torch_eager(spec, threads)
    if backend == "opencv-dnn":
        return opencv_dnn(spec, threads)
    return backends.load(backend, spec, threads, allow_untrained).predict


def measure(model: str, backend: str, threads: int, runs: int, allow_untrained: bool = False) -> dict:
    spec = store.get(model)
    load_started = time.perf_counter()
    predict = predictor(spec, backend, threads, allow_untrained)
    load_seconds = time.perf_counter() - load_started
    inputs = sample_inputs(spec.input)
    top1 = [int(np.argmax(softmax(predict(x[None])[0]))) for x in inputs]  # also warms up
    for i in range(max(3, runs // 10)):
        predict(inputs[i % len(inputs)][None])
    latencies = []
    for i in range(runs):
        x = inputs[i % len(inputs)][None]
        started = time.perf_counter()
        predict(x)
        latencies.append((time.perf_counter() - started) * 1000.0)
    latencies.sort()
    return {
        "model": model, "backend": backend, "threads": threads, "runs": runs,
        "median_ms": latencies[len(latencies) // 2],
        "p95_ms": latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))],
        "load_s": load_seconds, "top1": top1,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM starts afresh at exec, unlike ru_maxrss, which
    keeps the high-water mark of the parent that forked us (the benchmark itself, with torch)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str]) -> int:
    model, backend, threads, runs = argv[0], argv[1], int(argv[2]), int(argv[3])
    print(json.dumps(measure(model, backend, threads, runs, "--allow-untrained" in argv[4:])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
