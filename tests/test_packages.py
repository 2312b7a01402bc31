"""Model packages: `edgecam models export` on the machine that builds, `edgecam models import` (or
`pull` of a path or URL) where the model only runs. The imported files classify the photos as the
host's own do; a damaged, truncated, renamed, foreign or escaping package is refused with one line and
leaves the cache byte for byte as it was."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import MODEL, ROOT, edgecam, read_jsonl
from test_weights import Server

from edgecam.base import child
from edgecam.base.errors import EdgecamError, UsageError
from edgecam.models import package, store

pytestmark = pytest.mark.slow

USER_MODEL = "cats"


def tree(root: Path) -> dict[str, str]:
    """Every path below `root` with the sha256 of its content: the cache, to compare."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
            for p in sorted(root.rglob("*"))}


def top1(cache: Path, images: list[Path], *args: str) -> list[tuple[str, str]]:
    result = edgecam("classify", "--json", *args, *map(str, images), env={"EDGECAM_CACHE": str(cache)},
                     check=True)
    return [(Path(r["image"]).name, r["top"][0]["label"]) for r in json.loads(result.stdout)]


@pytest.fixture(scope="module")
def host(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A builder's cache: the session's Lite0 files (onnx, onnx-int8) and a user model, `cats` (a
    copy of the int8 file registered as `edgecam train` registers one)."""
    edgecam("models", "build", MODEL, "--int8", check=True)
    cache = tmp_path_factory.mktemp("host-cache")
    for name in (f"{MODEL}.onnx", f"{MODEL}.int8.onnx"):
        shutil.copy(model_cache / name, cache / name)
        shutil.copy(model_cache / f"{name}.json", cache / f"{name}.json")
    shutil.copy(model_cache / f"{MODEL}.int8.onnx", cache / f"{USER_MODEL}.onnx")
    shutil.copy(store.manifest()[MODEL].labels_file, cache / f"{USER_MODEL}.labels.txt")
    (cache / store.USER_MODELS).write_text(
        f'["{USER_MODEL}"]\npath = "{USER_MODEL}.onnx"\nlabels = "{USER_MODEL}.labels.txt"\n'
        f'input = 224\nbase = "{MODEL}"\nclasses = 1000\nval_accuracy = 0.9\n')
    return cache


@pytest.fixture(scope="module")
def exported(host: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package") / "lite0.edgecam.zip"
    result = edgecam("models", "export", MODEL, USER_MODEL, "--backends", "onnx,onnx-int8", "-o", str(out),
                     env={"EDGECAM_CACHE": str(host)}, check=True)
    assert f"{MODEL}: onnx, onnx-int8" in result.stdout
    return out


def test_a_package_lists_every_member_with_its_hash_and_what_built_it(exported: Path) -> None:
    with zipfile.ZipFile(exported) as archive:
        index = json.loads(archive.read(package.INDEX))
        names = set(archive.namelist())
        for member, entry in index["files"].items():
            assert hashlib.sha256(archive.read(member)).hexdigest() == entry["sha256"], member
    assert names == {package.INDEX, *index["files"]}
    assert {f"{MODEL}/{MODEL}.onnx", f"{MODEL}/{MODEL}.int8.onnx", f"{MODEL}/labels.txt",
            f"{USER_MODEL}/{USER_MODEL}.onnx", f"{USER_MODEL}/labels.txt"} == set(index["files"])
    builtin = index["models"][MODEL]
    assert builtin["builtin"]["input"] == 224 and builtin["builtin"]["mean"] == [127.0] * 3
    assert builtin["builtin"]["weights"].startswith("package:")
    assert {"edgecam", "python", "machine", "torch", "onnxruntime"} <= set(index["built_by"])
    assert index["models"][USER_MODEL]["user"]["base"] == MODEL


@pytest.fixture(scope="module")
def images(photo_files: dict[str, Path]) -> list[Path]:
    return [photo_files["chelsea"], photo_files["coffee"]]


@pytest.fixture(scope="module")
def host_top1(host: Path, images: list[Path]) -> dict[str, list[tuple[str, str]]]:
    """The builder's own top-1 for the photos, by backend (and for the user model)."""
    found = {backend: top1(host, images, "--backend", backend) for backend in ("onnx", "onnx-int8")}
    return {**found, USER_MODEL: top1(host, images, "--model", USER_MODEL)}


def test_an_imported_package_classifies_as_the_host_does(exported: Path, tmp_path: Path, images: list[Path],
                                                          host_top1: dict) -> None:
    device = tmp_path / "device"
    result = edgecam("models", "import", str(exported), env={"EDGECAM_CACHE": str(device)}, check=True)
    assert "torch 2." in result.stdout.splitlines()[-1]
    for backend in ("onnx", "onnx-int8"):
        assert top1(device, images, "--backend", backend) == host_top1[backend]
    assert top1(device, images, "--model", USER_MODEL) == host_top1[USER_MODEL]
    listed = json.loads(edgecam("models", "list", "--json", env={"EDGECAM_CACHE": str(device)},
                                check=True).stdout)
    assert {r["name"]: r["built"] for r in listed}[MODEL] == ["onnx", "onnx-int8"]


def test_pull_takes_a_package_by_path_and_by_url_checking_its_sha256(exported: Path, tmp_path: Path) -> None:
    payload = exported.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    by_path = tmp_path / "by-path"
    edgecam("models", "pull", str(exported), env={"EDGECAM_CACHE": str(by_path)}, check=True)
    with Server(payload) as server:
        url = server.url.rsplit("/", 1)[0] + "/lite0.edgecam.zip"
        device = tmp_path / "device"
        device.mkdir()
        before = tree(device)
        wrong = edgecam("models", "pull", f"{url}#sha256={'0' * 64}", env={"EDGECAM_CACHE": str(device)})
        errors = [line for line in wrong.stderr.splitlines() if line.startswith("edgecam: error:")]
        assert wrong.returncode == 1 and len(errors) == 1 and "sha256" in errors[0], wrong.stderr
        assert tree(device) == before
        edgecam("models", "pull", f"{url}#sha256={digest}", env={"EDGECAM_CACHE": str(device)}, check=True)
    assert tree(device) == tree(by_path)  # the download is gone once imported
    assert f"{MODEL}.int8.onnx" in tree(device)


def test_a_model_with_pulled_weights_brings_its_checkpoint(tmp_path: Path) -> None:
    """A torchvision model's weights are pulled, not shipped with edgecam: its package carries the
    checkpoint, which the device keeps as a pull would, so the files it came with stay verified."""
    import torch

    from edgecam.models import build

    name = "mobilenet_v3_small"
    weights = tmp_path / "generated.pth"
    torch.save(build.untrained(store.get(name)).state_dict(), weights)
    builder, device, out = tmp_path / "builder", tmp_path / "device", tmp_path / "v3.edgecam.zip"
    env = {"EDGECAM_CACHE": str(builder)}
    edgecam("models", "build", name, "--weights", str(weights), check=True, env=env)
    edgecam("models", "export", name, "--backends", "onnx", "-o", str(out), check=True, env=env)
    with zipfile.ZipFile(out) as archive:
        assert f"{name}/{name}.pth" in archive.namelist()
    edgecam("models", "import", str(out), check=True, env={"EDGECAM_CACHE": str(device)})
    listed = json.loads(edgecam("models", "list", "--json", check=True,
                                env={"EDGECAM_CACHE": str(device)}).stdout)
    row = {r["name"]: r for r in listed}[name]
    assert row["built"] == ["onnx"] and row["weights"] == "pretrained"
    stored = Path("weights") / f"{name}.pth"
    assert (device / stored).read_bytes() == (builder / stored).read_bytes()


# --- refusals: each a package made bad in one way --------------------------------------------------

def rewritten(good: Path, out: Path, change: Callable[[str], str | None] = lambda name: name,
              extra: list[tuple[zipfile.ZipInfo, bytes]] = ()) -> Path:
    """`good` with its members renamed by `change` (None drops one) and `extra` members added."""
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            name = change(info.filename)
            if name is not None:
                target.writestr(name, source.read(info))
        for info, data in extra:
            target.writestr(info, data)
    return out


def flipped(good: Path, out: Path) -> Path:
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x01  # in the middle of the fp32 file's compressed data
    out.write_bytes(bytes(data))
    return out


def truncated(good: Path, out: Path) -> Path:
    out.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    return out


def renamed(good: Path, out: Path) -> Path:
    return rewritten(good, out, lambda n: n.replace(f"{MODEL}.int8.onnx", f"{MODEL}.fast.onnx"))


def member(name: str, data: bytes = b"x", mode: int | None = None) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    if mode is not None:
        info.external_attr = mode << 16
    return info, data


def escaping(good: Path, out: Path) -> Path:
    return rewritten(good, out, extra=[member("../x")])


def absolute(good: Path, out: Path) -> Path:
    return rewritten(good, out, extra=[member(f"/tmp/{out.parent.name}-absolute")])


def symlink(good: Path, out: Path) -> Path:
    return rewritten(good, out, extra=[member(f"{MODEL}/link", b"/etc/passwd", stat.S_IFLNK | 0o777)])


def added(good: Path, out: Path) -> Path:
    return rewritten(good, out, extra=[member(f"{MODEL}/extra.onnx")])


def tampered(good: Path, out: Path) -> Path:
    """One byte of the int8 file changed and the zip written anew: its CRCs are right, only the
    sha256 in the index tells."""
    int8 = f"{MODEL}/{MODEL}.int8.onnx"
    with zipfile.ZipFile(good) as source:
        data = bytearray(source.read(int8))
    data[len(data) // 2] ^= 0x01
    return rewritten(good, out, lambda n: None if n == int8 else n, extra=[member(int8, bytes(data))])


def tar(good: Path, out: Path) -> Path:
    """The same members as a tar, with one escaping the folder."""
    with zipfile.ZipFile(good) as source, tarfile.open(out, "w") as target:
        for name in [*source.namelist(), "../x"]:
            data = source.read(name) if name != "../x" else b"x"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            target.addfile(info, io.BytesIO(data))
    return out


def foreign(good: Path, out: Path) -> Path:
    return rewritten(good, out, lambda n: None if n == package.INDEX else n)


BAD = {"flipped": (flipped, "damaged"), "truncated": (truncated, "truncated"),
       "renamed": (renamed, "renamed"), "escaping": (escaping, "escapes"),
       "absolute": (absolute, "escapes"), "symlink": (symlink, "symlink"),
       "added": (added, "does not list"), "tampered": (tampered, "sha256"),
       "tar": (tar, "not a model package"), "foreign": (foreign, "not written by")}


@pytest.fixture(scope="module")
def device(exported: Path, host: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A device's cache that already holds a model of its own (the user model, imported)."""
    cache = tmp_path_factory.mktemp("device")
    own = tmp_path_factory.mktemp("own") / "own.edgecam.zip"
    edgecam("models", "export", USER_MODEL, "-o", str(own), env={"EDGECAM_CACHE": str(host)}, check=True)
    edgecam("models", "import", str(own), env={"EDGECAM_CACHE": str(cache)}, check=True)
    return cache


@pytest.fixture
def on_device_cache(device: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process with the device's cache as its model cache (the manifest read afresh)."""
    monkeypatch.setenv("EDGECAM_CACHE", str(device))
    store.manifest.cache_clear()
    yield device
    store.manifest.cache_clear()


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_package_is_refused_with_one_line_and_nothing_written(
        kind: str, exported: Path, on_device_cache: Path, tmp_path: Path) -> None:
    """In this process (the CLI's line and exit status are the next test's): the error, its one
    line, and the cache byte for byte as it was."""
    make, says = BAD[kind]
    bad = make(exported, tmp_path / f"{kind}.edgecam.zip")
    before = tree(on_device_cache)
    with pytest.raises(package.PackageError) as refused:
        package.import_file(bad)
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"model package {bad} ") and says in line, line
    assert "nothing was imported" in line
    assert tree(on_device_cache) == before
    assert not (tmp_path / "x").exists() and not Path(f"/tmp/{tmp_path.name}-absolute").exists()


def test_the_cli_refuses_a_bad_package_with_one_line_and_exit_status_1(exported: Path, device: Path,
                                                                       tmp_path: Path) -> None:
    bad = flipped(exported, tmp_path / "flipped.edgecam.zip")
    before = tree(device)
    result = edgecam("models", "import", str(bad), env={"EDGECAM_CACHE": str(device)})
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"edgecam: error: model package {bad} is damaged")
    assert tree(device) == before


def test_a_package_of_another_edgecam_build_is_refused(exported: Path, device: Path, tmp_path: Path) -> None:
    """A built-in model whose manifest entry differs here (another input size) is not installed."""
    with zipfile.ZipFile(exported) as source:
        index = json.loads(source.read(package.INDEX))
    index["models"][MODEL]["builtin"]["input"] = 240
    bad = rewritten(exported, tmp_path / "other.edgecam.zip", lambda n: None if n == package.INDEX else n,
                    extra=[member(package.INDEX, json.dumps(index).encode())])
    before = tree(device)
    result = edgecam("models", "import", str(bad), env={"EDGECAM_CACHE": str(device)})
    assert result.returncode == 1 and "input 240 where this edgecam has 224" in result.stderr
    assert tree(device) == before


def test_export_refuses_a_name_without_the_package_suffix(tmp_path: Path) -> None:
    result = edgecam("models", "export", MODEL, "-o", str(tmp_path / "lite0.zip"))
    assert result.returncode == 2 and ".edgecam.zip" in result.stderr
    assert not (tmp_path / "lite0.zip").exists()
    assert os.listdir(tmp_path) == []


# --- a device install: `pip install .` with no extras, in a fresh venv --------------------------

@pytest.fixture(scope="module")
def device_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with edgecam installed from the wheel of this checkout,
    no extras: what `pip install edgecam` gives a Pi."""
    work = tmp_path_factory.mktemp("device-venv")
    checkout = work / "checkout"  # a copy, so pip's build/ never touches the working tree
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "wheel"), str(checkout)])
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    wheel = next((work / "wheel").glob("edgecam-*.whl"))
    run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)])
    (venv / "wheel").symlink_to(wheel)
    return venv


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, **kwargs)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)[:120]} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def installed(venv: Path) -> set[str]:
    listed = run([str(venv / "bin" / "pip"), "list", "--format", "json", "--disable-pip-version-check"])
    return {p["name"].lower() for p in json.loads(listed.stdout)}


def on_device(venv: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    """`edgecam ARGS` of the device venv, outside the checkout, with `cache` as its model cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH")}
    env["EDGECAM_CACHE"] = str(cache)
    return subprocess.run([str(venv / "bin" / "edgecam"), *args], capture_output=True, text=True,
                          timeout=300, check=False, cwd=cache.parent, env=env)


def test_a_device_install_has_no_torch_and_says_so_in_one_line(device_venv: Path, tmp_path: Path,
                                                                photo_files: dict[str, Path]) -> None:
    """No torch, no onnx; building, and a first run that would build, each say the one line."""
    assert not {"torch", "onnx", "litert-torch", "pnnx"} & installed(device_venv)
    assert subprocess.run([str(device_venv / "bin" / "python"), "-c", "import torch"],
                          capture_output=True, check=False).returncode != 0
    cache = tmp_path / "cache"
    for args in (("models", "build", MODEL), ("classify", str(photo_files["chelsea"]))):
        result = on_device(device_venv, cache, *args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert "pip install 'edgecam[build]'" in lines[0] and "edgecam models import" in lines[0], lines[0]


def test_a_device_install_runs_an_imported_package(device_venv: Path, exported: Path, tmp_path: Path,
                                                    images: list[Path], host_top1: dict) -> None:
    """Import, classify the photos (the host's top-1 with each backend), then the demo clip with the
    demo extra installed (still no torch)."""
    cache = tmp_path / "cache"
    imported = on_device(device_venv, cache, "models", "import", str(exported))
    assert imported.returncode == 0, imported.stderr
    for backend in ("onnx", "onnx-int8"):
        result = on_device(device_venv, cache, "classify", "--json", "--backend", backend, *map(str, images))
        assert result.returncode == 0, result.stderr
        device = [(Path(r["image"]).name, r["top"][0]["label"]) for r in json.loads(result.stdout)]
        assert device == host_top1[backend]
    run([str(device_venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
         f"{(device_venv / 'wheel').resolve()}[demo]"])
    assert not {"torch", "onnx"} & installed(device_venv)
    log = tmp_path / "demo.jsonl"
    result = on_device(device_venv, cache, "run", "--source", "demo", "--headless", "--backend", "onnx",
                       "--frames", "30", "--log", str(log))
    assert result.returncode == 0, result.stderr
    records = read_jsonl(log)
    assert len(records) == 30 and all(r["top"][0]["label"] for r in records)


# --- a build that fits a small board ------------------------------------------------------------

def test_a_build_step_runs_in_a_process_of_its_own_and_passes_back_its_outcome() -> None:
    assert child.call(os.getpid) != os.getpid()
    with pytest.raises(UsageError, match="unknown model 'nope'"):
        child.call(store.get, "nope")
    with pytest.raises(EdgecamError, match=r"posix\.abort ended without a result \(exit status -6\)"):
        child.call(os.abort)


def test_the_int8_step_fits_a_small_board(model_cache: Path, tmp_path: Path) -> None:
    """onnxruntime's calibration held every intermediate output of the 100 frames at once: 1.6 GB
    for Lite0. Reduced 10 frames at a time, the int8 step (its fp32 file built) stays under the
    fp32 build's own 450 MB (the kernel's peak RSS of the process)."""
    edgecam("models", "build", MODEL, check=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in (f"{MODEL}.onnx", f"{MODEL}.onnx.json"):
        shutil.copy(model_cache / name, cache / name)
    command = [sys.executable, "-m", "edgecam", "models", "build", MODEL, "--backends", "onnx-int8"]
    # Started by a small Python of its own: a process forked from this test's (torch and the models
    # of earlier tests: over 2 GB) would report that high-water mark as its ru_maxrss.
    measured = subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, *command],
                              env={**os.environ, "EDGECAM_CACHE": str(cache)},
                              capture_output=True, text=True, check=False)
    assert measured.returncode == 0, measured.stderr[-2000:]
    assert (cache / f"{MODEL}.int8.onnx").is_file()
    peak_mb = int(measured.stdout.split()[-1]) / 1024
    assert peak_mb <= 450, f"peak RSS {peak_mb:.0f} MB"


PEAK_OF_CHILD = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(done.returncode)
"""
