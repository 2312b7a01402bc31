"""Image datasets in the ImageFolder layout `edgecam capture` writes: DATASET/CLASS/*.jpg, one folder
per class, the folder name being the label. A dataset may instead come split by hand into
DATASET/train/CLASS and DATASET/val/CLASS; `edgecam train` then validates on exactly those images.
No torch here: `edgecam eval` reads datasets on the onnxruntime path."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecam.base.errors import EdgecamError, UsageError
from edgecam.base.imageio import is_image_file

log = logging.getLogger(__name__)

# The folders of a dataset split by hand.
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into the dataset's classes


@dataclass(frozen=True)
class Dataset:
    root: Path
    classes: list[str]
    samples: list[Sample]

    def counts(self) -> Counter[int]:
        return Counter(s.label for s in self.samples)

    def subset(self, samples: list[Sample]) -> Dataset:
        return Dataset(self.root, self.classes, samples)


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan(root: Path, classes: list[str] | None = None) -> Dataset:
    """Every image of `root`, one class per subfolder (sorted by name, or indexed by `classes`)."""
    if not root.is_dir():
        raise UsageError(f"dataset {root} is not a folder: give a folder with one subfolder of images "
                         "per class (edgecam capture --label NAME --out DATASET writes one)")
    folders = _class_dirs(root)
    names = classes if classes is not None else [f.name for f in folders]
    samples = []
    for folder in folders:
        if folder.name not in names:
            shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            raise EdgecamError(f"class folder '{folder.name}' of {root} is not one of the "
                               f"{len(names)} classes ({shown}): rename or remove it")
        label = names.index(folder.name)
        samples += [Sample(p, label) for p in sorted(folder.iterdir()) if p.is_file() and is_image_file(p)]
    if not samples:
        raise EdgecamError(f"dataset {root} has no images: expected {root}/CLASS/*.jpg, one folder "
                           "per class (edgecam capture --label CLASS --out DATASET writes them)")
    return Dataset(root, list(names), samples)


def is_split(root: Path) -> bool:
    return root.is_dir() and all((root / name).is_dir() for name in SPLITS)


def check_trainable(dataset: Dataset) -> None:
    """Training needs two classes or more and two images or more in each (one may validate)."""
    counts = dataset.counts()
    present = [dataset.classes[i] for i in sorted(counts)]
    if len(present) < 2:
        raise EdgecamError(f"dataset {dataset.root} has a single class ({', '.join(present)}): a classifier "
                           "needs at least 2; capture another with edgecam capture --label OTHER")
    for index, name in enumerate(dataset.classes):
        if counts[index] < 2:
            raise EdgecamError(f"class '{name}' of dataset {dataset.root} has {counts[index]} usable "
                               "image(s): each class needs at least 2; capture more with "
                               f"edgecam capture --label {name}")


def split(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(train, val): `fraction` of each class held out at random, at least one image of each class on
    either side, so every class is both learned and checked."""
    rng = np.random.default_rng(seed)
    train: list[Sample] = []
    val: list[Sample] = []
    for label in range(len(dataset.classes)):
        members = [s for s in dataset.samples if s.label == label]
        order = rng.permutation(len(members))
        held = min(max(1, round(fraction * len(members))), len(members) - 1)
        val += [members[i] for i in order[:held]]
        train += [members[i] for i in order[held:]]
    return dataset.subset(train), dataset.subset(val)
