"""`edgecam models list|info|compare-conv|build|pull|export|import`: the named models, their cost,
their files, and the packages that carry them to other machines."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Bumped when the profiler counts differently, so cached totals are recounted.
PROFILE_FORMAT = 1


def register(commands: argparse._SubParsersAction) -> None:
    from edgecam.models.store import ARTIFACTS

    models = commands.add_parser("models", help="list, profile, build and pull the models")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every named model: input, params, MACs, weights, files")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=cmd_list)

    info = actions.add_parser("info", help="parameters and multiply-adds of a model, by kind of layer")
    info.add_argument("name", metavar="NAME")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.add_argument("--layers", action="store_true", help="one line per conv / linear layer")
    info.set_defaults(func=cmd_info)

    compare = actions.add_parser("compare-conv", help="cost of a standard vs a depthwise separable conv")
    for flag, default, what in (("--h", 112, "feature map height"), ("--w", 112, "feature map width"),
                                ("--k", 3, "kernel size"), ("--cin", 64, "input channels"),
                                ("--cout", 128, "output channels")):
        compare.add_argument(flag, type=int, default=default, metavar="N",
                             help=f"{what} (default: {default})")
    compare.add_argument("--json", action="store_true", help="print JSON instead of text")
    compare.set_defaults(func=cmd_compare_conv)

    building = actions.add_parser("build", help="build (export and verify) a model's files")
    building.add_argument("name", metavar="NAME")
    building.add_argument("--backends", metavar="B,…", type=backend_list,
                          help=f"the files of these backends ({', '.join(ARTIFACTS)}; default: onnx)")
    building.add_argument("--torchscript", action="store_true", help="also build the TorchScript file")
    building.add_argument("--int8", action="store_true", help="also build the static int8 ONNX file")
    building.add_argument("--calib", metavar="DIR", type=Path,
                          help="calibration images of the int8 builds (default: the demo clip's photos)")
    building.add_argument("--weights", metavar="FILE", type=Path,
                          help="use this local checkpoint (stored as the model's weights)")
    building.add_argument("--force", action="store_true", help="rebuild even when a verified file exists")
    building.set_defaults(func=cmd_build)

    pull = actions.add_parser("pull", help="download a model's published checkpoint into the store")
    pull.add_argument("name", metavar="NAME")
    pull.add_argument("--weights", metavar="FILE", type=Path,
                      help="take this local checkpoint instead of downloading (offline devices), in its "
                      "publisher's format: torchvision .pth, timm .safetensors, Keras .h5")
    pull.set_defaults(func=cmd_pull)

    register_packages(actions)


def register_packages(actions: argparse._SubParsersAction) -> None:
    """`export` and `import`: model packages, built here and carried to a device without torch."""
    exporting = actions.add_parser("export", help="pack built models into one file for other machines "
                                   "(`edgecam models import FILE` there)")
    exporting.add_argument("names", metavar="NAME", nargs="+", help="named models, built-in or trained")
    exporting.add_argument("--backends", metavar="B,…", type=backend_list,
                           help="the files of these backends (default: every device backend that builds "
                           "here; torchscript only by name, its backend needs torch)")
    exporting.add_argument("-o", "--output", metavar="FILE.edgecam.zip", type=Path, required=True,
                           help="the package to write")
    exporting.set_defaults(func=cmd_export)

    importing = actions.add_parser("import", help="install a model package into the model cache "
                                   "(every hash checked first)")
    importing.add_argument("file", metavar="FILE", type=Path, help="a FILE.edgecam.zip from "
                           "`edgecam models export`")
    importing.set_defaults(func=cmd_import)


def backend_list(text: str) -> list[str]:
    """`--backends a,b`: backends with a file of their own to build (store.ARTIFACTS)."""
    from edgecam.models.store import ARTIFACTS

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ARTIFACTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown backend {', '.join(unknown) or repr(text)}: "
                                         f"choose from {', '.join(ARTIFACTS)}")
    return names


def weights_status(spec) -> str:
    """pretrained (checkpoint here or in an installed package), pull (published, not fetched), none."""
    from edgecam.models import store

    if store.weights_id(spec) is not None:
        return "pretrained"
    return "pull" if spec.weights else "none"


# how the pulled file was checked (edgecam.models.weights.install) → what `models info` says
CHECKS = {"published": "checked against the publisher's digest",
          "first download": "the publisher gives no digest: recorded at its first download, "
                            "every later pull must match it",
          "local file": "a local file, not checked against a published digest"}


def weights_source(spec) -> dict:
    """Where the weights of `spec` come from, in what format, how they were trained and checked."""
    from edgecam.models import store

    source = {"status": weights_status(spec), "format": store.weights_format(spec), "url": spec.weights,
              "mean": list(spec.mean), "std": list(spec.std), "padding": spec.padding}
    if spec.bn_eps is not None:
        source["bn_eps"] = spec.bn_eps
    installed = store.installed_weights(spec)
    if installed is not None:
        # records written before edgecam said how it checked: a URL's pull was checked, a file not
        how = installed.get("checked") or ("published" if store.downloadable(spec) and
                                           installed["source"] == spec.weights else "local file")
        source.update(stored=installed["path"], sha256=installed["sha256"], pulled_from=installed["source"],
                      checked=CHECKS.get(how, how))
    elif spec.weights_sha256:
        source["checked"] = f"checked against the publisher's digest ({spec.weights_sha256[:16]}…)"
    elif store.downloadable(spec):
        source["checked"] = ("the publisher gives no digest: the first download's is recorded and "
                             "checked on every later pull")
    return source


def _profiles(specs: list) -> dict[str, dict]:
    """Totals per model, counted once per network and input size and cached in the store."""
    from edgecam.models import store

    path = store.cache_dir() / "profiles.json"
    try:
        cache = json.loads(path.read_text())
        if cache.get("format") != PROFILE_FORMAT:
            cache = {}
    except (OSError, ValueError):
        cache = {}
    cache["format"] = PROFILE_FORMAT
    missing = [s for s in specs if s.net and f"{s.net}@{s.input}" not in cache]
    if missing:
        try:
            from edgecam.models import profiler
        except ImportError:
            log.warning("counting params and MACs needs torch: pip install 'edgecam[build]'")
        else:
            for spec in missing:
                summary = profiler.profile_network(spec.net, len(spec.labels), spec.input).summary()
                cache[f"{spec.net}@{spec.input}"] = {"params": summary["params"], "macs": summary["macs"]}
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(cache, indent=1) + "\n")
    return {s.name: cache.get(f"{s.net}@{s.input}", {}) for s in specs}


def auto_choices() -> dict[str, str]:
    """Model name → the backend `--backend auto` chose on this machine, with its thread count."""
    from edgecam.backends import auto

    chosen = {}
    here = "|" + auto.machine_suffix()
    for key, choice in auto.remembered().items():
        if not key.endswith(here):  # another machine's, or measured on older builds
            continue
        model, threads = key.split("|")[:2]
        chosen[model] = f"{choice['backend']} ({threads})"
    return chosen


def cmd_list(args: argparse.Namespace) -> int:
    from edgecam.models import store

    specs = list(store.manifest().values())
    profiles = _profiles(specs)
    chosen = auto_choices()
    rows = []
    for spec in specs:
        built = [kind for kind in store.ARTIFACTS if store.verified(spec, store.artifact_path(spec, kind))]
        cost = profiles[spec.name]
        rows.append({"name": spec.name, "net": spec.net, "input": spec.input,
                     "classes": len(spec.labels), "params": cost.get("params"), "macs": cost.get("macs"),
                     "weights": weights_status(spec), "built": built, "auto": chosen.get(spec.name)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<24} {'input':>5} {'params':>7} {'MACs':>7}  {'weights':<10} "
          f"{'built':<30} auto backend")
    for row in rows:
        params = f"{row['params'] / 1e6:.2f}M" if row["params"] else "-"
        macs = f"{row['macs'] / 1e6:.0f}M" if row["macs"] else "-"
        print(f"{row['name']:<24} {row['input']:>5} {params:>7} {macs:>7}  {row['weights']:<10} "
              f"{', '.join(row['built']) or '-':<30} {row['auto'] or '-'}")
    if any("ncnn" in row["built"] for row in rows):
        print("ncnn computes in fp16 where the CPU has it (ARMv8.2 and newer: Pi 5, Jetson Orin), "
              "in fp32 elsewhere (keeping some layers' weights in fp16)")
    print(f"cache: {store.cache_dir()}   weights: pretrained / pull (`edgecam models pull NAME`) / none")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from edgecam.base.errors import ModelError
    from edgecam.models import profiler, store

    spec = store.get(args.name)
    if spec.net is None:
        raise ModelError(f"model {spec.name} is a ready model file: only named models can be profiled")
    result = profiler.profile_network(spec.net, len(spec.labels), spec.input)
    source = weights_source(spec)
    summary = {"name": spec.name, "net": spec.net, "weights": source["status"], "weights_source": source,
               **result.summary()}
    if args.layers:
        summary["layers"] = [layer.row() for layer in result.layers]
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if args.layers:
        print(f"{'layer':<40} {'kind':<10} {'kernel':>6} {'in':>5} {'out':>5} {'output':>14} "
              f"{'params':>9} {'MACs':>12}")
        for layer in result.layers:
            shape = "x".join(map(str, layer.output))
            print(f"{layer.name:<40} {layer.kind:<10} {layer.kernel[0]}x{layer.kernel[1]:<4} "
                  f"{layer.c_in:>5} {layer.c_out:>5} {shape:>14} {layer.params:>9,} {layer.macs:>12,}")
        print()
    print(f"{spec.name} ({spec.net}, {spec.input}x{spec.input}, weights: {summary['weights']})")
    if source["url"]:
        print(f"  weights  {source['format']}: {source['url']}")
    if "sha256" in source:
        print(f"           stored {source['stored']} (sha256 {source['sha256'][:16]}…)")
    if "checked" in source:
        print(f"           {source['checked']}")
    trained = f"mean {'/'.join(f'{v:g}' for v in spec.mean)}, std {'/'.join(f'{v:g}' for v in spec.std)}"
    if spec.padding == "same":
        trained += ", TensorFlow's 'same' padding"
    if spec.bn_eps is not None:
        trained += f", batch norm ε {spec.bn_eps:g}"
    print(f"  trained with {trained}")
    print(f"  params {result.params / 1e6:.3f}M (conv and linear; {result.params_total / 1e6:.3f}M "
          f"with batch norm)   MACs {result.macs / 1e6:.1f}M")
    for kind, entry in result.by_kind().items():
        print(f"  {kind:<10} {entry['layers']:>3} layers  params {entry['params'] / 1e6:7.3f}M  "
              f"MACs {entry['macs'] / 1e6:7.1f}M ({entry['macs'] / result.macs:5.1%})")
    return 0


def cmd_compare_conv(args: argparse.Namespace) -> int:
    from edgecam.base.errors import UsageError
    from edgecam.models.profiler import separable_cost

    for flag in ("h", "w", "k", "cin", "cout"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be ≥ 1, got {getattr(args, flag)}")
    cost = separable_cost(args.h, args.w, args.k, args.cin, args.cout)
    if args.json:
        print(json.dumps(cost, indent=2))
        return 0
    print(f"{args.k}x{args.k} conv, {args.cin} → {args.cout} channels, on a {args.h}x{args.w} map")
    print(f"  standard            {cost['standard_macs']:>15,} MACs  {cost['standard_params']:>10,} params")
    print(f"  depthwise {args.k}x{args.k}       {cost['depthwise_macs']:>15,} MACs")
    print(f"  pointwise 1x1       {cost['pointwise_macs']:>15,} MACs")
    print(f"  depthwise separable {cost['separable_macs']:>15,} MACs  {cost['separable_params']:>10,} params")
    print(f"  ratio {cost['ratio']:.4f} = 1/N + 1/K² = 1/{args.cout} + 1/{args.k * args.k} "
          f"({1 / cost['ratio']:.1f}x fewer MACs)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from edgecam.base import child, extras
    from edgecam.base.errors import UsageError
    from edgecam.models import artifacts, store, weights

    spec = store.get(args.name)
    kinds = list(dict.fromkeys((args.backends or ["onnx"]) + (["torchscript"] if args.torchscript else [])
                               + (["onnx-int8"] if args.int8 else [])))
    if args.calib is not None and not any(k.endswith("-int8") for k in kinds):
        raise UsageError("--calib DIR gives the calibration images of an int8 build: add --int8 "
                         "or an int8 backend to --backends")
    if args.weights is not None:
        weights.pull(spec, args.weights)
    if store.weights_id(spec) is None:
        log.warning("%s; building it with untrained (random) weights", store.untrained_message(spec))
    for kind in kinds:
        path = store.artifact_path(spec, kind)
        recalibrate = kind.endswith("-int8") and args.calib is not None  # new frames, new int8 model
        if store.verified(spec, path) and not (args.force or recalibrate):
            print(f"{path} is built and verified (--force rebuilds it)")
            continue
        # Each kind but the last in a process of its own: what its tools took (torch, jax) is given
        # back before the next, so the peak is the largest step's, not their sum (a small board's
        # RAM); the last one's goes back when this command ends.
        step = (spec, kind, path, args.calib)
        with extras.needs_build(f"building the {kind} file of {spec.name}"):
            details = artifacts.build(*step) if kind == kinds[-1] else child.call(artifacts.build, *step)
        check = (f"top-1 agreement with fp32 {details['top1_agreement']:.1%} on {details['frames']} frames"
                 if kind.endswith("-int8") else f"max |Δlogit| vs torch {details['max_abs_diff']:.2e}")
        print(f"{path}: {check}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from edgecam.models import package, store, weights

    if package.is_source(args.name):
        return report_import(package.pull(args.name))
    spec = store.get(args.name)
    path = weights.pull(spec, args.weights)
    print(f"{path} (sha256 {store.installed_weights(spec)['sha256']})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from edgecam.models import package

    index = package.export(args.names, args.backends, args.output)
    for name, model in index["models"].items():
        print(f"{name}: {', '.join(model['artifacts'])}")
    size = args.output.stat().st_size / 1e6
    print(f"{args.output} ({size:.1f} MB): copy it to the device and run `edgecam models import "
          f"{args.output.name}` there")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from edgecam.models import package

    return report_import(package.import_file(args.file))


def report_import(imported) -> int:  # imported: edgecam.models.package.Imported
    from edgecam.models import store

    for name, kinds in imported.models.items():
        print(f"{name}: {', '.join(kinds)}")
    built = ", ".join(f"{tool} {version}" for tool, version in imported.built_by.items())
    print(f"imported into {store.cache_dir()} (built with {built})")
    return 0
