"""Parameters and multiply-accumulates (MACs) of a network, counted from the network itself: one
forward pass with hooks on every convolution and linear layer records the shapes it really sees.
Imports torch (only `models info` and the build use it; `models list` reads the cached totals)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

KINDS = ("depthwise", "pointwise", "standard", "grouped", "linear")


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # one of KINDS
    kernel: tuple[int, int]
    c_in: int
    c_out: int
    output: tuple[int, ...]  # output shape without the batch axis
    params: int  # weights and bias of this layer
    macs: int

    def row(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Profile:
    input: int
    params_total: int  # every trainable parameter, batch norm's scale and shift included
    layers: list[Layer]

    @property
    def params(self) -> int:
        """Weights and biases of the conv and linear layers: what the papers count."""
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def by_kind(self) -> dict[str, dict[str, int]]:
        """MACs and params per kind of layer (depthwise, pointwise, standard conv, linear)."""
        split = {kind: {"layers": 0, "params": 0, "macs": 0} for kind in KINDS}
        for layer in self.layers:
            entry = split[layer.kind]
            entry["layers"] += 1
            entry["params"] += layer.params
            entry["macs"] += layer.macs
        return {kind: entry for kind, entry in split.items() if entry["layers"]}

    def summary(self) -> dict:
        return {"input": self.input, "params": self.params, "params_total": self.params_total,
                "macs": self.macs, "by_kind": self.by_kind()}


def conv_kind(conv: nn.Conv2d) -> str:
    if conv.groups > 1:
        return "depthwise" if conv.groups == conv.in_channels == conv.out_channels else "grouped"
    return "pointwise" if conv.kernel_size == (1, 1) else "standard"


def _record(name: str, layers: list[Layer]):
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        params = sum(p.numel() for p in module.parameters(recurse=False))
        shape = tuple(output.shape[1:])
        if isinstance(module, nn.Conv2d):
            # each output element: (c_in / groups) · kh · kw multiply-adds
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            layers.append(Layer(name, conv_kind(module), tuple(module.kernel_size), module.in_channels,
                                module.out_channels, shape, params, per_output * output[0].numel()))
        else:
            layers.append(Layer(name, "linear", (1, 1), module.in_features, module.out_features, shape,
                                params, module.in_features * module.out_features))
    return hook


def profile(net: nn.Module, size: int) -> Profile:
    """Count `net` on one size×size RGB image (MACs of conv and linear layers; activations,
    batch norm and pooling are not multiply-accumulates and are left out, as in the papers).
    A network on the meta device is counted from shapes alone, without computing anything."""
    layers: list[Layer] = []
    handles = [module.register_forward_hook(_record(name, layers))
               for name, module in net.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))]
    was_training = net.training
    device = next(net.parameters()).device
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, 3, size, size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    return Profile(size, sum(p.numel() for p in net.parameters()), layers)


def profile_network(net_name: str, classes: int, size: int) -> Profile:
    """The profile of a named network, built on the meta device: shapes only, no weights, fast."""
    from edgecam.models import nets

    with torch.device("meta"):
        net = nets.create(net_name, classes)
    return profile(net, size)


def separable_cost(h: int, w: int, k: int, c_in: int, c_out: int) -> dict[str, float]:
    """The MobileNetV1 arithmetic: a standard k×k conv over an h×w×c_in map costs h·w·c_in·c_out·k²
    MACs; depthwise (h·w·c_in·k²) + pointwise (h·w·c_in·c_out) costs 1/c_out + 1/k² of that."""
    standard = h * w * c_in * c_out * k * k
    depthwise = h * w * c_in * k * k
    pointwise = h * w * c_in * c_out
    return {
        "standard_macs": standard, "depthwise_macs": depthwise, "pointwise_macs": pointwise,
        "separable_macs": depthwise + pointwise, "ratio": (depthwise + pointwise) / standard,
        "formula": 1 / c_out + 1 / (k * k),
        "standard_params": c_in * c_out * k * k, "separable_params": c_in * k * k + c_in * c_out,
    }
