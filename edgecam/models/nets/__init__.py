"""The networks, in plain torch, by builder name (the `net` of a manifest entry)."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from edgecam.models.nets import (
    efficientnet_lite,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    shufflenet_v2,
    squeezenet,
)

Builder = Callable[..., nn.Module]

# builder name → factory(num_classes, **conventions) returning an untrained network. The families
# Google released in TensorFlow take the conventions of the weights: padding and bn_eps.
NETWORKS: dict[str, Builder] = {
    **{f"mobilenet_v1_{w}": (lambda classes, w=w, **conv: mobilenet_v1.MobileNetV1(w, classes, **conv))
       for w in mobilenet_v1.WIDTHS},
    **{f"mobilenet_v2_{w}": (lambda classes, w=w, **conv: mobilenet_v2.MobileNetV2(w, classes, **conv))
       for w in mobilenet_v2.WIDTHS},
    **{name: (lambda classes, name=name: mobilenet_v3.mobilenet_v3(name, classes))
       for name in mobilenet_v3.VARIANTS},
    **{name: (lambda classes, name=name: squeezenet.SqueezeNet(name, classes))
       for name in squeezenet.VERSIONS},
    **{name: (lambda classes, name=name: shufflenet_v2.ShuffleNetV2(name, classes))
       for name in shufflenet_v2.VARIANTS},
    **{name: (lambda classes, name=name, **conv: efficientnet_lite.efficientnet_lite(name, classes, **conv))
       for name in efficientnet_lite.VARIANTS},
}


def create(net: str, num_classes: int = 1000, **conventions: object) -> nn.Module:
    """An untrained network; `conventions` (padding, bn_eps) are those its weights were trained with."""
    if net not in NETWORKS:
        raise KeyError(f"no network builder '{net}' (known: {', '.join(NETWORKS)})")
    return NETWORKS[net](num_classes, **conventions)


# builder-name prefix → the mapping of its published checkpoints' keys to the network's own
PUBLISHED_LAYOUTS: dict[str, Callable[[dict], dict]] = {
    "efficientnet_lite": efficientnet_lite.from_published,
}


def published_state(net: str, state: dict) -> dict:
    """`state` under the module names of network `net` (a checkpoint in its publisher's layout)."""
    for prefix, convert in PUBLISHED_LAYOUTS.items():
        if net.startswith(prefix):
            return convert(state)
    return state
