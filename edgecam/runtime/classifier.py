"""Model + backend + labels: turns a frame into a Prediction (top-k labels, scores, latency)."""
from __future__ import annotations

import time

import numpy as np

from edgecam import backends
from edgecam.base.errors import ModelError
from edgecam.base.frame import Label, Prediction
from edgecam.base.preprocess import center_crop_resize
from edgecam.models import store


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def top_k(probabilities: np.ndarray, labels: list[str], k: int) -> list[Label]:
    k = min(k, probabilities.shape[-1])
    best = np.argpartition(-probabilities, k - 1)[:k]
    best = best[np.argsort(-probabilities[best], kind="stable")]
    return [Label(labels[i], int(i), float(probabilities[i])) for i in best]


class Classifier:
    def __init__(self, spec: store.ModelSpec, backend: backends.Backend, topk: int) -> None:
        if len(spec.labels) == 0:
            raise ModelError(f"labels file {spec.labels_file} of model {spec.name} is empty")
        self.spec = spec
        self.backend = backend
        self.topk = topk
        self.input_size = backend.input_size

    @classmethod
    def load(cls, spec: store.ModelSpec, backend: str, threads: int, topk: int,
             allow_untrained: bool = False) -> Classifier:
        return cls(spec, backends.load(backend, spec, threads, allow_untrained), topk)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return center_crop_resize(image, self.input_size)

    def classify_prepared(self, batch: np.ndarray) -> list[Prediction]:
        """uint8 (N, S, S, 3) already at the input size → one Prediction per image."""
        started = time.perf_counter()
        logits = self.backend.predict(batch)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        labels = self.spec.labels
        if logits.shape[-1] != len(labels):
            raise ModelError(f"model {self.spec.name} outputs {logits.shape[-1]} classes but its "
                             f"labels file {self.spec.labels_file} has {len(labels)} names")
        return [
            Prediction(top_k(p, labels, self.topk), elapsed_ms / len(batch), model=self.spec.name,
                       backend=self.backend.name)
            for p in softmax(logits.astype(np.float32))
        ]

    def classify(self, image: np.ndarray) -> Prediction:
        return self.classify_prepared(self.prepare(image)[None])[0]
