"""Shared fixtures: one model cache per test session (models are built once), the CLI as a user
runs it (a subprocess), and real sample photos."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


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
