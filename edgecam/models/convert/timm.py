"""timm's checkpoints (safetensors on the Hugging Face hub) of the networks built by its
EfficientNet builder: MobileNetV1, MobileNetV2, EfficientNet-Lite. Their modules are named by role
(`conv_stem`, `blocks.<stage>.<block>.conv_dw`, ...); this puts them in forward order, which is the
order of edgecam's own modules (edgecam.models.convert.layers pairs them)."""
from __future__ import annotations

import torch

from edgecam.models.convert.layers import Layer

# top-level modules in forward order; `blocks` holds the stages
TOP = ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "classifier")
# modules of a block in forward order: a depthwise separable block (MobileNetV1, the first block
# of MobileNetV2 and Lite) has no linear projection `conv_pwl`, an inverted residual has one
SEPARABLE = ("conv_dw", "bn1", "conv_pw", "bn2")
INVERTED = ("conv_pw", "bn1", "conv_dw", "bn2", "conv_pwl", "bn3")


def is_timm(state: dict[str, torch.Tensor]) -> bool:
    return "conv_stem.weight" in state


def _position(module: str, projected: set[tuple[str, str]]) -> tuple:
    """Where `module` (a dotted path) runs in the forward pass."""
    parts = module.split(".")
    unknown = ValueError(f"its module {module} is not one of a timm MobileNet or EfficientNet-Lite")
    if parts[0] not in TOP:
        raise unknown
    if parts[0] != "blocks":
        return (TOP.index(parts[0]),)
    if len(parts) != 4 or not (parts[1].isdigit() and parts[2].isdigit()):
        raise unknown
    order = INVERTED if (parts[1], parts[2]) in projected else SEPARABLE
    if parts[3] not in order:
        raise unknown
    return (TOP.index("blocks"), int(parts[1]), int(parts[2]), order.index(parts[3]))


def layers(state: dict[str, torch.Tensor]) -> list[Layer]:
    """The modules of a timm state dict in forward order, each with its tensors; ValueError names
    a module that none of these networks has."""
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        grouped.setdefault(module, {})[leaf] = value
    projected = {tuple(m.split(".")[1:3]) for m in grouped
                 if m.startswith("blocks.") and m.endswith(".conv_pwl")}
    ordered = sorted(grouped, key=lambda module: _position(module, projected))
    return [Layer(module, grouped[module]) for module in ordered]
