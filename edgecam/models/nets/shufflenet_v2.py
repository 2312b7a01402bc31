"""ShuffleNetV2 (Ma et al. 2018): each unit splits the channels in two, transforms one half with
1×1 → depthwise 3×3 → 1×1 (or both halves when downsampling), concatenates and shuffles the
channels. Module names match torchvision's `shufflenet_v2_x*` checkpoints."""
from __future__ import annotations

import torch
from torch import nn

from edgecam.models.nets.blocks import ConvBnAct, channel_shuffle

REPEATS = (4, 8, 4)  # units in stages 2, 3, 4
# variant → channels of conv1, stage 2, 3, 4 and conv5 (paper, Table 5)
VARIANTS: dict[str, tuple[int, int, int, int, int]] = {
    "shufflenet_v2_x0_5": (24, 48, 96, 192, 1024),
    "shufflenet_v2_x1_0": (24, 116, 232, 464, 1024),
    "shufflenet_v2_x1_5": (24, 176, 352, 704, 1024),
    "shufflenet_v2_x2_0": (24, 244, 488, 976, 2048),
}


def _pointwise(c_in: int, c_out: int) -> list[nn.Module]:
    # torchvision keeps conv, bn, act flat in the branch: unpack the block
    return list(ConvBnAct(c_in, c_out, 1))


def _depthwise(channels: int, stride: int) -> list[nn.Module]:
    return list(ConvBnAct(channels, channels, 3, stride, groups=channels, activation=None))


class InvertedResidual(nn.Module):
    """The ShuffleNetV2 unit; stride 2 transforms both halves (branch1 and branch2) to downsample."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = c_out // 2
        if stride > 1:
            self.branch1 = nn.Sequential(*_depthwise(c_in, stride), *_pointwise(c_in, half))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(*_pointwise(c_in if stride > 1 else half, half),
                                     *_depthwise(half, stride), *_pointwise(half, half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)
            out = torch.cat((kept, self.branch2(x)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, variant: str = "shufflenet_v2_x1_0", num_classes: int = 1000) -> None:
        super().__init__()
        stem, *stages, last = VARIANTS[variant]
        self.conv1 = ConvBnAct(3, stem, 3, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = stem
        for index, (repeats, c_out) in enumerate(zip(REPEATS, stages, strict=True), start=2):
            units = [InvertedResidual(c_in, c_out, 2)]
            units += [InvertedResidual(c_out, c_out, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{index}", nn.Sequential(*units))
            c_in = c_out
        self.conv5 = ConvBnAct(c_in, last, 1)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean([2, 3]))
