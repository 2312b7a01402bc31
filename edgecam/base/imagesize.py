"""An image's width and height read from its header, before anything is decoded: a 2.6 MB PNG can
hold 30000×30000 pixels (2.7 GB once decoded), so the size is checked first.

Knows PNG, JPEG, GIF, BMP, WebP, TIFF and PPM/PGM; None for anything else (OpenCV's own pixel cap,
set in edgecam/__init__.py, still applies to those)."""
from __future__ import annotations

import os
import re
import struct

from edgecam.base.errors import SourceError

# JPEG start-of-frame markers (baseline, progressive, lossless, …): not DHT (C4), JPG (C8), DAC (CC)
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNM = re.compile(rb"P[1-6]\s+(?:#[^\n]*\n\s*)*(\d+)\s+(?:#[^\n]*\n\s*)*(\d+)")


DEFAULT_MP = 50  # a 12 MP camera's photo four times over


def max_pixels() -> int:
    """The largest image edgecam decodes: $EDGECAM_MAX_IMAGE_MP megapixels (default DEFAULT_MP);
    larger ones are refused from their header."""
    try:
        return int(float(os.environ.get("EDGECAM_MAX_IMAGE_MP") or DEFAULT_MP) * 1e6)
    except ValueError:
        raise SourceError("EDGECAM_MAX_IMAGE_MP must be a number of megapixels, like 50") from None


def pixel_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of the encoded image `data`; None when unknown."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(data)
        if (match := _PNM.match(data[:512])) is not None:
            return int(match.group(1)), int(match.group(2))
    except struct.error:  # a header cut short: the decoder will say it is unreadable
        return None
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: 24-bit width-1 and height-1
        return (int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8L":  # lossless: 14-bit width-1 and height-1 after a signature byte
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset:offset + 2])
    found: dict[int, int] = {}
    for i in range(count):
        entry = data[offset + 2 + 12 * i:offset + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            short = kind == 3
            found[tag] = struct.unpack(order + ("H" if short else "I"), entry[8:10 if short else 12])[0]
    return (found[256], found[257]) if len(found) == 2 else None
