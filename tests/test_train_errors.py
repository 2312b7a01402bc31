"""`edgecam train` on datasets a user can get wrong: one clear line each, no traceback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import edgecam
from test_train import write_crops


def dataset(root: Path, counts: dict[str, int]) -> Path:
    """A dataset with `counts[photo]` crops of each skimage photo, the photo name as class."""
    rng = np.random.default_rng(len(counts))
    for name, count in counts.items():
        write_crops(root / name, name, count, rng)
    return root


def error_of(*args: str, code: int = 1) -> str:
    result = edgecam("train", *args)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_an_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    assert error_of(str(tmp_path)) == (
        f"edgecam: error: dataset {tmp_path} has no images: expected {tmp_path}/CLASS/*.jpg, one "
        "folder per class (edgecam capture --label CLASS --out DATASET writes them)")


def test_a_missing_dataset(tmp_path: Path) -> None:
    assert "is not a folder" in error_of(str(tmp_path / "nowhere"), code=2)


def test_a_single_class(tmp_path: Path) -> None:
    root = dataset(tmp_path, {"chelsea": 3})
    assert error_of(str(root)).startswith(f"edgecam: error: dataset {root} has a single class "
                                          "(chelsea): a classifier needs at least 2")


def test_a_class_with_one_image(tmp_path: Path) -> None:
    root = dataset(tmp_path, {"chelsea": 3, "coffee": 1})
    assert error_of(str(root)).startswith(
        f"edgecam: error: class 'coffee' of dataset {root} has 1 usable image(s): each class needs "
        "at least 2")


def test_an_out_name_of_a_built_in_model(tmp_path: Path) -> None:
    root = dataset(tmp_path, {"chelsea": 2, "coffee": 2})
    assert error_of(str(root), "--out", "efficientnet_lite0", code=2) == (
        "edgecam: error: --out efficientnet_lite0 is a built-in model: choose another name for "
        "your model")


def test_a_bad_augmentation(tmp_path: Path) -> None:
    assert error_of(str(tmp_path), "--augment", "flip,blur", code=2) == (
        "edgecam: error: --augment must be 'none' or a comma-separated list of flip, crop, color, "
        "got 'flip,blur'")


@pytest.mark.slow
def test_unreadable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    root = dataset(tmp_path / "data", {"chelsea": 3, "rocket": 3})
    (root / "chelsea" / "empty.jpg").write_bytes(b"")
    (root / "rocket" / "notes.png").write_text("not an image")
    result = edgecam("train", str(root), "--out", "skips", "--epochs", "3", "--augment", "none",
                     check=True)
    assert "4 training and 2 validation images, 2 unreadable skipped" in result.stdout
    assert "skipped 2 unreadable image(s)" in result.stderr


@pytest.mark.slow
def test_unreadable_images_leaving_a_class_too_small(tmp_path: Path) -> None:
    root = dataset(tmp_path / "data", {"chelsea": 2, "rocket": 1})
    (root / "rocket" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert error_of(str(root), "--augment", "none").startswith(
        f"edgecam: error: class 'rocket' of dataset {root} has 1 usable image(s)")
