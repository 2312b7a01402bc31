"""timm's checkpoints (safetensors, as on the Hugging Face hub) pulled with `--weights` classify
exactly as timm itself does: the reference is timm's own implementation with seeded random weights
of a trained net's scales, saved in timm's format, and edgecam's build of the pulled file must give
the same logits (max |Δ| ≤ 1e-3, same top-5) on the same frames. Small inputs keep it quick: the
conversion does not depend on the size, and the sizes chosen give the strided convolutions both
even and odd inputs, which TensorFlow's padding treats differently."""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import needs
from equivalence import MAX_DIFF, assert_same_logits, edgecam_logits, frames, normalised, realistic
from torch import nn

from edgecam.base.errors import ModelError
from edgecam.models import store, weights

# PyPI's torchvision is a CUDA build: with the CPU torch its import fails registering fake
# kernels for torchvision::nms and qnms, which need the operators' schemas. Defining them first
# lets torchvision, and so timm, import; no test calls them. (Kept alive: the definitions go with it.)
_TORCHVISION_OPS = torch.library.Library("torchvision", "FRAGMENT")
for _op in ("nms", "qnms"):
    with contextlib.suppress(RuntimeError):  # a torchvision that matches this torch defined it already
        _TORCHVISION_OPS.define(f"{_op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

pytestmark = pytest.mark.usefixtures("own_store")

try:  # the [dev] extra
    import timm
    from safetensors.torch import save_file
except ImportError:
    needs("the Python modules timm and safetensors", "timm", pip=True)





def timm_checkpoint(name: str, size: int, path: Path) -> nn.Module:
    """timm's `name` with realistic random weights, saved as timm publishes it; the reference."""
    reference = realistic(timm.create_model(name, pretrained=False), size)
    save_file(reference.state_dict(), str(path))
    return reference


# manifest model, timm's name of the same network, the input size of the test
TIMM = [
    ("mobilenet_v1_1.0", "mobilenetv1_100", 96),
    ("mobilenet_v2_0.5", "mobilenetv2_050", 96),
    ("mobilenet_v2_1.4", "mobilenetv2_140", 96),
    # 84: the strided convolutions see 84, 42, 21, 11, 6: 3×3 and 5×5 on even and odd sizes
    ("efficientnet_lite3", "tf_efficientnet_lite3", 84),
    ("efficientnet_lite4", "tf_efficientnet_lite4", 84),
]


@pytest.mark.parametrize(("model", "timm_name", "size"), TIMM)
def test_a_timm_checkpoint_classifies_as_timm_does(model: str, timm_name: str, size: int,
                                                   tmp_path: Path) -> None:
    spec = dataclasses.replace(store.get(model), input=size)
    assert store.weights_format(spec) == "timm safetensors"
    assert timm_name in spec.weights
    file = tmp_path / "model.safetensors"
    reference = timm_checkpoint(timm_name, size, file)
    weights.pull(spec, file)
    images = frames(size)
    with torch.inference_mode():
        expected = reference(normalised(spec, images)).numpy()
    assert_same_logits(edgecam_logits(spec, images), expected)


def test_lite_needs_tensorflow_padding_to_be_exact(tmp_path: Path) -> None:
    """The manifest's `padding = "same"` is what makes timm's port of Google's Lite3 exact:
    built the PyTorch way, the same weights give other logits."""
    spec = dataclasses.replace(store.get("efficientnet_lite3"), input=84)
    assert spec.padding == "same"
    file = tmp_path / "model.safetensors"
    reference = timm_checkpoint("tf_efficientnet_lite3", 84, file)
    torch_padded = dataclasses.replace(spec, padding="symmetric")
    weights.pull(torch_padded, file)
    images = frames(84)
    with torch.inference_mode():
        expected = reference(normalised(spec, images)).numpy()
    assert np.abs(edgecam_logits(torch_padded, images) - expected).max() > 100 * MAX_DIFF


def test_a_timm_file_of_another_family_names_the_first_tensor_that_does_not_fit(tmp_path: Path) -> None:
    file = tmp_path / "model.safetensors"
    timm_checkpoint("mobilenetv2_050", 96, file)
    spec = store.get("mobilenet_v1_1.0")
    with pytest.raises(ModelError) as error:
        weights.pull(spec, file)
    assert str(error.value).startswith(
        f"weights {file} do not fit network mobilenet_v1_1.0: conv_stem.weight (16, 3, 3, 3) is not the "
        "shape of features.0.0.weight (32, 3, 3, 3);")
    assert store.weights_id(spec) is None and not (store.weights_dir() / "mobilenet_v1_1.0.pth").exists()


def test_a_timm_network_of_another_kind_names_its_first_unknown_module(tmp_path: Path) -> None:
    file = tmp_path / "model.safetensors"
    save_file(timm.create_model("mobilenetv3_small_050", pretrained=False).state_dict(), str(file))
    with pytest.raises(ModelError, match=r"do not fit network mobilenet_v2_0\.5: its module "
                       r"blocks\.0\.0\.se\.conv_\w+ is not one of a timm MobileNet or EfficientNet-Lite;"):
        weights.pull(store.get("mobilenet_v2_0.5"), file)
