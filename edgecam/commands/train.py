"""`edgecam train DATASET`: teach a pretrained model your own classes, on the CPU, into a named model
that `run`, `classify` and `eval` take with --model NAME."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecam import training
from edgecam.base import options
from edgecam.commands import settings_of


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model on your own classes (transfer learning)")
    train.add_argument("dataset", metavar="DATASET",
                       help="folder with one subfolder of images per class (edgecam capture)")
    train.add_argument("--config", metavar="FILE", help="TOML file with any of these options")
    options.add_arguments(train, training.OPTIONS)
    train.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from edgecam.training import trainer

    settings = settings_of(args, training.OPTIONS)

    def report(epoch: trainer.Epoch) -> None:
        print(f"epoch {epoch.number:>3}/{settings.epochs}  loss {epoch.loss:.3f}  "
              f"train {epoch.train_accuracy:6.1%}  val {epoch.val_accuracy:6.1%}", flush=True)

    result = trainer.train(Path(args.dataset), settings, report)
    skipped = f", {result.unreadable} unreadable skipped" if result.unreadable else ""
    print(f"model {result.name}: {len(result.classes)} classes ({', '.join(result.classes)}), "
          f"{result.train_images} training and {result.val_images} validation images{skipped}, "
          f"val accuracy {result.epochs[-1].val_accuracy:.1%}, {result.seconds:.0f} s")
    int8 = f" (or --model {result.name}-int8)" if settings.int8 else ""
    print(f"wrote {result.path}; use it with: edgecam run --model {result.name}{int8}",
          file=sys.stderr)
    return 0
