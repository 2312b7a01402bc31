"""MobileNetV1 (Howard et al. 2017): a standard 3×3 stem, then 13 depthwise separable layers.
The width multiplier α thins every layer; the resolution multiplier ρ is just the input size
(the network is fully convolutional up to the global pool), set per model in the manifest.

The activation is ReLU6, as in Google's TensorFlow release and timm's checkpoint (the paper says
ReLU; every published set of weights was trained with ReLU6)."""
from __future__ import annotations

import torch
from torch import nn

from edgecam.models.nets.blocks import ConvBnAct, depthwise_separable, make_divisible

STEM = 32
# output channels, stride of each depthwise separable layer (paper, Table 1)
LAYERS: list[tuple[int, int]] = [
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
]
WIDTHS = (0.25, 0.5, 0.75, 1.0)


class MobileNetV1(nn.Module):
    """`padding` and `bn_eps` are those of the weights' training framework (blocks.PADDINGS):
    TensorFlow's "same" and 1e-3 for Google's release, PyTorch's defaults otherwise."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2,
                 padding: str = "symmetric", bn_eps: float = 1e-5) -> None:
        super().__init__()
        conv = {"activation": nn.ReLU6, "padding": padding, "bn_eps": bn_eps}
        c_in = make_divisible(STEM * width)
        layers: list[nn.Module] = [ConvBnAct(3, c_in, 3, 2, **conv)]
        for channels, stride in LAYERS:
            c_out = make_divisible(channels * width)
            layers.append(depthwise_separable(c_in, c_out, stride, **conv))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
