"""MobileNetV2 (Sandler et al. 2018): inverted residuals with linear bottlenecks, ReLU6.
Module names match torchvision's `mobilenet_v2` checkpoints. The widths are those Google's
TensorFlow release publishes (0.35-1.4); the channel rounding is its `_make_divisible`."""
from __future__ import annotations

import torch
from torch import nn

from edgecam.models.nets.blocks import (
    ConvBnAct,
    InvertedResidual,
    inverted_residual_layers,
    make_divisible,
)

# expansion t, output channels c, repeats n, first stride s (paper, Table 2)
SETTING: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
STEM = 32
LAST = 1280
WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


class MobileNetV2(nn.Module):
    """`padding` and `bn_eps` are those of the weights' training framework (blocks.PADDINGS):
    TensorFlow's "same" and 1e-3 for Google's release, PyTorch's defaults otherwise."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2,
                 padding: str = "symmetric", bn_eps: float = 1e-5) -> None:
        super().__init__()
        c_in = make_divisible(STEM * width)
        last = make_divisible(LAST * max(1.0, width))  # the paper never thins the last layer
        layers: list[nn.Module] = [ConvBnAct(3, c_in, 3, 2, activation=nn.ReLU6, padding=padding,
                                             bn_eps=bn_eps)]
        for t, c, n, s in SETTING:
            c_out = make_divisible(c * width)
            for i in range(n):
                stride = s if i == 0 else 1
                body = inverted_residual_layers(c_in, c_in * t, c_out, 3, stride, nn.ReLU6, bn_eps=bn_eps,
                                                split_projection=True, padding=padding)
                layers.append(InvertedResidual(body, stride == 1 and c_in == c_out, "conv"))
                c_in = c_out
        layers.append(ConvBnAct(c_in, last, 1, activation=nn.ReLU6, bn_eps=bn_eps))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))
