"""Decompression bombs: a small file whose header promises a huge picture is refused from that
header, in one line naming the file and its size, before anything is decoded: by classify, a
folder source and an int8 build's calibration folder."""
from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import edgecam, jpeg_bomb, read_jsonl

from edgecam.base.imagesize import pixel_size

SIDE = 12_000  # 144 MP: 432 MB as RGB, from a file of about 150 KB


def png_bomb(path: Path, side: int = SIDE) -> Path:
    """A valid grey PNG of side×side black pixels, compressed row by row (never held whole)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0, then the row
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {"png": png_bomb(folder / "huge.png"), "jpeg": jpeg_bomb(folder / "huge.jpg")}


def test_the_header_gives_the_size_of_every_format_edgecam_reads() -> None:
    image = np.zeros((37, 53, 3), np.uint8)
    for suffix in (".png", ".jpg", ".bmp", ".webp", ".tiff", ".ppm"):
        assert pixel_size(cv2.imencode(suffix, image)[1].tobytes()) == (53, 37), suffix
    assert pixel_size(cv2.imencode(".pgm", image[:, :, 0])[1].tobytes()) == (53, 37)
    assert pixel_size(b"\x89PNG\r\n\x1a\n\x00") is None  # cut short: the decoder says it is unreadable


@pytest.mark.parametrize(("kind", "size"), [("png", f"{SIDE}×{SIDE}"), ("jpeg", "60000×60000")])
def test_classify_refuses_a_bomb_from_its_header(bombs: dict[str, Path], kind: str, size: str) -> None:
    assert bombs[kind].stat().st_size < 1_000_000
    started = time.monotonic()
    result = edgecam("classify", str(bombs[kind]))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"edgecam: error: image {bombs[kind]} is {size} pixels")
    assert "more than the 50 MP edgecam decodes" in last
    assert time.monotonic() - started < 30  # refused, not decoded


def test_a_folder_source_skips_a_bomb_and_classifies_the_rest(bombs: dict[str, Path], tmp_path: Path,
                                                              photo_files: dict[str, Path]) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "a-huge.png").write_bytes(bombs["png"].read_bytes())
    (folder / "b-cat.png").write_bytes(photo_files["chelsea"].read_bytes())
    result = edgecam("run", "--source", str(folder), "--headless", "--log", str(tmp_path / "run.jsonl"),
                     check=True)
    assert "a-huge.png is 12000×12000 pixels" in result.stderr
    assert [Path(r["source"]).name for r in read_jsonl(tmp_path / "run.jsonl")] == ["b-cat.png"]


def test_calibration_refuses_a_bomb(bombs: dict[str, Path], tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "huge.jpg").write_bytes(bombs["jpeg"].read_bytes())
    result = edgecam("models", "build", "efficientnet_lite0", "--int8", "--calib", str(calib), "--force")
    assert result.returncode == 1
    assert "huge.jpg is 60000×60000 pixels" in result.stderr.strip().splitlines()[-1]


def test_the_limit_is_configurable_and_checked(bombs: dict[str, Path]) -> None:
    result = edgecam("classify", str(bombs["jpeg"]), env={"EDGECAM_MAX_IMAGE_MP": "lots"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "edgecam: error: EDGECAM_MAX_IMAGE_MP must be a number of megapixels, like 50")
    raised = edgecam("classify", str(bombs["jpeg"]), env={"EDGECAM_MAX_IMAGE_MP": "1"})
    assert "more than the 1 MP edgecam decodes" in raised.stderr
