"""The building blocks every network of the zoo is made of.

Names inside the blocks follow torchvision (`Conv2dNormActivation` is a Sequential of conv, bn, act;
`SqueezeExcitation` has `fc1`/`fc2`; `Fire` has `squeeze`/`expand1x1`/`expand3x3`), so networks built
from them load the published torchvision checkpoints with every key matched."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

Activation = Callable[..., nn.Module]

# torchvision's MobileNetV3 / TF EfficientNet batch-norm settings
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
# How a k×k convolution pads its input: "symmetric" is PyTorch's (k-1)/2 on every side;
# "same" is TensorFlow's, which the weights trained there need: the output has ⌈n/stride⌉ pixels
# and the padding that takes is split with the extra pixel at the bottom/right.
PADDINGS = ("symmetric", "same")


def make_divisible(value: float, divisor: int = 8, minimum: int | None = None) -> int:
    """Round a scaled channel count to a multiple of `divisor` (hardware-friendly), never more than
    10% below `value`: the rule of the MobileNet/EfficientNet reference code for width multipliers."""
    minimum = divisor if minimum is None else minimum
    rounded = max(minimum, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


class SamePadConv2d(nn.Conv2d):
    """A strided convolution with TensorFlow's "same" padding: on an even input a 3×3/2 conv pads
    one pixel at the bottom/right only, on an odd one a pixel on every side (the size decides, so
    it is worked out per input). The module is an nn.Conv2d with the same parameters, so state
    dicts and the profiler see an ordinary convolution."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1,
                 bias: bool = False) -> None:
        if kernel < stride:
            raise ValueError(f"'same' padding needs kernel ≥ stride, got {kernel}×{kernel}/{stride}")
        super().__init__(c_in, c_out, kernel, stride, 0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for n, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            # (⌈n/s⌉ - 1)·s + k - n, in integers; int() makes it a constant of a traced export,
            # whose input size is fixed
            total = int((-n) % s + k - s)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def conv2d(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False,
           padding: str = "symmetric") -> nn.Conv2d:
    """A k×k convolution padded the PyTorch or the TensorFlow way (PADDINGS). Stride 1 pads
    (k-1)/2 on every side in both, so only strided convolutions differ."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    if padding == "same" and stride > 1:
        return SamePadConv2d(c_in, c_out, kernel, stride, groups, bias)
    return nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=bias)


class ConvBnAct(nn.Sequential):
    """k×k convolution (`groups` = channels makes it depthwise), batch norm, optional activation."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 activation: Activation | None = nn.ReLU, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1, padding: str = "symmetric") -> None:
        layers: list[nn.Module] = [
            conv2d(c_in, c_out, kernel, stride, groups, padding=padding),
            nn.BatchNorm2d(c_out, eps=bn_eps, momentum=bn_momentum),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


def depthwise_separable(c_in: int, c_out: int, stride: int, activation: Activation = nn.ReLU,
                        kernel: int = 3, **conv: object) -> nn.Sequential:
    """MobileNetV1's factorisation of a standard k×k conv: a depthwise k×k conv filters each channel,
    a pointwise 1×1 conv combines them. Cost ratio vs standard: 1/C_out + 1/k². `conv` goes to both
    ConvBnAct (bn_eps, padding)."""
    return nn.Sequential(
        ConvBnAct(c_in, c_in, kernel, stride, groups=c_in, activation=activation, **conv),
        ConvBnAct(c_in, c_out, 1, activation=activation, **conv),
    )


class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al.): global pool → 1×1 squeeze → act → 1×1 excite → gate."""

    def __init__(self, channels: int, squeezed: int, activation: Activation = nn.ReLU,
                 gate: Activation = nn.Hardsigmoid) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.activation = activation()
        self.scale_activation = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


def inverted_residual_layers(c_in: int, hidden: int, c_out: int, kernel: int, stride: int,
                             activation: Activation, se_channels: int | None = None,
                             bn_eps: float = 1e-5, bn_momentum: float = 0.1,
                             split_projection: bool = False, padding: str = "symmetric") -> list[nn.Module]:
    """The layers of an inverted residual with linear bottleneck (MobileNetV2): 1×1 expand to `hidden`
    (skipped when hidden == c_in), k×k depthwise (the only strided layer, so the only one `padding`
    changes), optional squeeze-excite (V3), 1×1 linear projection.

    `split_projection` gives the projection as separate conv and bn entries (torchvision's V2
    layout) instead of one ConvBnAct without activation (its V3 layout)."""
    norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
    layers: list[nn.Module] = []
    if hidden != c_in:
        layers.append(ConvBnAct(c_in, hidden, 1, activation=activation, **norm))
    layers.append(ConvBnAct(hidden, hidden, kernel, stride, groups=hidden, activation=activation,
                            padding=padding, **norm))
    if se_channels is not None:
        layers.append(SqueezeExcitation(hidden, se_channels))
    if split_projection:
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out, bn_eps, bn_momentum)]
    else:
        layers.append(ConvBnAct(hidden, c_out, 1, activation=None, **norm))
    return layers


class InvertedResidual(nn.Module):
    """The layers of `inverted_residual_layers` as one Sequential, named `body` (torchvision calls it
    `conv` in V2 and `block` in V3), plus the identity shortcut when the shape is kept."""

    def __init__(self, layers: list[nn.Module], residual: bool, body: str) -> None:
        super().__init__()
        self.body = body
        self.add_module(body, nn.Sequential(*layers))
        self.use_res_connect = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = getattr(self, self.body)(x)
        return x + y if self.use_res_connect else y


class Fire(nn.Module):
    """SqueezeNet's Fire module: a 1×1 squeeze layer feeding parallel 1×1 and 3×3 expand layers."""

    def __init__(self, c_in: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(c_in, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet: interleave the channels of `groups` groups so information crosses between them."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
