"""The network zoo: checkpoint compatibility, the papers' parameter and MAC counts, and exports that
agree with eager torch for every network."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import needs
from torch import nn

try:  # the [dev] extra
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:
    needs("the Python module hypothesis", "hypothesis", pip=True)

from edgecam.models import artifacts, build, nets, profiler, store
from edgecam.models.nets.blocks import channel_shuffle, conv2d, make_divisible

DATA = Path(__file__).parent / "data"

# tests/data/torchvision_state_keys.json holds {name: {key: shape}} of torchvision 0.29.1's models,
# made in a separate venv (torchvision cannot be installed beside this torch) with:
#   {n: {k: list(v.shape) for k, v in getattr(torchvision.models, n)(weights=None).state_dict().items()}}
TORCHVISION = json.loads((DATA / "torchvision_state_keys.json").read_text())
OURS = {"mobilenet_v2": "mobilenet_v2_1.0"}


@pytest.mark.parametrize("name", [n for n in TORCHVISION if not n.startswith("_")])
def test_state_dict_matches_torchvision_checkpoint(name: str) -> None:
    net = nets.create(OURS.get(name, name))
    ours = {key: list(value.shape) for key, value in net.state_dict().items()}
    assert ours == TORCHVISION[name]
    # a checkpoint with exactly torchvision's keys and shapes loads with every key matched
    checkpoint = {key: torch.zeros(shape) for key, shape in TORCHVISION[name].items()}
    net.load_state_dict(checkpoint, strict=True)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_efficientnet_lite_checkpoints_load_with_every_key(name: str) -> None:
    spec = store.get(name)
    net = build.untrained(spec)
    build.load_weights(net, store.weights_file(spec), spec)  # strict=True inside


# name, input, paper params (M), paper MACs (M); tolerance 3%
PAPERS = [
    ("mobilenet_v1_1.0", 224, 4.2, 569),   # MobileNetV1, Table 8
    ("mobilenet_v1_0.75", 224, 2.6, 325),  # Table 6
    ("mobilenet_v1_0.5", 224, 1.3, 149),
    ("mobilenet_v1_0.25", 224, None, 41),  # 0.46M: the paper rounds to 0.5M
    ("mobilenet_v1_1.0", 192, 4.2, 418),   # Table 7, resolution multiplier
    ("mobilenet_v1_1.0", 160, 4.2, 290),
    ("mobilenet_v1_1.0", 128, 4.2, 186),
    ("mobilenet_v2_1.0", 224, 3.4, 300),   # MobileNetV2, Table 4
    ("mobilenet_v2_1.4", 224, None, 585),  # Table 4 (its 6.9M params are not the 6.06M of Google's release)
    ("mobilenet_v3_large", 224, 5.4, 219), # MobileNetV3, Table 3
    ("mobilenet_v3_small", 224, 2.5, 56),
    ("shufflenet_v2_x1_0", 224, 2.3, 146), # ShuffleNetV2, Table 5
    ("squeezenet1_0", 224, 1.25, None),    # SqueezeNet, Table 2 (1,248,424)
    ("efficientnet_lite0", 224, 4.7, None),
]


@pytest.mark.parametrize(("net", "size", "params", "macs"), PAPERS)
def test_profile_matches_the_papers(net: str, size: int, params: float | None,
                                    macs: float | None) -> None:
    result = profiler.profile(nets.create(net), size)
    if params is not None:
        assert result.params / 1e6 == pytest.approx(params, rel=0.03)
    if macs is not None:
        assert result.macs / 1e6 == pytest.approx(macs, rel=0.03)


def test_profile_splits_depthwise_pointwise_standard() -> None:
    result = profiler.profile(nets.create("mobilenet_v1_1.0"), 224)
    split = result.by_kind()
    assert split["depthwise"]["layers"] == 13 and split["pointwise"]["layers"] == 13
    assert split["standard"]["layers"] == 1 and split["linear"]["layers"] == 1
    # the paper: 95% of the multiply-adds are in the 1x1 convolutions
    assert split["pointwise"]["macs"] / result.macs == pytest.approx(0.95, abs=0.01)
    assert sum(entry["macs"] for entry in split.values()) == result.macs


def test_every_manifest_model_has_a_builder_and_known_input() -> None:
    specs = store.manifest()
    assert len(specs) >= 20
    assert {spec.net for spec in specs.values() if spec.net} == set(nets.NETWORKS)


@given(st.floats(1, 4000), st.sampled_from([1, 4, 8, 16]))
def test_make_divisible_rounds_to_a_multiple_and_keeps_90_percent(value: float, divisor: int) -> None:
    rounded = make_divisible(value, divisor)
    assert rounded % divisor == 0 and rounded >= divisor
    assert rounded >= 0.9 * value


@pytest.mark.parametrize(("size", "kernel", "pads"), [(8, 3, (0, 1)), (7, 3, (1, 1)), (8, 5, (1, 2)),
                                                     (7, 5, (2, 2))])
def test_same_padding_is_tensorflows(size: int, kernel: int, pads: tuple[int, int]) -> None:
    """TensorFlow's "same" for a stride-2 conv: ⌈n/2⌉ outputs, the odd pixel of padding at the
    bottom/right (even inputs pad 3×3 by 0 and 1, odd ones by 1 and 1)."""
    conv = conv2d(2, 4, kernel, 2, padding="same")
    x = torch.randn(1, 2, size, size)
    expected = nn.functional.conv2d(nn.functional.pad(x, (*pads, *pads)), conv.weight, stride=2)
    assert torch.equal(conv(x), expected)
    assert conv(x).shape[-1] == -(-size // 2)
    assert type(conv2d(2, 4, kernel, 1, padding="same")) is nn.Conv2d  # stride 1: PyTorch's already


def test_channel_shuffle_interleaves_the_groups() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def _realistic_checkpoint(net: nn.Module, size: int, path: Path) -> None:
    """Seeded random weights with a trained net's scales: unit-variance signals through every layer
    and logits of unit spread (an untrained net's logits are nearly constant, which would make any
    export look exact)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in")
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        net.eval()
        spread = float(net(torch.randn(4, 3, size, size)).std())
        last = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][-1]
        last.weight /= spread
        last.bias /= spread
    torch.save(net.state_dict(), path)


@pytest.mark.slow
def test_every_network_exports_to_onnx_and_torchscript_within_1e4(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each network, at 64×64 to keep it quick, with realistic weights given as a local checkpoint
    (`--weights`), built through the real build path: ONNX and TorchScript vs eager torch."""
    from edgecam.models import weights

    monkeypatch.setenv("EDGECAM_CACHE", str(tmp_path / "cache"))  # the fake weights stay here
    seen = {}
    for listed in store.manifest().values():
        variant = (listed.net, tuple(listed.conventions.items()))  # TensorFlow's padding is another graph
        if listed.net is None or variant in seen:
            continue
        spec = dataclasses.replace(listed, input=64)
        checkpoint = tmp_path / f"{spec.net}.pth"
        _realistic_checkpoint(build.untrained(spec), spec.input, checkpoint)
        weights.pull(spec, checkpoint)
        diffs = [artifacts.build(spec, kind, store.artifact_path(spec, kind))["max_abs_diff"]
                 for kind in ("onnx", "torchscript")]
        seen[variant] = diffs
        assert max(diffs) <= 1e-4, f"{variant}: max |Δlogit| {diffs}"
    assert {net for net, _ in seen} == set(nets.NETWORKS)
