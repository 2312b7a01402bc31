"""The networks, in plain torch, by builder name (the `net` of a manifest entry)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from edgecam.nets.efficientnet_lite import VARIANTS as _LITE, efficientnet_lite

# builder name → factory(num_classes) returning an untrained network
NETWORKS: dict[str, Callable[[int], nn.Module]] = {
    name: (lambda classes, name=name: efficientnet_lite(name, classes)) for name in _LITE
}


def create(net: str, num_classes: int = 1000) -> nn.Module:
    if net not in NETWORKS:
        raise KeyError(f"no network builder '{net}' (known: {', '.join(NETWORKS)})")
    return NETWORKS[net](num_classes)
