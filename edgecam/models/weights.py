"""Trained checkpoints: download the published file (resumable, sha256-verified, with a progress
bar) or take a local one, in its publisher's format (torchvision .pth, timm .safetensors, Keras
.h5: edgecam.models.convert), and store it in the model store as `weights/NAME.pth` with a `.json`
record of its sha256 and source. Builds then use it, and artifacts built without it are stale.

Where the publisher gives no digest (Keras, the Hugging Face hub), the digest of the first
download is recorded and every later pull of that URL must match it.

A checkpoint is untrusted input: it is only ever opened with `torch.load(weights_only=True)` or by
edgecam.models.convert's checked readers, and it is stored only after it loads into the network
with every key matched."""
from __future__ import annotations

import http.client
import logging
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from edgecam.base import atomic
from edgecam.base.errors import EdgecamError, ModelError
from edgecam.base.progress import Progress
from edgecam.models import store

log = logging.getLogger(__name__)

CHUNK = 1 << 16
TIMEOUT = 30.0  # seconds without a byte before a download gives up (it resumes on the next pull)


def matches(digest: str, expected: str) -> bool:
    """A full sha256, or the leading hex digits that torchvision puts in its file names."""
    return digest == expected if len(expected) == 64 else digest.startswith(expected.lower())


def download(url: str, dest: Path, expected_sha256: str | None, title: str,
             expected_from: str = "the published one",
             elsewhere: str = "download it elsewhere and pass --weights FILE") -> str:
    """Fetch `url` into `dest`, resuming a `.part` file left by an interrupted download (HTTP Range);
    returns the sha256 after checking it against `expected_sha256` (whose origin `expected_from`
    names). Writes `dest` only when it matches. `elsewhere`: what to do instead, in error lines."""
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    host = urllib.parse.urlsplit(url).netloc
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part is already complete
            return _finish(part, dest, expected_sha256, url, expected_from)
        raise EdgecamError(f"download of {url} failed: HTTP {e.code} {e.reason}; check the URL "
                           f"or {elsewhere}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise EdgecamError(f"cannot reach {host} to download {url} ({reason}): check the network, "
                           f"or {elsewhere}") from None
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server ignored the Range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        progress = Progress(title, (total or 1) / 1e6, unit="MB")
        progress.advance(have / 1e6)
        try:
            with part.open("ab" if resumed else "wb") as f:
                while block := response.read(CHUNK):
                    f.write(block)
                    progress.advance(len(block) / 1e6)
        except (http.client.IncompleteRead, OSError) as e:
            got = part.stat().st_size
            raise EdgecamError(f"download of {url} stopped at {got} of {total or '?'} bytes "
                               f"({type(e).__name__}): run the pull again to resume it") from None
        got = part.stat().st_size
        if total is not None and got < total:
            raise EdgecamError(f"download of {url} stopped at {got} of {total} bytes: run the pull "
                               "again to resume it")
        progress.finish(f"{got / 1e6:.1f} MB")
    return _finish(part, dest, expected_sha256, url, expected_from)


def _finish(part: Path, dest: Path, expected_sha256: str | None, url: str, expected_from: str) -> str:
    digest = store.sha256(part)
    if expected_sha256 and not matches(digest, expected_sha256):
        part.unlink()
        raise EdgecamError(f"download of {url} has sha256 {digest[:16]}…, expected {expected_sha256}: "
                           f"the file is not {expected_from}; deleted it, try again")
    os.replace(part, dest)
    return digest


def install(spec: store.ModelSpec, checkpoint: Path, source: str, digest: str,
            checked: str = "local file") -> Path:
    """Check that `checkpoint` fits the network of `spec` and store it as the model's weights: a
    torch checkpoint as it is, another format converted to a torch state dict. `digest` is the
    sha256 of `checkpoint`, `checked` how it was checked ("published": against the publisher's
    digest, "first download": against that of the first download, "local file": not at all)."""
    import torch

    from edgecam.models import build, convert  # torch: to convert and prove the checkpoint loads

    net = build.untrained(spec)
    state = convert.state_dict(checkpoint, net, f"network {spec.net}")
    if state is None:
        build.load_weights(net, checkpoint, spec)
    dest = store.weights_dir() / f"{spec.name}.pth"
    with atomic.replaced(dest) as tmp:
        if state is None:
            shutil.copyfile(checkpoint, tmp)
        else:
            torch.save(state, tmp)
            build.load_weights(net, tmp, spec)  # the stored file loads as every build will load it
        stored = digest if state is None else store.sha256(tmp)
    atomic.write_json(atomic.sidecar(dest), {"sha256": stored, "source": source, "source_sha256": digest,
                                             "checked": checked})
    return dest


# URL → sha256 of its first download, for the publishers that give no digest (trust on first use)
FIRST_DOWNLOADS = "first_downloads.json"


def _expected(spec: store.ModelSpec) -> tuple[str | None, str, str]:
    """The digest a download of `spec`'s weights must have, what it is, and how the pull records
    it: the published one, else the one recorded at the first download of its URL (if any)."""
    if spec.weights_sha256:
        return spec.weights_sha256, "the published one", "published"
    first = atomic.read_json(store.weights_dir() / FIRST_DOWNLOADS) or {}
    return first.get(spec.weights), "the one first downloaded from there", "first download"


def _remember(url: str, digest: str) -> None:
    """Record `digest` as that of the first download of `url`, unless one is recorded already."""
    path = store.weights_dir() / FIRST_DOWNLOADS
    first = atomic.read_json(path) or {}
    if url not in first:
        atomic.write_json(path, {**first, url: digest})


def pull(spec: store.ModelSpec, local: Path | None = None) -> Path:
    """Store the trained weights of `spec`: its published checkpoint, or the local file `local`."""
    if spec.net is None:
        raise ModelError(f"model {spec.name} is a ready model file: it has no checkpoint to pull")
    if local is not None:
        if not local.is_file():
            raise ModelError(f"weights file {local} does not exist: check the --weights path")
        digest = store.sha256(local)
        published = bool(spec.weights_sha256) and matches(digest, spec.weights_sha256)
        if spec.weights_sha256 and not published:
            log.warning("%s is not the published checkpoint of %s (sha256 %s…): using it as your own",
                        local, spec.name, digest[:12])
        return install(spec, local, str(local.resolve()), digest, "published" if published else "local file")
    if not store.downloadable(spec):
        raise ModelError(store.untrained_message(spec) if spec.weights is None else
                         f"the weights of {spec.name} ship in the PyPI package {spec.pip}: "
                         f"pip install {spec.pip}")
    downloaded = store.weights_dir() / f"{spec.name}.download"
    expected, origin, checked = _expected(spec)
    digest = download(spec.weights, downloaded, expected, f"pulling {spec.name}", origin)
    try:
        path = install(spec, downloaded, spec.weights, digest, checked)
    finally:
        downloaded.unlink(missing_ok=True)
    if not spec.weights_sha256:
        _remember(spec.weights, digest)
    return path
