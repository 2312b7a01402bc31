"""A reader of the safetensors format (timm's checkpoints on the Hugging Face hub), written for
untrusted files: the header's length, every tensor's offsets and its byte count are checked
against the file's size and each other before a byte of data is read. No pickle, no library."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from edgecam.base.errors import ModelError

MAX_HEADER = 100 << 20  # the format's own limit on the JSON header
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _bad(path: Path, why: str) -> ModelError:
    return ModelError(f"weights file {path} is not a readable safetensors file: {why}; download it again")


def _header(path: Path, size: int) -> tuple[dict, int]:
    """The parsed JSON header and the offset where the data starts."""
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise _bad(path, f"it has {size} bytes, fewer than the 8 of the header length")
        length = int.from_bytes(prefix, "little")
        if length > MAX_HEADER or 8 + length > size:
            raise _bad(path, f"its header claims {length} bytes but the file has {size}")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise _bad(path, "its header is not JSON") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    return header, 8 + length


Span = tuple[torch.dtype, list[int], int, int]


def _span(path: Path, name: str, entry: object, data: int, size: int) -> Span:
    """dtype, shape and the absolute byte range of one header entry, all checked."""
    if not isinstance(entry, dict):
        raise _bad(path, f"tensor {name} has no description")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPES:
        raise _bad(path, f"tensor {name} has the unknown dtype {dtype!r}")
    if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise _bad(path, f"tensor {name} has the shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(isinstance(n, int) for n in offsets) and 0 <= offsets[0] <= offsets[1]):
        raise _bad(path, f"tensor {name} has the data offsets {offsets!r}")
    begin, end = data + offsets[0], data + offsets[1]
    if end > size:
        raise _bad(path, f"tensor {name} ends at byte {end} but the file has {size}")
    if end - begin != math.prod(shape) * DTYPES[dtype].itemsize:
        raise _bad(path, f"tensor {name} has {end - begin} bytes for its shape {shape} of {dtype}")
    return DTYPES[dtype], shape, begin, end


def read(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors file `path`, by name."""
    size = path.stat().st_size
    header, data = _header(path, size)
    header.pop("__metadata__", None)
    spans = {name: _span(path, name, entry, data, size) for name, entry in header.items()}
    tensors = {}
    with path.open("rb") as f:
        for name, (dtype, shape, begin, end) in spans.items():
            f.seek(begin)
            raw = bytearray(f.read(end - begin))
            flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            tensors[name] = flat.reshape(shape)
    return tensors
