"""How well a model labels a dataset: accuracy, per-class precision and recall, confusion matrix.

It runs the model exactly as `edgecam run` does (the same Classifier, preprocessing and backend), so
the numbers describe what the device will see; no torch is imported on the onnxruntime path."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecam.base.errors import EdgecamError, SourceError
from edgecam.base.imageio import read_rgb
from edgecam.base.progress import Progress
from edgecam.models import store
from edgecam.runtime.classifier import Classifier
from edgecam.training import dataset

log = logging.getLogger(__name__)

BATCH = 16


@dataclass
class Evaluation:
    model: str
    dataset: Path
    classes: list[str]  # the classes in the dataset or among the predictions, in model order
    matrix: np.ndarray  # matrix[true, predicted], over `classes`
    unreadable: int

    @property
    def images(self) -> int:
        return int(self.matrix.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.matrix) / max(self.images, 1))

    def precision(self) -> np.ndarray:
        """Of the images predicted as each class, the share that are: NaN for a class never predicted."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.matrix) / self.matrix.sum(axis=0)

    def recall(self) -> np.ndarray:
        """Of the images of each class, the share predicted as it: NaN for a class with no images."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.matrix) / self.matrix.sum(axis=1)

    def as_dict(self) -> dict:
        def number(x: float) -> float | None:
            return None if np.isnan(x) else round(float(x), 4)

        return {
            "model": self.model, "dataset": str(self.dataset), "images": self.images,
            "unreadable": self.unreadable, "accuracy": number(self.accuracy),
            "classes": [{"label": name, "precision": number(p), "recall": number(r),
                         "images": int(n)}
                        for name, p, r, n in zip(self.classes, self.precision(), self.recall(),
                                                 self.matrix.sum(axis=1), strict=True)],
            "confusion": self.matrix.tolist(),
        }


def evaluate(root: Path, spec: store.ModelSpec, backend: str, threads: int) -> Evaluation:
    """Classify every image of the ImageFolder dataset `root` (its folders named like the model's
    labels); unreadable images are skipped and counted."""
    labels = spec.labels
    data = dataset.scan(root, labels)
    classifier = Classifier.load(spec, backend, threads, 1)
    truth: list[int] = []
    predicted: list[int] = []
    unreadable = 0
    progress = Progress(f"evaluating {spec.name}", len(data.samples), unit="images")
    for start in range(0, len(data.samples), BATCH):
        batch, batch_truth = [], []
        for sample in data.samples[start:start + BATCH]:
            try:
                batch.append(classifier.prepare(read_rgb(sample.path)))
                batch_truth.append(sample.label)
            except SourceError as e:
                log.warning("skipping %s", e)
                unreadable += 1
        if batch:
            predictions = classifier.classify_prepared(np.stack(batch))
            predicted += [p.best.index for p in predictions]
            truth += batch_truth
        progress.advance(len(data.samples[start:start + BATCH]))
    progress.finish(f"{len(truth)} images")
    if not truth:
        raise EdgecamError(f"dataset {root} has no readable images")
    shown = sorted(set(truth) | set(predicted))
    position = {label: i for i, label in enumerate(shown)}
    matrix = np.zeros((len(shown), len(shown)), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        matrix[position[t], position[p]] += 1
    return Evaluation(spec.name, root, [labels[i] for i in shown], matrix, unreadable)


def plot(report: Evaluation, path: Path) -> None:
    """The confusion matrix as a PNG: counts in the cells, rows the true class, columns the predicted."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgecamError("--plot draws with matplotlib: pip install matplotlib") from None
    n = len(report.classes)
    side = max(4.0, 0.6 * n + 2.5)
    figure, axes = plt.subplots(figsize=(side, side), dpi=100)
    axes.imshow(report.matrix, cmap="Blues", vmin=0)
    axes.set_xticks(range(n), report.classes, rotation=45, ha="right")
    axes.set_yticks(range(n), report.classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{report.model} on {report.dataset.name}: {report.accuracy:.1%} of {report.images}")
    threshold = report.matrix.max() / 2
    for (row, column), count in np.ndenumerate(report.matrix):
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > threshold else "black")
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as e:
        raise EdgecamError(f"--plot {path} cannot be written ({e.strerror})") from None
    finally:
        plt.close(figure)
