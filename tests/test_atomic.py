"""Files written atomically: the old file or the new one, never half of one, and no litter."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecam.base import atomic


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_failed_block_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_text("old")

    def failed_export() -> None:
        with atomic.replaced(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        failed_export()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_a_successful_block_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_text("old")
    with atomic.replaced(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.onnx.")
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_the_file_gets_the_mode_the_umask_gives(tmp_path: Path, umask_022: None) -> None:
    """Not mkstemp's 0600: a model root builds must be readable by the service's user."""
    atomic.write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_an_explicit_mode_is_kept_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic.write_text(tmp_path / "unit.service", "[Unit]\n", mode=0o644)
    finally:
        os.umask(old)
    assert (tmp_path / "unit.service").stat().st_mode & 0o777 == 0o644


def test_a_missing_folder_is_created(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "weights" / "net.pth.json"
    atomic.write_json(target, {"sha256": "ab"})
    assert json.loads(target.read_text()) == {"sha256": "ab"}
    assert target.read_text().endswith("}\n")


def enter(path: Path) -> None:
    with atomic.replaced(path):
        pytest.fail("the block ran without a temporary file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_an_unwritable_folder_raises_oserror_before_the_block(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(atomic.Unwritable):
            enter(folder / "model.onnx")
    finally:
        folder.chmod(0o755)
    assert os.listdir(folder) == []


def test_a_folder_that_cannot_be_made_raises_oserror_before_the_block(tmp_path: Path) -> None:
    """Unwritable is an OSError, so a caller may catch either; this one fails for root too."""
    (tmp_path / "a-file").write_text("")
    with pytest.raises(atomic.Unwritable) as raised:
        enter(tmp_path / "a-file" / "model.onnx")
    assert isinstance(raised.value, OSError) and raised.value.strerror
    assert os.listdir(tmp_path) == ["a-file"]


def test_sidecar_and_read_json(tmp_path: Path) -> None:
    model = tmp_path / "net.int8.onnx"
    assert atomic.sidecar(model) == tmp_path / "net.int8.onnx.json"
    assert atomic.read_json(atomic.sidecar(model)) is None  # missing
    atomic.sidecar(model).write_bytes(os.urandom(64) + b"\xff")
    assert atomic.read_json(atomic.sidecar(model)) is None  # garbage
    atomic.sidecar(model).write_text("[1, 2]")
    assert atomic.read_json(atomic.sidecar(model)) is None  # not an object
    atomic.write_json(atomic.sidecar(model), {"sha256": "ab"})
    assert atomic.read_json(atomic.sidecar(model)) == {"sha256": "ab"}
