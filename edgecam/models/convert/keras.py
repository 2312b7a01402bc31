"""Keras' HDF5 weights files (Google's MobileNetV1 and V2 releases, `mobilenet_<α>_<ρ>_tf.h5`):
the legacy layout Keras still reads, a group per layer in the root's `layer_names` order (the
forward order) whose `weight_names` attribute lists its tensors. Keras pairs them with its layers
by that order, not by name, and so does edgecam (edgecam.models.convert.layers, which also
transposes the kernels: Keras 3 names a depthwise kernel `kernel` as it does any other).

The file is untrusted: opened read-only with h5py, external links, external storage and virtual
datasets are refused (they would read other files), and each tensor's size is checked before it
is read."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgecam.base.errors import ModelError
from edgecam.models.convert.layers import Layer

MAX_TENSOR = 256 << 20  # bytes: the largest MobileNet tensor has 5 MB
# Keras' name of a tensor (Keras 2's depthwise_kernel is Keras 3's kernel) → torch's
ROLES = {"kernel": "weight", "depthwise_kernel": "weight", "bias": "bias", "gamma": "weight",
         "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


def _names(node, attribute: str) -> list[str]:
    """A list-of-names attribute, which Keras splits into `name0`, `name1`, ... when it is long."""
    if attribute in node.attrs:
        chunks = [node.attrs[attribute]]
    else:
        chunks = []
        while f"{attribute}{len(chunks)}" in node.attrs:
            chunks.append(node.attrs[f"{attribute}{len(chunks)}"])
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for chunk in chunks for n in chunk]


def _layer(path: Path, group, name: str, weights: list[str]) -> Layer:
    import h5py

    tensors = {}
    for weight in weights:
        link = group.get(weight, getlink=True)
        dataset = group.get(weight) if isinstance(link, h5py.HardLink) else None
        if not isinstance(dataset, h5py.Dataset):
            raise ModelError(f"weights file {path} lists the tensor {weight} of layer {name} but does "
                             "not hold it: the file is incomplete, download it again")
        if dataset.external or dataset.is_virtual or dataset.dtype.kind != "f" or dataset.nbytes > MAX_TENSOR:
            raise ModelError(f"weights file {path}: tensor {weight} of layer {name} is not a plain "
                             "array of floats in the file; it is not a Keras weights file")
        role = weight.rsplit("/", 1)[-1].removesuffix(":0")
        if role not in ROLES:
            raise ModelError(f"weights file {path}: layer {name} holds a {role}, which no layer of "
                             "a MobileNet has")
        tensors[ROLES[role]] = torch.from_numpy(np.asarray(dataset[()], dtype=np.float32))
    return Layer(name, tensors, keras=True)


def layers(path: Path) -> list[Layer]:
    """The layers with weights of the Keras file `path`, in its forward order."""
    try:
        import h5py
    except ImportError:
        raise ModelError(f"reading the Keras weights file {path} needs h5py: "
                         "pip install 'edgecam[keras-weights]' (or pip install h5py)") from None
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            names = _names(root, "layer_names")
            if not names:
                raise ModelError(f"weights file {path} is HDF5 but has no Keras layer list "
                                 "(layer_names): it is not a Keras weights file")
            found = []
            for name in names:
                link = root.get(name, getlink=True)
                if not isinstance(link, h5py.HardLink) or not isinstance(root.get(name), h5py.Group):
                    raise ModelError(f"weights file {path} lists the layer {name} but does not hold "
                                     "it: the file is incomplete, download it again")
                weights = _names(root[name], "weight_names")
                if weights:
                    found.append(_layer(path, root[name], name, weights))
            return found
    except OSError as e:  # not HDF5, truncated, unreadable
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f"weights file {path} is not a readable HDF5 file ({reason}): "
                         "download it again") from None
