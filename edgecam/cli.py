"""The `edgecam` command: argparse subcommands over the modules that do the work."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable, Sequence

from edgecam import __version__, options
from edgecam.errors import EdgecamError, UsageError

log = logging.getLogger("edgecam")

LOG_LEVELS = ("debug", "info", "warning", "error")


def run_options() -> list[options.Option]:
    from edgecam import pipeline, sinks, sources

    return pipeline.OPTIONS + sources.OPTIONS + sinks.OPTIONS


def model_options() -> list[options.Option]:
    from edgecam import pipeline

    keys = {"model", "labels", "backend", "topk", "threads"}
    return [o for o in pipeline.OPTIONS if o.key in keys]


def settings_of(args: argparse.Namespace, opts: list[options.Option]) -> options.Settings:
    config = options.read_config(args.config) if getattr(args, "config", None) else None
    return options.resolve(opts, vars(args), config, config_name=f"config {getattr(args, 'config', '')}")


def cmd_run(args: argparse.Namespace) -> int:
    from edgecam import pipeline

    pipeline.run(settings_of(args, run_options()))
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from edgecam.classifier import Classifier
    from edgecam.imageio import read_rgb

    settings = settings_of(args, model_options())
    classifier = Classifier.load(settings.model, settings.backend, settings.threads, settings.topk,
                                 settings.labels)
    images = [read_rgb(path) for path in args.images]  # refuse a bad file before any output
    results = []
    for path, image in zip(args.images, images):
        prediction = classifier.classify(image)
        results.append({
            "image": path, "model": prediction.model, "backend": prediction.backend,
            "inference_ms": round(prediction.inference_ms, 3),
            "top": [{"label": t.label, "index": t.index, "score": round(t.score, 5)} for t in prediction.top],
        })
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    else:
        for result in results:
            print(f"{result['image']}  ({result['model']}, {result['backend']}, {result['inference_ms']:.1f} ms)")
            for t in result["top"]:
                print(f"  {t['score'] * 100:6.2f}%  {t['label']}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from edgecam import store

    rows = []
    for spec in store.manifest().values():
        built = [kind for kind in store.ARTIFACTS if store.verified(spec, store.artifact_path(spec, kind))]
        rows.append({"name": spec.name, "net": spec.net, "input": spec.input,
                     "classes": len(spec.labels), "weights": "pretrained" if spec.weights else "none",
                     "built": built})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'model':<24} {'input':>5} {'classes':>7}  {'weights':<10} built")
        for row in rows:
            print(f"{row['name']:<24} {row['input']:>5} {row['classes']:>7}  {row['weights']:<10} "
                  f"{', '.join(row['built']) or '-'}")
        print(f"cache: {store.cache_dir()}")
    return 0


def cmd_models_build(args: argparse.Namespace) -> int:
    from edgecam import build, store

    spec = store.get(args.name)
    kinds = ["onnx"] + (["torchscript"] if args.torchscript else [])
    for kind in kinds:
        path = store.artifact_path(spec, kind)
        if store.verified(spec, path) and not args.force:
            print(f"{path} is built and verified (--force rebuilds it)")
            continue
        build.build(spec, kind, path)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="edgecam", description=__doc__.splitlines()[0] if __doc__ else None)
    top.add_argument("--version", action="version", version=f"edgecam {__version__}")
    top.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                     help="how much to log to stderr (default: info)")
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="classify a live source: window, logs, outputs")
    run.add_argument("--config", metavar="FILE", help="TOML file with any of these options as keys; "
                     "flags win over it")
    options.add_arguments(run, run_options())
    run.set_defaults(func=cmd_run)

    classify = commands.add_parser("classify", help="top-k labels of image files")
    classify.add_argument("images", nargs="+", metavar="IMAGE")
    classify.add_argument("--json", action="store_true", help="print JSON instead of text")
    classify.add_argument("--config", metavar="FILE", help="TOML file with model options")
    options.add_arguments(classify, model_options())
    classify.set_defaults(func=cmd_classify)

    models = commands.add_parser("models", help="list and build the models")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = model_commands.add_parser("list", help="every named model and its built files")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_models_list)
    building = model_commands.add_parser("build", help="build (export and verify) a model's files")
    building.add_argument("name", metavar="NAME")
    building.add_argument("--torchscript", action="store_true", help="also build the TorchScript file")
    building.add_argument("--force", action="store_true", help="rebuild even when a verified file exists")
    building.set_defaults(func=cmd_models_build)
    return top




def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.log_level)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except EdgecamError as e:
        print(f"edgecam: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
