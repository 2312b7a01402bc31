"""SqueezeNet (Iandola et al. 2016): AlexNet accuracy with 50× fewer parameters, from Fire modules.
The eight Fire modules follow the paper's metaparameters (base_e, incr_e, freq, pct3x3, SR); the
versions differ in the stem and where the max-pools sit. Module names match torchvision's
`squeezenet1_0` / `squeezenet1_1` checkpoints."""
from __future__ import annotations

import torch
from torch import nn

from edgecam.models.nets.blocks import Fire

BASE_E, INCR_E, FREQ = 128, 128, 2  # expand filters of fire i: base_e + incr_e * (i // freq)
PCT_3X3 = 0.5  # share of 3×3 filters among the expand filters
SQUEEZE_RATIO = 0.125  # squeeze filters / expand filters

# version → (stem channels, stem kernel, layout: "F" a Fire module, "P" a 3×3/2 max-pool)
VERSIONS: dict[str, tuple[int, int, str]] = {
    "squeezenet1_0": (96, 7, "PFFFPFFFFPF"),
    "squeezenet1_1": (64, 3, "PFFPFFPFFFF"),
}


def fire_settings(count: int = 8) -> list[tuple[int, int, int]]:
    """(squeeze, expand 1×1, expand 3×3) of each Fire module, from the metaparameters."""
    settings = []
    for i in range(count):
        expand = BASE_E + INCR_E * (i // FREQ)
        e3 = int(expand * PCT_3X3)
        settings.append((int(expand * SQUEEZE_RATIO), expand - e3, e3))
    return settings


class SqueezeNet(nn.Module):
    def __init__(self, version: str = "squeezenet1_1", num_classes: int = 1000,
                 dropout: float = 0.5) -> None:
        super().__init__()
        stem, kernel, layout = VERSIONS[version]
        layers: list[nn.Module] = [nn.Conv2d(3, stem, kernel, stride=2), nn.ReLU(inplace=True)]
        fires = iter(fire_settings(layout.count("F")))
        c_in = stem
        for kind in layout:
            if kind == "P":
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            else:
                squeeze, e1, e3 = next(fires)
                layers.append(Fire(c_in, squeeze, e1, e3))
                c_in = e1 + e3
        self.features = nn.Sequential(*layers)
        # the classifier is a 1×1 conv to the classes, then a global average
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Conv2d(c_in, num_classes, 1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)
