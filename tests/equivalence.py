"""What the converter tests (test_convert_*) share: reference networks with weights of a trained
net's scales, frames, and the comparison of edgecam's logits with a reference's."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgecam.models import build, store

MAX_DIFF = 1e-3


def realistic(net: nn.Module, size: int) -> nn.Module:
    """`net` with seeded random weights of a trained net's scales (an untrained net's batch norms
    are identities and its logits nearly constant, which would hide a wrong mapping) in eval mode."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0, (2 / fan_in) ** 0.5, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-0.1, 0.1, generator=generator)
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
        net.eval()
        spread = float(net(torch.randn(2, 3, size, size, generator=generator)).std())
        last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
        last.weight /= spread
        last.bias /= spread
    return net


def frames(size: int, count: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), np.uint8)


def normalised(spec: store.ModelSpec, images: np.ndarray) -> torch.Tensor:
    """What the reference sees: the frames normalised as the manifest says, NCHW."""
    x = (images.astype(np.float32) - np.float32(spec.mean)) / np.float32(spec.std)
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def edgecam_logits(spec: store.ModelSpec, images: np.ndarray) -> np.ndarray:
    """The logits of edgecam's build of `spec` with its stored weights, from uint8 frames."""
    with torch.inference_mode():
        return build.wrapped(spec)(torch.from_numpy(images)).numpy()


def assert_same_logits(ours: np.ndarray, reference: np.ndarray) -> float:
    diff = float(np.abs(ours - reference).max())
    assert diff <= MAX_DIFF, f"max |Δlogit| {diff:.2e}"
    top5 = np.argsort(-reference, axis=1)[:, :5]
    assert (np.argsort(-ours, axis=1)[:, :5] == top5).all()
    return diff
