"""Transfer learning on the CPU: a new linear head (and optionally the last blocks) trained on cached
backbone features, exported as an ordinary edgecam model (ONNX taking uint8 frames, normalisation in
the graph) and registered by name in the user-models manifest of the cache. Imports torch."""
from __future__ import annotations

import itertools
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecam.base.errors import EdgecamError, UsageError
from edgecam.base.options import Settings
from edgecam.models import build, store
from edgecam.models.registry import NAME, register
from edgecam.training import dataset
from edgecam.training.features import Augment, Backbone, digests_of, extract, stacked

log = logging.getLogger(__name__)

BATCH = 32


def augmentation(settings: Settings) -> Augment:
    """The augmented copies --augment, --copies and --seed ask for (none with --augment none)."""
    kinds = () if settings.augment == "none" else tuple(settings.augment.split(","))
    return Augment(kinds, settings.copies if kinds else 0, settings.seed)


@dataclass
class Epoch:
    number: int
    loss: float
    train_accuracy: float
    val_accuracy: float


@dataclass
class Result:
    name: str
    path: Path
    classes: list[str]
    epochs: list[Epoch]
    train_images: int
    val_images: int
    unreadable: int
    seconds: float


def check_name(name: str) -> None:
    """A user model needs a name of its own: not a built-in's, and not one read as a file path."""
    if not NAME.match(name) or name.endswith(".onnx"):
        raise UsageError(f"--out '{name}': a model name is letters, digits, '_', '-' and '.', "
                         "not ending in .onnx")
    if name in store.manifest() and name not in store.user_models():
        raise UsageError(f"--out {name} is a built-in model: choose another name for your model")


def fit(backbone: Backbone, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
        classes: int, settings: Settings, report: Callable[[Epoch], None]) -> tuple[nn.Linear, list[Epoch]]:
    """Train the head (and the tail blocks) with AdamW and a cosine schedule; `report(epoch)` is
    called after each epoch."""
    torch.manual_seed(settings.seed)
    x_train, y_train = (torch.from_numpy(a) for a in train)
    x_val, y_val = (torch.from_numpy(a) for a in val)
    head = nn.Linear(backbone.net.classifier.in_features, classes)
    dropout = nn.Dropout(0.2)
    tail = backbone.tail if backbone.tail is not None else nn.Identity()
    groups = [{"params": head.parameters(), "lr": settings.lr}]
    if backbone.tail is not None:
        groups.append({"params": backbone.tail.trainable(), "lr": settings.lr / 10})
    optimizer = torch.optim.AdamW(groups, weight_decay=1e-4)
    steps = settings.epochs * -(-len(x_train) // BATCH)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    loss_of = nn.CrossEntropyLoss(label_smoothing=0.1)
    history = []
    for number in range(1, settings.epochs + 1):
        head.train()
        total, correct = 0.0, 0
        for batch in torch.randperm(len(x_train)).split(BATCH):
            # BatchNorm statistics stay those of the pretrained network: a few photos per batch
            # would only make them noisier.
            logits = head(dropout(tail(x_train[batch])))
            loss = loss_of(logits, y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
            correct += int((logits.argmax(1) == y_train[batch]).sum())
        head.eval()
        with torch.inference_mode():
            val_logits = head(tail(x_val))
        val_accuracy = float((val_logits.argmax(1) == y_val).float().mean())
        epoch = Epoch(number, total / len(x_train), correct / len(x_train), val_accuracy)
        history.append(epoch)
        report(epoch)
    return head, history


def quantized(spec: store.ModelSpec, images: list[Path]) -> Path:
    """NAME.int8.onnx, calibrated on (and checked against fp32 on) the training photos themselves."""
    from edgecam.models import quantize

    path = store.artifact_path(spec, "onnx-int8")
    with tempfile.TemporaryDirectory() as calib:
        # quantize takes a folder of pictures: links to the training images, classes interleaved
        for i, image in enumerate(images[:quantize.CALIBRATION_FRAMES]):
            (Path(calib) / f"{i:04d}{image.suffix}").symlink_to(image.resolve())
        quantize.build_int8(spec, path, Path(calib))
    return path


def interleaved(samples: list[dataset.Sample]) -> list[Path]:
    """The images one class after another in turn, so any prefix covers every class."""
    by_class: dict[int, list[Path]] = {}
    for sample in samples:
        by_class.setdefault(sample.label, []).append(sample.path)
    rounds = itertools.zip_longest(*by_class.values())
    return [path for group in rounds for path in group if path is not None]


def deploy(backbone: Backbone, head: nn.Linear, classes: list[str], settings: Settings,
           calibration: list[Path], details: dict[str, object]) -> Path:
    """The trained network as a named model: NAME.onnx, NAME.labels.txt and a manifest entry (and
    NAME-int8 with --int8)."""
    base, name = backbone.spec, settings.out
    backbone.net.classifier = head
    model = build.Preprocessed(backbone.net.eval(), base.mean, base.std).eval()
    root = store.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    path, labels = root / f"{name}.onnx", root / f"{name}.labels.txt"
    labels.write_text("\n".join(classes) + "\n", encoding="utf-8")
    spec = store.ModelSpec(name=name, input=base.input, labels_file=labels, path=path)
    diff = build.export_checked(model, spec, "onnx", path)
    store.write_meta(spec, path, kind="onnx", max_abs_diff=diff, input=base.input, base=base.name,
                     classes=classes, torch=torch.__version__, **details)
    entry = {"labels": labels.name, "input": base.input, "base": base.name, "classes": len(classes),
             **details}
    register(name, {"path": path.name, **entry})
    if settings.int8:
        register(f"{name}-int8", {"path": quantized(spec, calibration).name, **entry})
    return path


def train(root: Path, settings: Settings, report: Callable[[Epoch], None]) -> Result:
    """Everything `edgecam train` does: features, fit, export, register. `settings`: those of
    edgecam.training.OPTIONS. The training and validation images are DATASET/train and DATASET/val
    when the dataset comes split, else a stratified random split of the readable images."""
    started = time.monotonic()
    settings = replace(settings, out=settings.out or root.resolve().name)
    check_name(settings.out)
    augment = augmentation(settings)
    by_hand = dataset.is_split(root)
    if by_hand:
        train_set = dataset.scan(root / "train")
        val_set = dataset.scan(root / "val", train_set.classes)
        images = train_set.subset(train_set.samples + val_set.samples)
    else:
        images = dataset.scan(root)
        dataset.check_trainable(images)
    backbone = Backbone(store.get(settings.base), settings.finetune_blocks)
    digests = digests_of(images)
    plain = extract(backbone, images, Augment(), digests, "features")
    if plain.unreadable:
        log.warning("skipped %d unreadable image(s) of %s", len(plain.unreadable), root)

    def readable(part: dataset.Dataset) -> dataset.Dataset:
        return part.subset([s for s in part.samples if s.path in plain.values])

    if by_hand:
        train_set, val_set = readable(train_set), readable(val_set)
        dataset.check_trainable(train_set)
        if not val_set.samples:
            raise EdgecamError(f"dataset {root}/val has no readable images")
    else:
        usable = readable(images)
        dataset.check_trainable(usable)
        train_set, val_set = dataset.split(usable, settings.val_split, settings.seed)
    sources = [plain.values]
    if augment.copies:
        sources.append(extract(backbone, train_set, augment, digests,
                               f"features ({augment.copies} augmented copies)").values)
    head, history = fit(backbone, stacked(train_set.samples, *sources),
                        stacked(val_set.samples, plain.values), len(images.classes), settings, report)
    details = {"val_accuracy": round(history[-1].val_accuracy, 4), "train_images": len(train_set.samples),
               "val_images": len(val_set.samples), "dataset": str(root.resolve())}
    path = deploy(backbone, head, images.classes, settings, interleaved(train_set.samples), details)
    return Result(settings.out, path, images.classes, history, len(train_set.samples),
                  len(val_set.samples), len(plain.unreadable), time.monotonic() - started)
