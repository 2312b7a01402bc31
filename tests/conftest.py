"""Shared fixtures: one model cache per test session (models are built once), the CLI as a user
runs it (a subprocess), real sample photos, and `require`: the one way a test says which outside
program (or module) it needs."""
from __future__ import annotations

import functools
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Callable, NoReturn, TypeVar

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

# CI sets this: a test whose program is missing there fails instead of skipping (never silently).
REQUIRE_TOOLS = "EDGECAM_TESTS_REQUIRE_TOOLS"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3, for modules that come from apt (python3-gi)


def needs(what: str, package: str, *, pip: bool = False) -> NoReturn:
    """Stop a test (fixture, module) that cannot run here: skip it with a reason naming the
    package that provides `what`, e.g. "needs ffmpeg (Debian package: ffmpeg)". With
    EDGECAM_TESTS_REQUIRE_TOOLS=1 (CI, which installs everything) the test fails instead."""
    message = f"needs {what} ({'pip' if pip else 'Debian'} package: {package})"
    if os.environ.get(REQUIRE_TOOLS) == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require(program: str, package: str) -> str:
    """The path of `program` (a name looked up on PATH, or an absolute path); the test skips (CI:
    fails) when it is missing. `package` is the Debian package that installs it."""
    found = shutil.which(program)
    if found is None:
        needs(program, package)
    return found


@functools.cache
def runs_in(python: str, code: str) -> bool:
    """Whether `python -c code` exits 0 (asked once per session)."""
    return subprocess.run([python, "-c", code], capture_output=True, timeout=120,
                          check=False).returncode == 0


def require_module(module: str, package: str, *, pip: bool = False,
                   python: str | None = None) -> ModuleType | None:
    """`module` imported here and returned; or, with `python` (Debian's python3), a check that
    that interpreter imports it. The test skips (CI: fails) when it cannot; `package` is the
    Debian package that installs it (the pip package with pip=True)."""
    if python is None:
        try:
            return importlib.import_module(module)
        except ImportError:
            needs(f"the Python module {module}", package, pip=pip)
    require(python, "python3")
    if not runs_in(python, f"import {module}"):
        needs(f"the Python module {module} in {python}", package, pip=pip)
    return None


@functools.cache
def encodes(fourcc: str, suffix: str) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        writer = cv2.VideoWriter(str(Path(folder) / f"probe{suffix}"), cv2.VideoWriter.fourcc(*fourcc),
                                 30, (64, 64))
        opened = writer.isOpened()
        writer.release()
    return opened


def require_encoder(fourcc: str, suffix: str = ".mp4") -> None:
    """OpenCV's VideoWriter can write `fourcc` video (the opencv-python wheel's own FFmpeg)."""
    if not encodes(fourcc, suffix):
        needs(f"OpenCV's {fourcc} video encoder ({suffix})", "opencv-python", pip=True)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EDGECAM_CACHE for the whole session, so each model is built once and reused."""
    cache = Path(os.environ.get("EDGECAM_TEST_CACHE") or tmp_path_factory.mktemp("model-cache"))
    os.environ["EDGECAM_CACHE"] = str(cache)
    return cache


def edgecam(*args: str, timeout: float = 300, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess, as a user would (no display unless the test sets one)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    full_env.update(env or {})
    result = subprocess.run([sys.executable, "-m", "edgecam", *args], capture_output=True, text=True,
                            timeout=timeout, env=full_env)
    if check and result.returncode != 0:
        raise AssertionError(f"edgecam {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 90, what: str = "",
             interval: float = 0.1) -> T:
    """Poll `condition` until it returns something true, and return that; fail after `timeout`
    seconds. Tests wait for events this way, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(interval)
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def photo(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    return image[0] if isinstance(image, tuple) else image


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """skimage's real photos written as image files: chelsea.png (a cat), coffee.jpg, rocket.jpg."""
    folder = tmp_path_factory.mktemp("photos")
    files = {}
    for name, suffix in (("chelsea", ".png"), ("coffee", ".jpg"), ("rocket", ".jpg")):
        path = folder / f"{name}{suffix}"
        cv2.imwrite(str(path), cv2.cvtColor(photo(name), cv2.COLOR_RGB2BGR))
        files[name] = path
    return files
