"""Teaching a network new classes: datasets, cached features, training, evaluation."""
from __future__ import annotations

from typing import Any

from edgecam.base import options


def augmentations(value: Any) -> str:
    """'none' or a comma-separated list of AUGMENTATIONS, normalised."""
    from edgecam.training.features import AUGMENTATIONS

    kinds = [k.strip() for k in options.text(value).split(",") if k.strip()]
    if kinds == ["none"]:
        return "none"
    if not kinds or any(k not in AUGMENTATIONS for k in kinds):
        raise ValueError(f"must be 'none' or a comma-separated list of {', '.join(AUGMENTATIONS)}")
    return ",".join(kinds)


# The options of `edgecam train`: the settings trainer.train() takes.
OPTIONS = [
    options.Option("base", options.text, "efficientnet_lite0", "the pretrained model to start from",
                   metavar="NAME"),
    options.Option("out", options.optional(options.text), None, "name of the new model "
                   "(default: the dataset folder's name)", metavar="NAME"),
    options.Option("epochs", options.integer(1, 10000), 30, "passes over the training images",
                   metavar="N"),
    options.Option("val_split", options.number(0.01, 0.9), 0.2, "share of each class held out to "
                   "validate (a dataset with train/ and val/ folders is split already)",
                   metavar="F"),
    options.Option("augment", augmentations, "flip,crop,color", "random views of each training image: "
                   "flip, crop (random resized crops), color (jitter), or none", metavar="LIST"),
    options.Option("copies", options.integer(0, 64), 2, "augmented copies of each training image "
                   "(each costs one forward pass, once: features are cached)", metavar="N"),
    options.Option("finetune_blocks", options.integer(0, 64), 0, "also train the last N blocks of "
                   "the network (slower; helps when your classes look unlike ImageNet)", metavar="N"),
    options.Option("lr", options.number(1e-6, 1.0), 3e-3, "learning rate of the new head",
                   metavar="LR"),
    options.Option("int8", options.boolean, False, "also write NAME-int8: the model quantized to "
                   "int8, calibrated on your training photos (faster on a Pi)", switch=True),
    options.Option("seed", options.integer(0), 0, "random seed (split, augmentation, training)",
                   metavar="N"),
]
