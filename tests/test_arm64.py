"""edgecam on the Arm target: the aarch64 Python 3.11 of Raspberry Pi OS, under qemu 10 user-mode
emulation (../shared/tools/arm64-python), with aarch64 wheels of numpy, headless OpenCV and the three
device runtimes -- current onnxruntime, LiteRT (ai-edge-litert, XNNPACK on) and ncnn -- and nothing
else: no torch, no onnx, no scikit-image. The models are built on the host; the Arm side only loads
them. `edgecam classify` with each device backend (onnx, onnx-int8, litert, litert-int8, ncnn) and
`edgecam run` (onnx, on frames of the demo clip) must give the host's top-1 for every image. Each
test names its backend: the default, auto, measures the installed backends and could pick any.

edgecam goes in as the wheel pip builds from this checkout, the way a Pi gets it: the package maps
`edgecam.data` to models/, which a bare checkout on PYTHONPATH does not provide.

Emulated time means nothing, so nothing here is timed. The first run builds the aarch64 root and
fetches the wheels into $ARM64_CACHE (default /tmp/arm64-cache): a few minutes."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import pytest
from conftest import ROOT, edgecam, read_jsonl

pytestmark = [pytest.mark.arm64, pytest.mark.slow]

TOOL = ROOT.parent / "shared" / "tools" / "arm64-python"
REQUIREMENTS = ROOT / "tests" / "arm64" / "requirements.txt"
CACHE = Path(os.environ.get("ARM64_CACHE", "/tmp/arm64-cache"))

# Run under emulation: what it runs on, the versions of the device runtimes, what ncnn computes in
# on the emulated CPU, and which heavy modules the backends imported.
PROBE = """
import json, platform, sys
import cv2, ncnn, numpy, onnxruntime
import ai_edge_litert
import ai_edge_litert.interpreter
from edgecam import cli
from edgecam.runtime import classifier
import edgecam.backends.litert
import edgecam.backends.ncnn
import edgecam.backends.onnx
cli.parser()  # imports every subcommand, as `edgecam` does
print(json.dumps({"machine": platform.machine(), "python": platform.python_version(),
                  "onnxruntime": onnxruntime.__version__, "litert": ai_edge_litert.__version__,
                  "ncnn": ncnn.__version__, "ncnn_precision": edgecam.backends.ncnn.precision(),
                  "numpy": numpy.__version__, "opencv": cv2.__version__,
                  "heavy": [m for m in ("torch", "onnx", "skimage") if m in sys.modules]}))
"""


def emulated(*args: str, src: Path, timeout: float) -> subprocess.CompletedProcess:
    """python3.11 on aarch64 with `args`; a failure of the emulator or of edgecam fails the test
    with its stderr (never a skip: a check that cannot run must say so)."""
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"{TOOL} is missing: the aarch64 check needs ../shared/tools beside the repo")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(EDGECAM_SRC=str(src), ARM64_CACHE=str(CACHE))
    # Not from the checkout: `python -m` puts the working directory first on sys.path.
    result = subprocess.run([str(TOOL), "--req", str(REQUIREMENTS), "--", *args], capture_output=True,
                            text=True, timeout=timeout, env=env, cwd=src, check=False)
    if result.returncode != 0:
        pytest.fail(f"aarch64 python {' '.join(args)[:80]} exited {result.returncode}:\n"
                    f"{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """edgecam installed for the emulated Python (pure Python: the wheel unpacked), the model built
    on the host, and what the probe found on the Arm side."""
    edgecam("models", "build", "efficientnet_lite0", check=True)
    work = tmp_path_factory.mktemp("arm64")
    checkout = work / "checkout"  # a copy, so pip's build/ never touches the working tree
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(work / "wheel"), str(checkout)], capture_output=True, text=True,
                           timeout=300, check=False)
    if built.returncode != 0:
        pytest.fail(f"pip wheel of the checkout failed:\n{built.stderr[-3000:]}")
    src = work / "site"
    for wheel in (work / "wheel").glob("edgecam-*.whl"):
        zipfile.ZipFile(wheel).extractall(src)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".edgecam-tests.lock", "w") as lock:  # one first-time root build at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        probe = emulated("-c", PROBE, src=src, timeout=600)
    return src, json.loads(probe.stdout.strip().splitlines()[-1])


def release(version: str) -> tuple[int, int]:
    """"1.32.0" → (1, 32)."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def test_the_arm_side_is_aarch64_python_311_with_current_runtimes_and_no_torch(
        arm64: tuple[Path, dict]) -> None:
    """onnxruntime 1.28 and later crashed qemu 7.2 on import; qemu 10 runs them, so the wheel is the
    current one, beside LiteRT and ncnn."""
    _, found = arm64
    print(found)
    assert found["machine"] == "aarch64", found
    assert found["python"].startswith("3.11."), found
    assert release(found["onnxruntime"]) >= (1, 28), found
    assert found["litert"] and found["ncnn"], found
    assert found["heavy"] == [], f"the device backends imported {found['heavy']}"


def top1(record: dict) -> tuple[str, int]:
    return record["top"][0]["label"], record["top"][0]["index"]


def assert_same_top1(host: dict[str, dict], arm: dict[str, dict], tolerance: float = 0.01) -> None:
    """Same top-1 label for every image; its score within `tolerance` (fp32: 0.01): a runtime's
    NEON kernels sum in another order than its x86 ones, and OpenCV's bilinear step of a large
    frame's resize rounds a few pixels differently with NEON than with AVX."""
    assert sorted(arm) == sorted(host)
    for name, record in host.items():
        print(f"{Path(name).name}: host {top1(record)} {record['top'][0]['score']:.5f}, "
              f"aarch64 {top1(arm[name])} {arm[name]['top'][0]['score']:.5f}")
        assert top1(arm[name]) == top1(record), (name, arm[name]["top"], record["top"])
        assert abs(arm[name]["top"][0]["score"] - record["top"][0]["score"]) <= tolerance, name


def test_classify_gives_the_host_top1(arm64: tuple[Path, dict], photo_files: dict[str, Path]) -> None:
    src, _ = arm64
    images = [str(photo_files["chelsea"]), str(photo_files["coffee"])]  # a PNG and a JPEG
    host = json.loads(edgecam("classify", "--json", "--backend", "onnx", *images, check=True).stdout)
    arm = json.loads(emulated("-m", "edgecam", "classify", "--json", "--backend", "onnx", *images,
                              src=src, timeout=300).stdout)
    assert all(r["backend"] == "onnx" for r in arm)
    assert_same_top1({r["image"]: r for r in host}, {r["image"]: r for r in arm})


def test_run_on_demo_frames_gives_the_host_top1(arm64: tuple[Path, dict], tmp_path: Path) -> None:
    """The demo clip renders from scikit-image photos on the host; the middle frame of each shot,
    saved losslessly, goes through `edgecam run` (source, preprocess, onnxruntime, JSONL log) on
    both sides. One frame per shot keeps a cold run within CI's five minutes."""
    from edgecam.base.samples import DemoClip

    src, _ = arm64
    clip = DemoClip()
    frames = tmp_path / "frames"
    frames.mkdir()
    for shot in range(len(clip.names)):
        index = shot * clip.shot_frames + clip.shot_frames // 2
        cv2.imwrite(str(frames / f"{index:03d}-{clip.shot(index)}.png"),
                    cv2.cvtColor(clip.frame(index), cv2.COLOR_RGB2BGR))
    edgecam("run", "--source", str(frames), "--headless", "--backend", "onnx", "--log",
            str(tmp_path / "host.jsonl"), check=True)
    emulated("-m", "edgecam", "run", "--source", str(frames), "--headless", "--backend", "onnx",
             "--log", str(tmp_path / "arm.jsonl"), src=src, timeout=400)
    host = {r["source"]: r for r in read_jsonl(tmp_path / "host.jsonl")}
    arm = {r["source"]: r for r in read_jsonl(tmp_path / "arm.jsonl")}
    assert len(host) == len(clip.names)
    assert_same_top1(host, arm)


def test_int8_classify_gives_the_host_top1(arm64: tuple[Path, dict],
                                           photo_files: dict[str, Path]) -> None:
    """The int8 model a Pi would pick for speed: built on the host (7-bit weights, the uint8 frame as
    its quantized input), run by onnxruntime's Arm integer kernels. Same top-1; the score within
    0.05: fed the same frame, onnxruntime 1.32's Arm and x86 int8 kernels give the same logits, but
    the resize's one-level differences (see assert_same_top1) pass through every layer's
    requantization (measured: 0.010 apart on chelsea)."""
    src, _ = arm64
    edgecam("models", "build", "efficientnet_lite0", "--int8", check=True)
    images = [str(photo_files["chelsea"]), str(photo_files["coffee"])]
    host = json.loads(edgecam("classify", "--json", "--backend", "onnx-int8", *images,
                              check=True).stdout)
    arm = json.loads(emulated("-m", "edgecam", "classify", "--json", "--backend", "onnx-int8",
                              *images, src=src, timeout=300).stdout)
    assert all(r["backend"] == "onnx-int8" for r in arm)
    assert_same_top1({r["image"]: r for r in host}, {r["image"]: r for r in arm}, 0.05)


@pytest.fixture(scope="module")
def device_models(arm64: tuple[Path, dict]) -> dict:
    """The LiteRT (fp32, int8) and ncnn files of the model, built on the host into the cache the
    Arm side reads; what the probe found there."""
    edgecam("models", "build", "efficientnet_lite0", "--backends", "litert,litert-int8,ncnn",
            check=True, timeout=900)
    return arm64[1]


@pytest.mark.parametrize(("backend", "tolerance"), [
    ("litert", 0.01),
    ("litert-int8", 0.05),
    ("ncnn", 0.03),
], ids=["litert", "litert-int8", "ncnn"])
def test_classify_with_each_device_backend_gives_the_host_top1(
        device_models: dict, arm64: tuple[Path, dict], photo_files: dict[str, Path], backend: str,
        tolerance: float) -> None:
    """LiteRT (XNNPACK) and ncnn, on files built on the host, through `edgecam classify --backend B`
    on both sides: the same top-1, the score within `tolerance`.

    Fed the same 224x224 frame, litert and litert-int8 give the same logits on x86 and on the
    emulated aarch64 (within 1e-5), so their scores move only by OpenCV's resize, which rounds
    about a fifth of the frame's values one level the other way: fp32 within 0.01 (measured:
    0.006 on chelsea, 0.001 on coffee), int8 within 0.05, as onnx-int8.

    ncnn computes in fp16 where the CPU has ARMv8.2 half-precision arithmetic. qemu's emulated CPU
    (its `max` model) has it, as a Pi 5's Cortex-A76 does; x86 computes in fp32 with some weights
    stored in fp16. Fed the same frame, the two sides' logits are up to 0.13 apart (the three
    photos and four demo frames), which moves the top-1 score by up to 0.010, on chelsea, the least
    certain image (0.38). With the resize's 0.006 that makes 0.014 on chelsea and 0.003 on coffee
    (measured): 0.03 is twice the measured difference. A Pi 4 (no fp16 arithmetic) computes as the
    host does: fp32, some weights stored in fp16."""
    src, _ = arm64
    print(f"ncnn on the emulated CPU: {device_models['ncnn_precision']}")
    images = [str(photo_files["chelsea"]), str(photo_files["coffee"])]
    host = json.loads(edgecam("classify", "--json", "--backend", backend, *images,
                              check=True).stdout)
    arm = json.loads(emulated("-m", "edgecam", "classify", "--json", "--backend", backend,
                              *images, src=src, timeout=300).stdout)
    assert all(r["backend"] == backend for r in host + arm)
    assert_same_top1({r["image"]: r for r in host}, {r["image"]: r for r in arm}, tolerance)


DEVICE_BACKENDS = {"onnx": 0.01, "onnx-int8": 0.05, "litert": 0.01, "litert-int8": 0.05, "ncnn": 0.03}


def test_an_imported_package_gives_the_host_top1_with_each_backend(
        device_models: dict, arm64: tuple[Path, dict], photo_files: dict[str, Path],
        tmp_path: Path) -> None:
    """The way a Pi without torch gets its model: a package exported on the host, imported into an
    empty cache on the Arm side, then classify with each backend the package holds: the host's
    top-1, within each backend's tolerance (see the tests above for why they differ)."""
    src, _ = arm64
    edgecam("models", "build", "efficientnet_lite0", "--int8", check=True)
    exported = tmp_path / "lite0.edgecam.zip"
    edgecam("models", "export", "efficientnet_lite0", "--backends", ",".join(DEVICE_BACKENDS),
            "-o", str(exported), check=True)
    images = [str(photo_files["chelsea"]), str(photo_files["coffee"])]
    cache = tmp_path / "arm-cache"
    found = json.loads(emulated(str(ROOT / "tests" / "arm64" / "import_and_classify.py"), str(cache),
                                str(exported), ",".join(DEVICE_BACKENDS), *images,
                                src=src, timeout=900).stdout.strip().splitlines()[-1])
    assert found["heavy"] == [], f"import or classify imported {found['heavy']}"
    assert sorted(p.name for p in cache.glob("efficientnet_lite0*") if p.suffix != ".json") == sorted(
        f"efficientnet_lite0{suffix}" for suffix in (
            ".onnx", ".int8.onnx", ".tflite", ".int8.tflite", ".ncnn.bin", ".ncnn.param"))
    for backend, tolerance in DEVICE_BACKENDS.items():
        host = json.loads(edgecam("classify", "--json", "--backend", backend, *images, check=True).stdout)
        arm = found["results"][backend]
        assert all(r["backend"] == backend for r in arm)
        assert_same_top1({r["image"]: r for r in host}, {r["image"]: r for r in arm}, tolerance)
