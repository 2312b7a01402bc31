"""EfficientNet-Lite (Tan & Le 2019, the edge variant): MBConv stages without squeeze-excite, ReLU6,
stem and head fixed when scaling. The published PyTorch checkpoints name their modules their own way
(`_conv_stem`, `_blocks.N._depthwise_conv`, ...): `from_published` maps them to these."""
from __future__ import annotations

import math
import re

import torch
from torch import nn

from edgecam.models.nets.blocks import (
    BN_EPS,
    BN_MOMENTUM,
    ConvBnAct,
    InvertedResidual,
    inverted_residual_layers,
    make_divisible,
)

# kernel, stride, expansion, output channels, repeats: the EfficientNet-B0 stages.
STAGES: list[tuple[int, int, int, int, int]] = [
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
]

# Lite fixes the stem and the head whatever the width multiplier.
STEM, HEAD = 32, 1280

# name: (width multiplier, depth multiplier, input resolution)
VARIANTS: dict[str, tuple[float, float, int]] = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite1": (1.0, 1.1, 240),
    "efficientnet_lite2": (1.1, 1.2, 260),
    "efficientnet_lite3": (1.2, 1.4, 280),
    "efficientnet_lite4": (1.4, 1.8, 300),
}


class EfficientNetLite(nn.Module):
    """Stem, MBConv blocks (edgecam.models.nets.blocks' inverted residuals with ReLU6), head,
    pooling, classifier. `stem`, `blocks`, `head` and `classifier` are public: training cuts the
    network between its blocks and puts a classifier of its own on the head. `padding` is that of
    the weights (blocks.PADDINGS): TensorFlow's "same" for timm's ports of Google's Lite3/4."""

    def __init__(
        self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000, dropout: float = 0.2,
        padding: str = "symmetric", bn_eps: float = BN_EPS,
    ) -> None:
        super().__init__()
        norm = {"activation": nn.ReLU6, "bn_eps": bn_eps, "bn_momentum": BN_MOMENTUM}
        self.stem = ConvBnAct(3, STEM, 3, 2, padding=padding, **norm)
        blocks: list[nn.Module] = []
        c_in = STEM
        last = len(STAGES) - 1
        for i, (kernel, stride, expand, channels, repeats) in enumerate(STAGES):
            c_out = make_divisible(channels * width)
            # Lite keeps the first and last stage at one block whatever the depth multiplier.
            n = repeats if i in (0, last) else math.ceil(depth * repeats)
            for j in range(n):
                step = stride if j == 0 else 1
                layers = inverted_residual_layers(c_in, c_in * expand, c_out, kernel, step,
                                                  padding=padding, **norm)
                blocks.append(InvertedResidual(layers, step == 1 and c_in == c_out, "block"))
                c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(ConvBnAct(c_in, HEAD, 1, **norm), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding the classifier sees."""
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


def efficientnet_lite(name: str, num_classes: int = 1000, **conventions: object) -> EfficientNetLite:
    width, depth, _ = VARIANTS[name]
    return EfficientNetLite(width, depth, num_classes, **conventions)


# The published PyTorch checkpoints' names (`_conv_stem`, `_blocks.N._depthwise_conv`, ...) → ours.
_TOP = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0.0", "_bn1": "head.0.1",
        "_fc": "classifier"}
_BLOCK = re.compile(r"_blocks\.(\d+)\.(_expand_conv|_bn0|_depthwise_conv|_bn1|_project_conv|_bn2)\.(.+)")
# (layer, part) of a block's module: the expansion is layer 0 where the block has one.
_IN_BLOCK = {"_expand_conv": (0, 0), "_bn0": (0, 1), "_depthwise_conv": (1, 0), "_bn1": (1, 1),
             "_project_conv": (2, 0), "_bn2": (2, 1)}


def from_published(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict of the published EfficientNet-Lite checkpoints under this module's names;
    keys it does not know pass through unchanged (strict loading then names them)."""
    expands = {m.group(1) for key in state if (m := _BLOCK.fullmatch(key)) and m.group(2) == "_expand_conv"}
    renamed = {}
    for published, value in state.items():
        top, _, rest = published.partition(".")
        block = _BLOCK.fullmatch(published)
        key = published
        if block is not None:
            index, module, leaf = block.groups()
            layer, part = _IN_BLOCK[module]
            layer -= 0 if index in expands else 1
            key = f"blocks.{index}.block.{layer}.{part}.{leaf}"
        elif top in _TOP:
            key = f"{_TOP[top]}.{rest}"
        renamed[key] = value
    return renamed
