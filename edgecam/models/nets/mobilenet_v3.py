"""MobileNetV3 (Howard et al. 2019), Large and Small: inverted residuals found by architecture
search, squeeze-excite in some blocks, hard-swish in the deeper half. Module names match
torchvision's `mobilenet_v3_large` / `mobilenet_v3_small` checkpoints."""
from __future__ import annotations

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

RE, HS = nn.ReLU, nn.Hardswish
# kernel, expanded channels, output channels, squeeze-excite, activation, stride (paper, Tables 1-2)
Row = tuple[int, int, int, bool, type[nn.Module], int]
LARGE: list[Row] = [
    (3, 16, 16, False, RE, 1),
    (3, 64, 24, False, RE, 2),
    (3, 72, 24, False, RE, 1),
    (5, 72, 40, True, RE, 2),
    (5, 120, 40, True, RE, 1),
    (5, 120, 40, True, RE, 1),
    (3, 240, 80, False, HS, 2),
    (3, 200, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 480, 112, True, HS, 1),
    (3, 672, 112, True, HS, 1),
    (5, 672, 160, True, HS, 2),
    (5, 960, 160, True, HS, 1),
    (5, 960, 160, True, HS, 1),
]
SMALL: list[Row] = [
    (3, 16, 16, True, RE, 2),
    (3, 72, 24, False, RE, 2),
    (3, 88, 24, False, RE, 1),
    (5, 96, 40, True, HS, 2),
    (5, 240, 40, True, HS, 1),
    (5, 240, 40, True, HS, 1),
    (5, 120, 48, True, HS, 1),
    (5, 144, 48, True, HS, 1),
    (5, 288, 96, True, HS, 2),
    (5, 576, 96, True, HS, 1),
    (5, 576, 96, True, HS, 1),
]
# variant → (rows, width of the classifier's hidden layer)
VARIANTS: dict[str, tuple[list[Row], int]] = {
    "mobilenet_v3_large": (LARGE, 1280),
    "mobilenet_v3_small": (SMALL, 1024),
}
STEM = 16


class MobileNetV3(nn.Module):
    def __init__(self, rows: list[Row], last: int, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        norm = {"bn_eps": BN_EPS, "bn_momentum": BN_MOMENTUM}
        c_in = STEM
        layers: list[nn.Module] = [ConvBnAct(3, c_in, 3, 2, activation=HS, **norm)]
        for kernel, expanded, channels, se, activation, stride in rows:
            hidden, c_out = expanded, channels
            squeezed = make_divisible(hidden // 4) if se else None
            body = inverted_residual_layers(c_in, hidden, c_out, kernel, stride, activation, squeezed,
                                            **norm)
            layers.append(InvertedResidual(body, stride == 1 and c_in == c_out, "block"))
            c_in = c_out
        layers.append(ConvBnAct(c_in, 6 * c_in, 1, activation=HS, **norm))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(6 * c_in, last), HS(inplace=True), nn.Dropout(dropout, inplace=True),
            nn.Linear(last, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def mobilenet_v3(name: str, num_classes: int = 1000) -> MobileNetV3:
    rows, last = VARIANTS[name]
    return MobileNetV3(rows, last, num_classes=num_classes)
