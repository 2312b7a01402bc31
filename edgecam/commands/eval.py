"""`edgecam eval DATASET --model NAME`: accuracy, per-class precision/recall, confusion matrix."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgecam.base import options
from edgecam.commands import model_options, settings_of


def eval_options() -> list[options.Option]:
    return [o for o in model_options() if o.key != "topk"] + [
        options.Option("plot", options.optional(options.text), None,
                       "write the confusion matrix as an image (PNG)", metavar="FILE"),
    ]


def register(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help="accuracy of a model on a labelled dataset folder")
    evaluate.add_argument("dataset", metavar="DATASET",
                          help="folder with one subfolder of images per class, named like the "
                          "model's labels")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.add_argument("--config", metavar="FILE", help="TOML file with any of these options")
    options.add_arguments(evaluate, eval_options())
    evaluate.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from edgecam.models import store
    from edgecam.training import evaluate

    settings = settings_of(args, eval_options())
    spec = store.get(settings.model, settings.labels)
    report = evaluate.evaluate(Path(args.dataset), spec, settings.backend, settings.threads)
    if settings.plot:
        evaluate.plot(report, Path(settings.plot))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    skipped = f" ({report.unreadable} unreadable skipped)" if report.unreadable else ""
    print(f"{report.model} on {report.dataset}: {report.images} images{skipped}")
    print(f"accuracy {report.accuracy:.1%}")
    width = max(12, *(len(c) for c in report.classes))
    print(f"{'class':<{width}}  precision  recall  images")
    for row in report.as_dict()["classes"]:
        precision, recall = (f"{v:.1%}" if v is not None else "-"
                             for v in (row["precision"], row["recall"]))
        print(f"{row['label']:<{width}}  {precision:>9}  {recall:>6}  {row['images']:>6}")
    if settings.plot:
        print(f"confusion matrix: {settings.plot}")
    return 0
