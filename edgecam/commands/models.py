"""`edgecam models list|build`: the named models and their built files."""
from __future__ import annotations

import argparse
import json


def register(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="list and build the models")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every named model and its built files")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=cmd_list)
    building = actions.add_parser("build", help="build (export and verify) a model's files")
    building.add_argument("name", metavar="NAME")
    building.add_argument("--torchscript", action="store_true", help="also build the TorchScript file")
    building.add_argument("--force", action="store_true", help="rebuild even when a verified file exists")
    building.set_defaults(func=cmd_build)


def cmd_list(args: argparse.Namespace) -> int:
    from edgecam import store

    rows = []
    for spec in store.manifest().values():
        built = [kind for kind in store.ARTIFACTS if store.verified(spec, store.artifact_path(spec, kind))]
        rows.append({"name": spec.name, "net": spec.net, "input": spec.input,
                     "classes": len(spec.labels), "weights": "pretrained" if spec.weights else "none",
                     "built": built})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<24} {'input':>5} {'classes':>7}  {'weights':<10} built")
    for row in rows:
        print(f"{row['name']:<24} {row['input']:>5} {row['classes']:>7}  {row['weights']:<10} "
              f"{', '.join(row['built']) or '-'}")
    print(f"cache: {store.cache_dir()}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
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
