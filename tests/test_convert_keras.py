"""Google's MobileNetV1 and V2 releases (Keras Applications' `.h5` files) pulled with `--weights`
classify exactly as Keras does: the reference is Keras 3's own `keras.applications` network on its
torch backend with seeded random weights of a trained net's scales, written in the legacy HDF5
layout of the published files (a group per layer, listed in the root's `layer_names`, each listing
its tensors in `weight_names`). edgecam's build of the pulled file must give the same logits
(max |Δ| ≤ 1e-3, same top-5). And the files that do not fit are refused in one line, storing nothing."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import edgecam, needs
from equivalence import assert_same_logits, edgecam_logits, frames, normalised

from edgecam.base.errors import ModelError
from edgecam.models import store, weights

# Keras 3 on numpy 2 warns on each array it hands over; not edgecam's concern
pytestmark = [pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
              pytest.mark.usefixtures("own_store")]

os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported: no TensorFlow here
try:  # the [dev] extra
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format
except ImportError:
    needs("the Python modules keras and h5py", "keras", pip=True)




def realistic(model: keras.Model, size: int) -> keras.Model:
    """`model` with seeded random weights of a trained net's scales, its logits of unit spread."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        values = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            values = [rng.uniform(0.5, 1.5, values[0].shape), rng.uniform(-0.2, 0.2, values[1].shape),
                      rng.normal(0, 0.2, values[2].shape), rng.uniform(0.5, 2.0, values[3].shape)]
        elif values:  # a kernel (fan-in: all but its last axis; a depthwise one: height × width), a bias
            kernel, *bias = values
            fan_in = np.prod(kernel.shape[:2] if isinstance(layer, keras.layers.DepthwiseConv2D)
                             else kernel.shape[:-1])
            values = [rng.normal(0, np.sqrt(2 / fan_in), kernel.shape),
                      *(rng.uniform(-0.1, 0.1, b.shape) for b in bias)]
        layer.set_weights([v.astype(np.float32) for v in values])
    spread = float(np.std(logits(model, rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32))))
    last = [layer for layer in model.layers if layer.get_weights()][-1]
    last.set_weights([v / spread for v in last.get_weights()])
    return model


def logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False))


def keras_file(model: keras.Model, path: Path) -> Path:
    """`model`'s weights in the layout of the published `.h5` files (Keras' own legacy writer)."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    return path


def reference(family: str, alpha: float, size: int) -> keras.Model:
    """Keras' MobileNet (V1) or MobileNetV2 at width `alpha`, returning logits, random weights."""
    build = keras.applications.MobileNet if family == "v1" else keras.applications.MobileNetV2
    return realistic(build(alpha=alpha, input_shape=(size, size, 3), weights=None,
                           classifier_activation=None), size)


# manifest model (its published file's name), Keras' network, its width; the input of the test
KERAS = [
    ("mobilenet_v1_0.25_128", "mobilenet_2_5_128_tf.h5", "v1", 0.25, 128),
    ("mobilenet_v1_0.5_160", "mobilenet_5_0_160_tf.h5", "v1", 0.5, 160),
    ("mobilenet_v2_0.35_96", "tf_kernels_0.35_96.h5", "v2", 0.35, 96),
    # 1.3 is published at 224 only; the conversion does not depend on the size, the test's cost does
    ("mobilenet_v2_1.3_224", "tf_kernels_1.3_224.h5", "v2", 1.3, 96),
]


@pytest.mark.parametrize(("model", "published", "family", "alpha", "size"), KERAS)
def test_a_keras_release_classifies_as_keras_does(model: str, published: str, family: str, alpha: float,
                                                  size: int, tmp_path: Path) -> None:
    spec = dataclasses.replace(store.get(model), input=size)
    assert spec.weights.endswith(published) and store.weights_format(spec) == "Keras HDF5 (.h5)"
    assert (spec.padding, spec.bn_eps, spec.mean, spec.std) == ("same", 1e-3, (127.5,) * 3, (127.5,) * 3)
    net = reference(family, alpha, size)
    weights.pull(spec, keras_file(net, tmp_path / published))
    images = frames(size)
    expected = logits(net, normalised(spec, images).permute(0, 2, 3, 1).numpy())
    assert_same_logits(edgecam_logits(spec, images), expected)


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras MobileNet 0.25 file in the published layout, for the files that do not fit."""
    path = tmp_path_factory.mktemp("keras") / "mobilenet_2_5_128_tf.h5"
    return keras_file(reference("v1", 0.25, 128), path)


def refused(spec: store.ModelSpec, path: Path) -> str:
    """The one-line error of pulling `path` for `spec`, after checking that nothing was stored."""
    with pytest.raises(ModelError) as error:
        weights.pull(spec, path)
    assert store.weights_id(spec) is None
    assert not store.weights_dir().exists() or not any(store.weights_dir().iterdir())
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_file_of_another_family_names_the_first_tensor_that_does_not_fit(v1_file: Path) -> None:
    message = refused(store.get("mobilenet_v2_0.35_96"), v1_file)
    assert message.startswith(f"weights {v1_file} do not fit network mobilenet_v2_0.35: conv1.weight "
                              "(8, 3, 3, 3) is not the shape of features.0.0.weight (16, 3, 3, 3);")


def test_another_width_of_the_same_family_is_refused(v1_file: Path) -> None:
    message = refused(store.get("mobilenet_v1_0.5_160"), v1_file)
    assert "network mobilenet_v1_0.5: conv1.weight (8, 3, 3, 3) is not the shape of features.0.0" in message


def broken_copy(h5: Path, folder: Path, damage: Callable[[h5py.File], None]) -> Path:
    broken = folder / "broken.h5"
    broken.write_bytes(h5.read_bytes())
    with h5py.File(broken, "a") as f:
        damage(f)
    return broken


def test_a_file_missing_a_layer_is_refused(v1_file: Path, tmp_path: Path) -> None:
    broken = broken_copy(v1_file, tmp_path, lambda f: f.__delitem__("conv_pw_7_bn"))
    message = refused(store.get("mobilenet_v1_0.25_128"), broken)
    assert "lists the layer conv_pw_7_bn but does not hold it" in message


def test_a_file_whose_layer_list_lacks_a_layer_names_the_first_misfit(v1_file: Path, tmp_path: Path) -> None:
    def drop_from_list(f: h5py.File) -> None:
        f.attrs["layer_names"] = [n for n in f.attrs["layer_names"] if n not in ("conv_dw_3", b"conv_dw_3")]

    message = refused(store.get("mobilenet_v1_0.25_128"), broken_copy(v1_file, tmp_path, drop_from_list))
    assert "conv_dw_3_bn" in message and "features.3.0.0.weight" in message


def test_a_truncated_file_is_refused_in_one_line_by_the_cli(v1_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.h5"
    cut.write_bytes(v1_file.read_bytes()[: v1_file.stat().st_size // 2])
    result = edgecam("models", "pull", "mobilenet_v1_0.25_128", "--weights", str(cut))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith(f"edgecam: error: weights file {cut} is not a readable HDF5 file (")
    assert store.weights_id(store.get("mobilenet_v1_0.25_128")) is None


def test_a_pulled_keras_file_is_stored_converted_with_its_source_digest(v1_file: Path) -> None:
    spec = store.get("mobilenet_v1_0.25_128")
    path = weights.pull(spec, v1_file)
    record = store.installed_weights(spec)
    assert record["source_sha256"] == store.sha256(v1_file) != record["sha256"] == store.sha256(path)
    assert record["checked"] == "local file"
    state = torch.load(path, weights_only=True)  # a plain torch state dict under edgecam's names
    assert state["features.0.0.weight"].shape == (8, 3, 3, 3)
