"""`edgecam classify IMAGE…`: the top-k labels of image files."""
from __future__ import annotations

import argparse
import json

from edgecam.base import options
from edgecam.commands import model_options, settings_of


def classify_options() -> list[options.Option]:
    from edgecam.runtime import pipeline

    return model_options() + [o for o in pipeline.OPTIONS
                              if o.key in ("only", "ignore", "min_score", "roi", "allow_untrained")]


def register(commands: argparse._SubParsersAction) -> None:
    classify = commands.add_parser("classify", help="top-k labels of image files")
    classify.add_argument("images", nargs="+", metavar="IMAGE")
    classify.add_argument("--json", action="store_true", help="print JSON instead of text")
    classify.add_argument("--config", metavar="FILE", help="TOML file with model options")
    options.add_arguments(classify, classify_options())
    classify.set_defaults(func=cmd_classify)


def cmd_classify(args: argparse.Namespace) -> int:
    from edgecam.base.imageio import read_rgb
    from edgecam.models import store
    from edgecam.runtime.classifier import Classifier, Selection
    from edgecam.sinks.base import top_record

    settings = settings_of(args, classify_options())
    images = [read_rgb(path) for path in args.images]  # refuse a bad file before any work
    spec = store.get(settings.model, settings.labels)
    select = Selection.of(spec.labels, settings.topk, settings.only, settings.ignore, settings.min_score)
    classifier = Classifier.load(spec, settings.backend, settings.threads, select,
                                 settings.allow_untrained)
    results = []
    for path, image in zip(args.images, images, strict=True):
        prediction = classifier.classify(image if settings.roi is None else settings.roi.crop(image))
        results.append({"image": path, "model": prediction.model, "backend": prediction.backend,
                        "inference_ms": round(prediction.inference_ms, 3),
                        "top": top_record(prediction)})
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
        return 0
    for result in results:
        print(f"{result['image']}  ({result['model']}, {result['backend']}, "
              f"{result['inference_ms']:.1f} ms)")
        for t in result["top"]:
            print(f"  {t['score'] * 100:6.2f}%  {t['label']}")
    return 0
