"""The one rule every converter ends in: a published file's layers, taken in the network's forward
order, are paired with the network's own conv, batch-norm and linear modules in that order, and
every tensor must have exactly the shape of the one it replaces. The first that does not is named."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgecam.base.errors import ModelError

# the modules that hold weights, in every network of edgecam.models.nets
WEIGHTED = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


@dataclass(frozen=True)
class Layer:
    """One layer of a published file: its name there and its tensors under torch's names (weight,
    bias, running_mean, running_var, num_batches_tracked). `keras` says its kernels are in Keras'
    layout (kernel height, width, in, out; a depthwise one height, width, channels, multiplier),
    which only the module they go to tells apart: they are transposed when paired."""

    name: str
    tensors: dict[str, torch.Tensor]
    keras: bool = False


def weighted_modules(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules of `net` that hold weights, in the order they are registered: the forward order
    of the networks of edgecam.models.nets."""
    return [(name, module) for name, module in net.named_modules() if isinstance(module, WEIGHTED)]


def from_keras(kernel: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """A Keras kernel in the layout of torch's `module`: a conv's HWIO → OIHW, a depthwise conv's
    (h, w, channels, multiplier) → (channels·multiplier, 1, h, w), a dense (in, out) → (out, in).
    Keras' MobileNet classifies with a 1×1 conv, which is a linear layer's (in, out) too."""
    if isinstance(module, nn.Linear):
        pointwise = kernel.dim() == 2 or (kernel.dim() == 4 and kernel.shape[:2] == (1, 1))
        return kernel.reshape(kernel.shape[-2:]).t() if pointwise else kernel
    if kernel.dim() != 4:
        return kernel
    if module.groups > 1:
        return kernel.permute(2, 3, 0, 1).reshape(-1, 1, *kernel.shape[:2])
    return kernel.permute(3, 2, 0, 1)


def unfit(path: Path, what: str, detail: str) -> ModelError:
    """The one-line error for weights in `path` that do not fit the network `what` names."""
    return ModelError(f"weights {path} do not fit {what}: {detail}; check that the file is the "
                      "model's published checkpoint")


State = dict[str, torch.Tensor]


def checked(state: State, net: nn.Module, path: Path, what: str) -> State:
    """`state`, a state dict under `net`'s own names, once each of its tensors has been found to
    have the name and shape of one of `net`'s, and the other way round."""
    wanted = net.state_dict()
    for key, target in wanted.items():
        if key not in state:
            raise unfit(path, what, f"it has no {key} {tuple(target.shape)}")
        if state[key].shape != target.shape:
            raise unfit(path, what, f"its {key} {tuple(state[key].shape)} is not the shape of "
                        f"the network's {tuple(target.shape)}")
    extra = next((key for key in state if key not in wanted), None)
    if extra is not None:
        raise unfit(path, what, f"it has a {extra}, which the network has not")
    return state


def assign(layers: list[Layer], net: nn.Module, path: Path, what: str) -> State:
    """The state dict of `net` made of `layers` (read from `path`), paired in order; `what` names
    the network in the one-line error for the first tensor that does not fit."""
    modules = weighted_modules(net)
    fail = functools.partial(unfit, path, what)
    state: State = {}
    for layer, (name, module) in zip(layers, modules, strict=False):
        wanted = module.state_dict()
        for key, target in wanted.items():
            value = layer.tensors.get(key)
            if value is None and key == "num_batches_tracked":  # Keras has no such counter
                value = torch.zeros((), dtype=torch.long)
            if value is None:
                raise fail(f"layer {layer.name} has no {key} for {name}.{key} {tuple(target.shape)}")
            if layer.keras and key == "weight" and not isinstance(module, nn.BatchNorm2d):
                value = from_keras(value, module)
            value = value.to(target.dtype).contiguous()
            if value.shape != target.shape:
                raise fail(f"{layer.name}.{key} {tuple(value.shape)} is not the shape of "
                           f"{name}.{key} {tuple(target.shape)}")
            state[f"{name}.{key}"] = value
        extra = sorted(set(layer.tensors) - set(wanted))
        if extra:
            raise fail(f"layer {layer.name} has a {extra[0]}, which {name} has not")
    if len(layers) < len(modules):
        raise fail(f"the file ends after {len(layers)} layers; nothing is left for {modules[len(layers)][0]} "
                   f"(and {len(modules) - len(layers) - 1} more)")
    if len(layers) > len(modules):
        raise fail(f"layer {layers[len(modules)].name} (and {len(layers) - len(modules) - 1} more) "
                   f"is left over after the network's {len(modules)} layers")
    return state
