"""Features of a frozen pretrained backbone, computed once per image and cached on disk.

Transfer learning on a Pi's CPU is fast because the expensive part, the backbone's forward pass,
runs once per image (and once per augmented copy) instead of once per epoch. The cache is keyed by
each image file's sha256, the base model's weights, where the backbone is cut and the augmentation,
so adding ten photos to a dataset costs ten forward passes, not a new run. Imports torch."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from edgecam.base import atomic
from edgecam.base.errors import SourceError, UsageError
from edgecam.base.imageio import read_rgb
from edgecam.base.preprocess import center_crop_resize
from edgecam.base.progress import Progress
from edgecam.models import build, store
from edgecam.models.nets.efficientnet_lite import EfficientNetLite
from edgecam.training.dataset import Dataset, Sample

log = logging.getLogger(__name__)

AUGMENTATIONS = ("flip", "crop", "color")
BATCH = 16
# Bumped when the way features are computed changes, so older caches are not reused.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Augment:
    kinds: tuple[str, ...] = ()
    copies: int = 0  # extra augmented feature copies of each training image
    seed: int = 0

    @property
    def tag(self) -> str:
        return f"{'+'.join(self.kinds)}-x{self.copies}-s{self.seed}" if self.copies else "plain"

    def __call__(self, image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        """One random training view of a full-size RGB image, size×size."""
        if "crop" in self.kinds:
            view = random_resized_crop(image, size, rng)
        else:
            view = center_crop_resize(image, size)
        if "flip" in self.kinds and rng.random() < 0.5:
            view = view[:, ::-1]
        if "color" in self.kinds:
            view = color_jitter(view, rng)
        return np.ascontiguousarray(view)


def random_resized_crop(image: np.ndarray, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.35, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> np.ndarray:
    """A random part of the image (35-100% of its area, aspect 3:4 to 4:3), resized to size×size:
    the object seen closer, further off-centre, or squeezed, as a hand-held camera sees it."""
    height, width = image.shape[:2]
    area = height * width * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    w = int(min(width, round(np.sqrt(area * aspect))))
    h = int(min(height, round(np.sqrt(area / aspect))))
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    crop = image[top:top + h, left:left + w]
    interpolation = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def color_jitter(image: np.ndarray, rng: np.random.Generator, amount: float = 0.3) -> np.ndarray:
    """Brightness, contrast and saturation each scaled by a random factor in 1 ± amount: other
    light, another white balance, another camera."""
    x = image.astype(np.float32)
    x *= rng.uniform(1 - amount, 1 + amount)
    x = x.mean() + (x - x.mean()) * rng.uniform(1 - amount, 1 + amount)
    gray = x.mean(axis=2, keepdims=True)
    x = gray + (x - gray) * rng.uniform(1 - amount, 1 + amount)
    return np.clip(x, 0, 255).astype(np.uint8)


class Trunk(nn.Module):
    """The frozen part of the backbone: everything before the last `tail_blocks` blocks (all of
    `features()`, the pooled embedding, when no block is fine-tuned)."""

    def __init__(self, net: EfficientNetLite, tail_blocks: int) -> None:
        super().__init__()
        self.net = net
        self.cut = len(net.blocks) - tail_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cut == len(self.net.blocks):
            return self.net.features(x)
        x = self.net.stem(x)
        for block in self.net.blocks[:self.cut]:
            x = block(x)
        return x


class Tail(nn.Module):
    """The fine-tuned part: the last blocks and the head (the same modules as in `net`, so training
    them trains the network that is exported)."""

    def __init__(self, net: EfficientNetLite, tail_blocks: int) -> None:
        super().__init__()
        self.net = net
        self.cut = len(net.blocks) - tail_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.net.blocks[self.cut:]:
            x = block(x)
        return self.net.head(x)

    def trainable(self) -> list[nn.Parameter]:
        modules = [*self.net.blocks[self.cut:], self.net.head]
        return [p for m in modules for p in m.parameters()]


class Backbone:
    """The base model's pretrained network, cut into a cached trunk and an optional trainable tail."""

    def __init__(self, spec: store.ModelSpec, tail_blocks: int) -> None:
        if spec.net is None or not spec.net.startswith("efficientnet_lite"):
            raise UsageError(f"--base {spec.name}: training starts from a built-in EfficientNet-Lite "
                             "model (edgecam models list)")
        self.weights = store.weights_id(spec)
        if self.weights is None:
            raise UsageError(f"--base {spec.name} has no trained weights here: "
                             f"{store.untrained_message(spec)}")
        self.spec = spec
        self.net = build.network(spec)
        blocks = len(self.net.blocks)
        if not 0 <= tail_blocks <= blocks:
            raise UsageError(f"--finetune-blocks {tail_blocks}: {spec.name} has {blocks} blocks; "
                             f"give 0 to {blocks}")
        self.tail_blocks = tail_blocks
        self.trunk = build.Preprocessed(Trunk(self.net, tail_blocks), spec.mean, spec.std).eval()
        self.tail = Tail(self.net, tail_blocks) if tail_blocks else None

    def cache_file(self, augment: Augment) -> Path:
        key = f"v{CACHE_FORMAT}-{self.spec.name}-{self.weights[:16]}-cut{self.tail_blocks}-{augment.tag}"
        return store.cache_dir() / "features" / f"{key}.npz"

    @torch.inference_mode()
    def compute(self, images: list[np.ndarray]) -> np.ndarray:
        return self.trunk(torch.from_numpy(np.stack(images))).numpy()


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("feature cache %s is unreadable (%s): computing the features again", path, e)
        return {}


def _save_cache(path: Path, entries: dict[str, np.ndarray]) -> None:
    # np.savez adds ".npz" to a file name without it (the temporary one): it gets the open file.
    with atomic.replaced(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **entries)


@dataclass
class Features:
    values: dict[Path, np.ndarray]  # readable image → its features, shape (copies, ...)
    unreadable: list[Path]


def stacked(samples: list[Sample], *features: dict[Path, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels): every copy of every sample, from each of `features`, as one row."""
    values = [f[s.path] for f in features for s in samples]
    labels = [s.label for f in features for s in samples for _ in range(len(f[s.path]))]
    return np.concatenate(values), np.array(labels, dtype=np.int64)


def extract(backbone: Backbone, dataset: Dataset, augment: Augment, digests: dict[Path, str],
            title: str) -> Features:
    """The features of each image of `dataset` (1 copy, or `augment.copies` random views), from the
    cache where it has them; unreadable images are skipped and listed."""
    path = backbone.cache_file(augment)
    cache = _load_cache(path)
    todo = [s for s in dataset.samples if digests[s.path] not in cache]
    size = backbone.spec.input
    unreadable: list[Path] = []
    if todo:
        progress = Progress(title, len(todo), unit="images")
        pending: list[tuple[str, list[np.ndarray]]] = []

        def flush() -> None:
            views = [v for _, vs in pending for v in vs]
            values = backbone.compute(views)
            start = 0
            for digest, vs in pending:
                cache[digest] = values[start:start + len(vs)]
                start += len(vs)
            progress.advance(len(pending))
            pending.clear()

        for sample in todo:
            try:
                image = read_rgb(sample.path)
            except SourceError as e:
                log.warning("skipping %s", e)
                unreadable.append(sample.path)
                progress.advance()
                continue
            digest = digests[sample.path]
            if augment.copies:
                rng = np.random.default_rng([int(digest[:16], 16), augment.seed])
                views = [augment(image, size, rng) for _ in range(augment.copies)]
            else:
                views = [center_crop_resize(image, size)]
            pending.append((digest, views))
            if sum(len(vs) for _, vs in pending) >= BATCH:
                flush()
        if pending:
            flush()
        progress.finish(f"{len(todo) - len(unreadable)} images")
        _save_cache(path, cache)
    return Features({s.path: cache[digests[s.path]] for s in dataset.samples
                     if digests[s.path] in cache}, unreadable)


def digests_of(dataset: Dataset) -> dict[Path, str]:
    """sha256 of every file: the cache key of its features (a renamed photo keeps them)."""
    return {s.path: store.sha256(s.path) for s in dataset.samples}
