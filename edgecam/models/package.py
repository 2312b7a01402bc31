"""Model packages: one file that carries built models from the machine that built them (torch
there) to devices that only run them (no torch).

A package is a zip file, NAME.edgecam.zip. Zip rather than tar: its central directory lists every
member with its type and size up front, so names, symlinks and sizes are checked before a byte of
content is read (a tar must be read through to know what it holds, and carries links and devices
by design); the directory is at the end, so a truncated file is no zip at all; every member has a
CRC besides the sha256 the index records; any unzip tool lists it.

    edgecam-package.json      the index: what built it (edgecam, runtime and torch versions), per
                              model its manifest entry and its files, and each member's sha256 and size
    NAME/labels.txt           the model's class names
    NAME/FILE                 each built file, named as in the cache (NAME.onnx, NAME.ncnn.bin and
                              its NAME.ncnn.param, ...)
    NAME/NAME.pth             the checkpoint the files were built with, when it was pulled (or given
                              with --weights) rather than shipped with edgecam's dependencies

Importing checks the members against the index and every hash before anything is written, then
installs each file atomically. Where a file goes is decided here from the model's name and the
artifact's kind, never from a member's name. Built-in models must match this edgecam's manifest and
weights; user models (trained ones) are registered as `edgecam train` registers them."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import platform
import re
import shutil
import time
import urllib.parse
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import IO

from edgecam.base import atomic, child, extras, redact
from edgecam.base.errors import EdgecamError, ModelError, UsageError
from edgecam.models import artifacts, registry, store

log = logging.getLogger(__name__)

SUFFIX = ".edgecam.zip"
INDEX = "edgecam-package.json"
PACKAGE = "edgecam-models"  # the index's "package": what tells one of ours from any other zip
VERSION = 1  # of the layout above; an edgecam refuses packages of a version it does not know
MAX_INDEX_BYTES = 1 << 20
MAX_MEMBERS = 1000
CHUNK = 1 << 20
# Runtimes and tools whose versions a package records (those installed where it was built).
TOOLS = ("torch", "onnx", "onnxruntime", "ai-edge-litert", "ncnn", "litert-torch", "ai-edge-quantizer",
         "pnnx")
# Where export looks when no --backends are given: every kind but torchscript, whose backend needs
# torch on the device (ask for it by name).
DEFAULT_KINDS = tuple(kind for kind in store.ARTIFACTS if kind != "torchscript")
# A member name: one folder (the model's name) and one file, or the index.
MEMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class PackageError(ModelError):
    """A model package that is damaged, foreign or does not fit this edgecam (nothing was written)."""


def is_source(text: str) -> bool:
    """Whether `edgecam models pull TEXT` means a package: a URL, or a package file's path."""
    return text.startswith(("https://", "http://")) or (text.endswith(SUFFIX) and Path(text).is_file())


# --- export -------------------------------------------------------------------------------------


def built_by() -> dict[str, str]:
    """edgecam, Python, the machine, and the versions of the installed runtimes and build tools."""
    from edgecam import __version__

    versions = {"edgecam": __version__, "python": platform.python_version(),
                "machine": platform.machine()}
    for tool in TOOLS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[tool] = metadata.version(tool)
    return versions


@dataclass
class _Contents:
    """What export packs: member name → source file, and the index's model records."""

    files: dict[str, Path] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)

    def add(self, model: str, source: Path, name: str | None = None) -> str:
        member = f"{model}/{name or source.name}"
        self.files[member] = source
        return member


def _companions(kind: str, path: Path) -> list[Path]:
    """The files beside artifact `path` that belong to it (ncnn's .param)."""
    return [store.ncnn_param(path)] if kind == "ncnn" else []


def _built(spec: store.ModelSpec, kind: str, default: bool) -> Path | None:
    """The verified artifact of `kind`, built first when needed. For the default kinds, one that
    cannot be built here (tools missing, int8 refused) is left out with a warning; None then."""
    path = store.artifact_path(spec, kind)
    if store.verified(spec, path):
        return path
    try:
        with extras.needs_build(f"building the {kind} file of {spec.name}"):
            child.call(artifacts.build, spec, kind, path)  # its memory given back before the next
    except EdgecamError as e:
        if not default:
            raise
        log.warning("%s: no %s file in the package (%s)", spec.name, kind, e)
        return None
    return path


def _pack_builtin(contents: _Contents, spec: store.ModelSpec, kinds: list[str], default: bool) -> None:
    if store.weights_id(spec) is None:
        raise ModelError(f"{store.untrained_message(spec)}: a package of random weights classifies nothing")
    record = {"builtin": {"net": spec.net, "input": spec.input, "mean": list(spec.mean),
                          "std": list(spec.std), "weights": spec.weights,
                          "weights_sha256": store.weights_id(spec)},
              "labels": contents.add(spec.name, spec.labels_file, "labels.txt"), "artifacts": {}}
    installed = store.installed_weights(spec)
    if installed is not None:  # pulled or given: the device gets it too, so its builds stay verified
        checkpoint = Path(installed.pop("path"))
        record["checkpoint"] = {"file": contents.add(spec.name, checkpoint), "record": installed}
    for kind in kinds:
        path = _built(spec, kind, default)
        if path is None:
            continue
        record["artifacts"][kind] = {
            "file": contents.add(spec.name, path),
            "companions": [contents.add(spec.name, p) for p in _companions(kind, path)],
            "meta": atomic.read_json(atomic.sidecar(path))}
    if not record["artifacts"]:
        raise ModelError(f"no file of {spec.name} could be built here for {', '.join(kinds)}: "
                         "see the warnings above")
    contents.models[spec.name] = record


def _pack_user(contents: _Contents, spec: store.ModelSpec, entry: dict) -> None:
    assert spec.path is not None
    if not spec.path.is_file():
        raise ModelError(f"the file {spec.path} of user model {spec.name} is missing: train it again")
    own = {key: value for key, value in entry.items() if key not in ("path", "labels")}
    contents.models[spec.name] = {
        "user": own, "labels": contents.add(spec.name, spec.labels_file, "labels.txt"),
        "artifacts": {"onnx": {"file": contents.add(spec.name, spec.path), "companions": [],
                               "meta": atomic.read_json(atomic.sidecar(spec.path))}}}


def export(names: list[str], kinds: list[str] | None, out: Path) -> dict:
    """Write the package of models `names` (their files of `kinds`; default: DEFAULT_KINDS that
    build here) to `out`, atomically; returns its index."""
    if not out.name.endswith(SUFFIX):
        raise UsageError(f"-o {out}: a model package's name ends in {SUFFIX} (pull and import "
                         "know it by that)")
    user = registry.entries()
    contents = _Contents()
    for name in dict.fromkeys(names):
        spec = store.get(name)
        if spec.net is not None:
            _pack_builtin(contents, spec, list(kinds or DEFAULT_KINDS), kinds is None)
        elif name in user:
            _pack_user(contents, spec, user[name])
        else:
            raise UsageError(f"{name} is a model file, not a named model: `edgecam models export` packs "
                             "the models of `edgecam models list`")
    index = {"package": PACKAGE, "version": VERSION, "built_by": built_by(),
             "models": contents.models, "files": {}}
    try:
        with atomic.replaced(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for member, source in contents.files.items():
                index["files"][member] = _write_member(archive, member, source)
            archive.writestr(INDEX, json.dumps(index, indent=1) + "\n")
    except atomic.Unwritable as e:
        raise ModelError(f"cannot write {out} ({e.strerror}): choose a writable -o path") from None
    return index


def _write_member(archive: zipfile.ZipFile, member: str, source: Path) -> dict:
    digest, size = hashlib.sha256(), 0
    info = zipfile.ZipInfo(member, time.localtime(source.stat().st_mtime)[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    with source.open("rb") as f, archive.open(info, "w", force_zip64=True) as out:
        while block := f.read(CHUNK):
            digest.update(block)
            size += len(block)
            out.write(block)
    return {"sha256": digest.hexdigest(), "size": size}


# --- import -------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What an import writes: member → target file, then the sidecars, then the user models."""

    files: dict[str, Path] = field(default_factory=dict)
    sidecars: dict[Path, dict] = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)
    summary: dict[str, list[str]] = field(default_factory=dict)


class _Reader:
    """An opened package whose members and index have been checked against each other."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.archive = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise UsageError(f"model package {path} does not exist: check the path") from None
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise self.refuse(f"is not a model package, or is truncated ({e})") from None
        self.infos = {info.filename: info for info in self.archive.infolist()}
        try:
            self._check_members()
            self.index = self._read_index()
            self._match_index()
        except PackageError:
            self.archive.close()
            raise

    def refuse(self, why: str) -> PackageError:
        return PackageError(f"model package {self.path} {why}: nothing was imported; "
                            "export it again or copy it again")

    def _check_members(self) -> None:
        if len(self.infos) > MAX_MEMBERS:
            raise self.refuse(f"has {len(self.infos)} members (a package of every model has fewer than "
                              f"{MAX_MEMBERS})")
        if len(self.infos) != len(self.archive.infolist()):
            raise self.refuse("holds a member twice")
        for name, info in self.infos.items():
            parts = PurePosixPath(name).parts
            if name.startswith("/") or "\\" in name or ".." in parts or re.match(r"^[A-Za-z]:", name):
                raise self.refuse(f"has a member that escapes its folder ({name!r})")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise self.refuse(f"has a symlink member ({name!r})")
            if name != INDEX and not MEMBER.match(name):
                raise self.refuse(f"has a member that is not a model file ({name!r})")

    def _read_index(self) -> dict:
        info = self.infos.get(INDEX)
        if info is None:
            raise self.refuse(f"has no {INDEX}: it was not written by `edgecam models export`")
        if info.file_size > MAX_INDEX_BYTES:
            raise self.refuse(f"has a {INDEX} of {info.file_size} bytes")
        try:
            index = json.loads(self._read(INDEX, info.file_size))
        except ValueError as e:
            raise self.refuse(f"has an unreadable {INDEX} ({e})") from None
        if not isinstance(index, dict) or index.get("package") != PACKAGE:
            raise self.refuse(f"is not an edgecam model package (its {INDEX} says otherwise)")
        if index.get("version") != VERSION:
            raise self.refuse(f"has layout version {index.get('version')!r}, this edgecam reads "
                              f"{VERSION}: import it with the edgecam that exported it, or export it again")
        return index

    def _match_index(self) -> None:
        listed = self.index.get("files")
        if not isinstance(listed, dict):
            raise self.refuse(f"has a {INDEX} without its file list")
        present = set(self.infos) - {INDEX}
        added, gone = sorted(present - set(listed)), sorted(set(listed) - present)
        if added:
            raise self.refuse(f"has a member its index does not list ({added[0]!r}: renamed or added)")
        if gone:
            raise self.refuse(f"lacks the member {gone[0]!r} its index lists (renamed or removed)")
        for name, entry in listed.items():
            if not isinstance(entry, dict) or self.infos[name].file_size != entry.get("size"):
                raise self.refuse(f"has a member of another size than its index says ({name!r})")

    def _read(self, member: str, limit: int) -> bytes:
        with self.open(member) as f:
            return f.read(limit)

    @contextlib.contextmanager
    def open(self, member: str):  # -> Iterator[IO[bytes]]
        """The member's content; a damaged one (bad CRC, bad compressed data) is refused."""
        try:
            with self.archive.open(member) as f:
                yield f
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as e:
            raise self.refuse(f"is damaged: its member {member!r} cannot be read ({e})") from None

    def copy(self, member: str, out: IO[bytes] | None = None) -> None:
        """Stream `member` (into `out`) and refuse it unless its sha256 is the index's."""
        digest = hashlib.sha256()
        with self.open(member) as f:
            while block := f.read(CHUNK):
                digest.update(block)
                if out is not None:
                    out.write(block)
        if digest.hexdigest() != self.index["files"][member].get("sha256"):
            raise self.refuse(f"is damaged or was altered: its member {member!r} does not match "
                              "the sha256 its index records")

    def verify(self) -> None:
        """Every member's sha256, read through without writing anything."""
        for member in self.index["files"]:
            self.copy(member)


def _check_builtin(pkg: _Reader, name: str, record: dict, plan: _Plan) -> None:
    spec = store.manifest().get(name)
    if spec is None or spec.net is None:
        raise pkg.refuse(f"holds {name}, which is not a built-in model of this edgecam "
                         f"({'a user model of yours has that name' if spec else 'unknown here'})")
    theirs, ours = record["builtin"], {"net": spec.net, "input": spec.input, "mean": list(spec.mean),
                                       "std": list(spec.std)}
    for key, value in ours.items():
        if theirs.get(key) != value:
            raise pkg.refuse(f"holds {name} with {key} {theirs.get(key)!r} where this edgecam has "
                             f"{value!r}: export it with this edgecam's version")
    if pkg.index["files"][record["labels"]]["sha256"] != store.sha256(spec.labels_file):
        raise pkg.refuse(f"holds {name} with other class names than this edgecam's")
    weights = _checkpoint(pkg, spec, record, plan) if "checkpoint" in record else store.weights_id(spec)
    for kind, artifact in record["artifacts"].items():
        if kind not in store.ARTIFACTS:
            raise pkg.refuse(f"holds a {kind!r} file of {name}, a kind this edgecam does not know")
        meta, path = artifact["meta"], store.artifact_path(spec, kind)
        companions = _companions(kind, path)
        if len(artifact["companions"]) != len(companions):
            raise pkg.refuse(f"holds a {kind} file of {name} without its companion files")
        digests = pkg.index["files"]
        recorded = {"model": name, "kind": kind, "sha256": digests[artifact["file"]]["sha256"],
                    "companions": {p.name: digests[m]["sha256"]
                                   for p, m in zip(companions, artifact["companions"], strict=True)}}
        if {key: meta.get(key, {} if key == "companions" else None) for key in recorded} != recorded:
            raise pkg.refuse(f"holds a {kind} file of {name} whose record does not match it")
        if meta.get("format") != store.FORMAT:
            raise pkg.refuse(f"holds a {kind} file of {name} in model format {meta.get('format')}, "
                             f"this edgecam runs format {store.FORMAT}: export it with this version")
        if meta.get("weights_sha256") != weights:
            raise pkg.refuse(f"holds a {kind} file of {name} built with the checkpoint sha256 "
                             f"{str(meta.get('weights_sha256'))[:16]}…, not with "
                             f"{str(weights)[:16] + '…' if weights else 'none'}, the one "
                             f"{'it carries' if 'checkpoint' in record else 'this edgecam ships'}")
        plan.files[artifact["file"]] = path
        plan.files.update(zip(artifact["companions"], companions, strict=True))
        plan.sidecars[atomic.sidecar(path)] = meta
    plan.summary[name] = list(record["artifacts"])


def _checkpoint(pkg: _Reader, spec: store.ModelSpec, record: dict, plan: _Plan) -> str:
    """Plan the install of the pulled checkpoint a built-in model's files were built with (the
    device keeps it as `edgecam models pull` would, so they stay verified); its sha256."""
    checkpoint = record["checkpoint"]
    digest = pkg.index["files"][checkpoint["file"]]["sha256"]
    if checkpoint["record"].get("sha256") != digest:
        raise pkg.refuse(f"holds a checkpoint of {spec.name} whose record does not match it")
    path = store.weights_dir() / f"{spec.name}.pth"
    plan.files[checkpoint["file"]] = path
    plan.sidecars[atomic.sidecar(path)] = checkpoint["record"]
    return digest


def _check_user(pkg: _Reader, name: str, record: dict, plan: _Plan) -> None:
    if not registry.NAME.match(name) or name.endswith(".onnx"):
        raise pkg.refuse(f"holds a model named {name!r}, which cannot be a model name here")
    if name in store.manifest() and name not in store.user_models():
        raise pkg.refuse(f"holds a user model named {name}, as a built-in model of this edgecam is")
    root = store.cache_dir()
    file, labels = root / f"{name}.onnx", root / f"{name}.labels.txt"
    builtin_files = {store.artifact_path(s, kind).name for s in store.manifest().values() if s.net
                     for kind in store.ARTIFACTS}
    if file.name in builtin_files:
        raise pkg.refuse(f"holds a user model named {name}, whose file would replace a built-in model's")
    (kind, artifact), = record["artifacts"].items()
    if kind != "onnx" or artifact["companions"]:
        raise pkg.refuse(f"holds user model {name} with a {kind} file: user models are ONNX files")
    plan.files[artifact["file"]] = file
    plan.files[record["labels"]] = labels
    if artifact["meta"] is not None:
        plan.sidecars[atomic.sidecar(file)] = {**artifact["meta"],
                                               "sha256": pkg.index["files"][artifact["file"]]["sha256"]}
    plan.users[name] = {**_user_entry(pkg, name, record["user"]), "path": file.name, "labels": labels.name}
    plan.summary[name] = ["onnx (user model)"]


KEY = re.compile(r"^[A-Za-z0-9_-]+$")  # a bare TOML key


def _user_entry(pkg: _Reader, name: str, entry: dict) -> dict:
    """A user model's registered fields, as the user models file can hold them: bare keys, plain
    values (nothing in a package can write TOML of its own), and an input size."""
    plain = (str, int, float, bool)
    for key, value in entry.items():
        if not KEY.match(key) or not (isinstance(value, plain) or (
                isinstance(value, list) and all(isinstance(v, plain) for v in value))):
            raise pkg.refuse(f"holds user model {name} with a field this edgecam cannot register ({key!r})")
    size = entry.get("input")
    if not isinstance(size, int) or isinstance(size, bool) or not 16 <= size <= 4096:
        raise pkg.refuse(f"holds user model {name} without a valid input size")
    return entry


def _plan(pkg: _Reader) -> _Plan:
    plan = _Plan()
    try:
        models = pkg.index["models"]
        if not models:
            raise pkg.refuse("holds no model")
        for name, record in models.items():
            if set(record) - {"builtin", "user", "labels", "artifacts", "checkpoint"}:
                raise pkg.refuse(f"has an index entry of {name} with keys this edgecam does not know")
            (_check_builtin if "builtin" in record else _check_user)(pkg, name, record, plan)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise pkg.refuse(f"has a malformed {INDEX} ({type(e).__name__}: {e})") from None
    unused = set(pkg.index["files"]) - set(plan.files) - {m["labels"] for m in models.values()}
    if unused:
        raise pkg.refuse(f"has members that belong to no model ({', '.join(sorted(unused))})")
    return plan


def _room_for(pkg: _Reader, plan: _Plan) -> None:
    """Refuse a package whose files do not fit on the cache's disk (before any is written)."""
    folder = next((p for p in (store.cache_dir(), *store.cache_dir().parents) if p.exists()), Path("/"))
    need = sum(pkg.index["files"][member]["size"] for member in plan.files)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise ModelError(f"model package {pkg.path} needs {need / 1e6:.0f} MB in {store.cache_dir()}, "
                         f"which has {free / 1e6:.0f} MB free: nothing was imported; free some space")


def _install(pkg: _Reader, plan: _Plan) -> None:
    """Every file into a temporary beside its target (re-checked while copied), then all of them
    into place, then their sidecars (which make them verified), then the user models."""
    _room_for(pkg, plan)
    try:
        with contextlib.ExitStack() as temporaries:
            for member, target in plan.files.items():
                tmp = temporaries.enter_context(atomic.replaced(target))
                with tmp.open("wb") as out:
                    pkg.copy(member, out)
        for sidecar, meta in plan.sidecars.items():
            atomic.write_json(sidecar, meta)
    except atomic.Unwritable as e:
        raise ModelError(f"cannot write into the model cache {store.cache_dir()} ({e.strerror}): make it "
                         "writable, or set EDGECAM_CACHE to a writable folder") from None
    for name, entry in plan.users.items():
        registry.register(name, entry)


def check(path: Path) -> None:
    """Refuse (one line) a package that `import_file` would refuse for its members or hashes."""
    pkg = _Reader(path)
    with pkg.archive:
        pkg.verify()


@dataclass(frozen=True)
class Imported:
    models: dict[str, list[str]]  # model name → the kinds of file the package brought
    built_by: dict[str, str]


def import_file(path: Path) -> Imported:
    """Import the package `path` into the cache."""
    pkg = _Reader(path)
    with pkg.archive:
        plan = _plan(pkg)
        pkg.verify()
        _install(pkg, plan)
    built = pkg.index.get("built_by")
    return Imported(plan.summary, {str(k): str(v) for k, v in built.items()}
                    if isinstance(built, dict) else {})


def pull(source: str) -> Imported:
    """Import a package from a path or an http(s) URL (resumable; `URL#sha256=HEX` also checks the
    whole file). A downloaded package is deleted once imported, or refused."""
    if not source.startswith(("https://", "http://")):
        return import_file(Path(source))
    from edgecam.models import weights

    url, _, fragment = source.partition("#")
    if urllib.parse.urlsplit(url).username is not None:
        raise UsageError(f"{redact.masked(url)}: a user or password in a package URL is not supported; "
                         "serve packages without one, or download the file and import it")
    expected = fragment.removeprefix("sha256=").lower() or None
    if fragment and not (fragment.startswith("sha256=") and re.fullmatch(r"[0-9a-f]{64}", expected or "")):
        raise UsageError(f"{redact.masked(url)}#{fragment}: the only URL fragment a package pull takes "
                         "is #sha256= and the file's 64 hex digits")
    name = PurePosixPath(url.split("?")[0]).name
    if not name.endswith(SUFFIX) or not MEMBER.match(f"x/{name}"):
        raise UsageError(f"{redact.masked(url)}: a model package's URL names a file ending in {SUFFIX}")
    dest = store.cache_dir() / "packages" / name
    try:
        weights.download(url, dest, expected, f"pulling {name}",
                         elsewhere="download the package elsewhere and pull its path")
        return import_file(dest)
    finally:  # an interrupted download keeps its .part (and the folder) to resume from
        dest.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            dest.parent.rmdir()
