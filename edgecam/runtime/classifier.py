"""Model + backend + labels: turns a frame into a Prediction (top-k labels, scores, latency)."""
from __future__ import annotations

import difflib
import time
from dataclasses import dataclass

import numpy as np

from edgecam import backends
from edgecam.base.errors import ModelError, UsageError
from edgecam.base.frame import Label, Prediction
from edgecam.base.preprocess import center_crop_resize
from edgecam.models import store


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Selection:
    """Which labels a prediction reports: the `topk` best (every one with 0) of the `allowed`
    indices (None: all), each scoring `min_score` or more. None may pass: an empty top-k."""

    topk: int = 5
    allowed: np.ndarray | None = None
    min_score: float = 0.0

    @classmethod
    def of(cls, labels: list[str], topk: int, only: tuple[str, ...] | None = None,
           ignore: tuple[str, ...] | None = None, min_score: float = 0.0) -> Selection:
        """From the --only/--ignore names or indices, checked against `labels`."""
        allowed = None
        if only or ignore:
            allowed = np.zeros(len(labels), bool) if only else np.ones(len(labels), bool)
            allowed[label_indices(only or (), labels, "--only")] = True
            allowed[label_indices(ignore or (), labels, "--ignore")] = False
        return cls(topk, allowed, min_score)

    def pick(self, probabilities: np.ndarray, labels: list[str]) -> list[Label]:
        candidates = np.flatnonzero(probabilities >= self.min_score)
        if self.allowed is not None:
            candidates = candidates[self.allowed[candidates]]
        if self.topk and len(candidates) > self.topk:
            candidates = candidates[np.argpartition(-probabilities[candidates], self.topk - 1)[:self.topk]]
        best = candidates[np.argsort(-probabilities[candidates], kind="stable")]
        return [Label(labels[i], int(i), float(probabilities[i])) for i in best]


def label_indices(names: tuple[str, ...], labels: list[str], flag: str) -> list[int]:
    """The indices of `names` (label names, case-insensitive, or indices) in `labels`; an unknown
    one is a UsageError that lists the nearest names."""
    by_name = {label.lower(): i for i, label in enumerate(labels)}
    indices = []
    for name in names:
        if name.strip().isdigit() and int(name) < len(labels):
            indices.append(int(name))
        elif name.strip().lower() in by_name:
            indices.append(by_name[name.strip().lower()])
        else:
            near = difflib.get_close_matches(name.lower(), by_name, n=3, cutoff=0.6)
            hint = (f"did you mean {', '.join(labels[by_name[n]] for n in near)}?" if near else
                    f"give names from the model's labels or indices 0-{len(labels) - 1}")
            raise UsageError(f"{flag}: the model has no label '{name}': {hint}")
    return indices


class Classifier:
    def __init__(self, spec: store.ModelSpec, backend: backends.Backend,
                 select: int | Selection) -> None:
        if len(spec.labels) == 0:
            raise ModelError(f"labels file {spec.labels_file} of model {spec.name} is empty")
        self.spec = spec
        self.backend = backend
        self.select = select if isinstance(select, Selection) else Selection(select)
        self.input_size = backend.input_size

    @classmethod
    def load(cls, spec: store.ModelSpec, backend: str, threads: int, select: int | Selection,
             allow_untrained: bool = False) -> Classifier:
        return cls(spec, backends.load(backend, spec, threads, allow_untrained), select)

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
            Prediction(self.select.pick(p, labels), elapsed_ms / len(batch), model=self.spec.name,
                       backend=self.backend.name)
            for p in softmax(logits.astype(np.float32))
        ]

    def classify(self, image: np.ndarray) -> Prediction:
        return self.classify_prepared(self.prepare(image)[None])[0]
