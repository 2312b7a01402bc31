"""Published checkpoints in their publishers' own formats, converted to edgecam's module names:
Keras HDF5 (Google's MobileNet releases), safetensors (timm's, or edgecam's own names), and
torch checkpoints (torchvision's names, which edgecam's networks share; edgecam.models.build
reads those as they are). The format is told by the file's first bytes, not its name."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgecam.models.convert import keras, safetensors, timm
from edgecam.models.convert.layers import assign, checked, unfit

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def sniff(path: Path) -> str:
    """"hdf5", "safetensors" (an 8-byte length, then the JSON header) or "torch" (anything else)."""
    with path.open("rb") as f:
        head = f.read(9)
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    return "safetensors" if head[8:9] == b"{" else "torch"


def state_dict(path: Path, net: nn.Module, what: str) -> dict[str, torch.Tensor] | None:
    """The weights in `path` as a state dict of `net` (`what` names it in errors); None for a
    torch checkpoint, which is stored and loaded as it is."""
    kind = sniff(path)
    if kind == "hdf5":
        return assign(keras.layers(path), net, path, what)
    if kind == "torch":
        return None
    tensors = safetensors.read(path)
    if timm.is_timm(tensors):
        try:
            ordered = timm.layers(tensors)
        except ValueError as e:
            raise unfit(path, what, str(e)) from None
        return assign(ordered, net, path, what)
    return checked(tensors, net, path, what)
