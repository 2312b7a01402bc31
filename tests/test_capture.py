"""`edgecam capture`: photos from any source into DATASET/LABEL/*.jpg, never overwriting."""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from conftest import edgecam


def capture(*args: str) -> str:
    return edgecam("capture", "--countdown", "0", "--every", "0", *args, check=True).stdout


def test_photos_from_an_image_folder_add_to_a_class(photo_files: dict[str, Path], tmp_path: Path) -> None:
    source = str(next(iter(photo_files.values())).parent)
    out = tmp_path / "dataset"
    assert capture("--source", source, "--label", "desk", "--out", str(out), "--count", "2") == (
        f"2 photos of 'desk' in {out / 'desk'}\n")
    capture("--source", source, "--label", "desk", "--out", str(out), "--count", "1")
    names = sorted(p.name for p in (out / "desk").iterdir())
    assert names == ["desk_0001.jpg", "desk_0002.jpg", "desk_0003.jpg"]
    first = cv2.imread(str(out / "desk" / "desk_0001.jpg"))
    assert first.shape == cv2.imread(str(photo_files["chelsea"])).shape


def test_a_source_that_ends_early_keeps_what_it_gave(photo_files: dict[str, Path], tmp_path: Path) -> None:
    result = edgecam("capture", "--source", str(photo_files["coffee"]), "--label", "mug", "--out",
                     str(tmp_path), "--count", "5", "--every", "0", "--countdown", "0", check=True)
    assert [p.name for p in (tmp_path / "mug").iterdir()] == ["mug_0001.jpg"]
    assert "ended after 1 of 5 photos" in result.stderr


@pytest.mark.slow
def test_photos_from_the_live_demo_source(tmp_path: Path) -> None:
    capture("--source", "demo", "--label", "scene", "--out", str(tmp_path), "--count", "2")
    shots = sorted((tmp_path / "scene").iterdir())
    assert len(shots) == 2 and cv2.imread(str(shots[0])).shape == (720, 1280, 3)


@pytest.mark.parametrize("label", ["../escape", ".hidden", "a/b", ""])
def test_a_label_that_is_not_a_folder_name(label: str, tmp_path: Path) -> None:
    result = edgecam("capture", "--source", "demo", "--label", label, "--out", str(tmp_path))
    assert result.returncode == 2
    assert "a class name is a folder name" in result.stderr.splitlines()[-1]
    assert not any(tmp_path.iterdir())
