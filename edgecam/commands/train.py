"""`edgecam train DATASET`: teach a pretrained model your own classes, on the CPU, into a named model
that `run`, `classify` and `eval` take with --model NAME."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgecam.base import options
from edgecam.commands import settings_of


def augmentations(value: Any) -> str:
    """'none' or a comma-separated list of AUGMENTATIONS, normalised."""
    from edgecam.training.features import AUGMENTATIONS

    kinds = [k.strip() for k in options.text(value).split(",") if k.strip()]
    if kinds == ["none"]:
        return "none"
    if not kinds or any(k not in AUGMENTATIONS for k in kinds):
        raise ValueError(f"must be 'none' or a comma-separated list of {', '.join(AUGMENTATIONS)}")
    return ",".join(kinds)


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


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model on your own classes (transfer learning)")
    train.add_argument("dataset", metavar="DATASET",
                       help="folder with one subfolder of images per class (edgecam capture)")
    train.add_argument("--config", metavar="FILE", help="TOML file with any of these options")
    options.add_arguments(train, OPTIONS)
    train.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from edgecam.training import trainer
    from edgecam.training.features import Augment

    settings = settings_of(args, OPTIONS)
    root = Path(args.dataset)
    kinds = () if settings.augment == "none" else tuple(settings.augment.split(","))
    copies = settings.copies if kinds else 0
    train_options = trainer.Options(
        base=settings.base, out=settings.out or root.resolve().name, epochs=settings.epochs,
        val_split=settings.val_split, augment=Augment(kinds, copies, settings.seed),
        finetune_blocks=settings.finetune_blocks, lr=settings.lr, seed=settings.seed,
        int8=settings.int8)

    def report(epoch: trainer.Epoch) -> None:
        print(f"epoch {epoch.number:>3}/{settings.epochs}  loss {epoch.loss:.3f}  "
              f"train {epoch.train_accuracy:6.1%}  val {epoch.val_accuracy:6.1%}", flush=True)

    result = trainer.train(root, train_options, report)
    skipped = f", {result.unreadable} unreadable skipped" if result.unreadable else ""
    print(f"model {result.name}: {len(result.classes)} classes ({', '.join(result.classes)}), "
          f"{result.train_images} training and {result.val_images} validation images{skipped}, "
          f"val accuracy {result.epochs[-1].val_accuracy:.1%}, {result.seconds:.0f} s")
    int8 = f" (or --model {result.name}-int8)" if settings.int8 else ""
    print(f"wrote {result.path}; use it with: edgecam run --model {result.name}{int8}",
          file=sys.stderr)
    return 0
