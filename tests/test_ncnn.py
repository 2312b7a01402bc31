"""ncnn: EfficientNet-Lite0 converted by pnnx from the same weights as the ONNX file, its .param
companion hashed beside it, sees the cat and the espresso, keeps onnxruntime's top-1 on the demo
frames, runs without torch or onnx in the process, and refuses a broken file in one line."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import edgecam, photo, require_module

from edgecam.base.errors import ModelError
from edgecam.base.preprocess import center_crop_resize
from edgecam.models import store

require_module("ncnn", "ncnn", pip=True)

from edgecam.backends.ncnn import NcnnBackend  # noqa: E402 - needs ncnn, checked above

MODEL = "efficientnet_lite0"
FILES = (f"{MODEL}.ncnn.bin", f"{MODEL}.ncnn.bin.json", f"{MODEL}.ncnn.param")
CATS = range(281, 286)  # ImageNet's tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = (967, 968, 504)  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def built(model_cache: Path) -> Path:
    """The .ncnn.bin of Lite0, built in this module (with the ONNX file it is compared with)."""
    require_module("pnnx", "pnnx", pip=True)
    for stale in model_cache.glob(f"{MODEL}.ncnn.*"):  # built here, checked here
        stale.unlink()
    result = edgecam("models", "build", MODEL, "--backends", "onnx,ncnn", check=True, timeout=900)
    assert "max |Δlogit| vs torch" in result.stdout
    return model_cache / FILES[0]


@pytest.fixture
def copied(built: Path, tmp_path: Path) -> Path:
    """The built files in a folder of the test's own, free to break."""
    for name in FILES:
        shutil.copy(built.parent / name, tmp_path / name)
    return tmp_path / FILES[0]


@pytest.mark.slow
def test_the_build_is_a_bin_and_its_param_checked_against_torch_and_recorded(built: Path) -> None:
    meta = json.loads((built.parent / FILES[1]).read_text())
    assert meta["kind"] == "ncnn" and meta["trained"]
    assert meta["max_abs_diff"] <= 1e-3  # fp32 ncnn against eager torch
    assert meta["input"] == 224 and meta["mean"] == [127.0] * 3 and meta["std"] == [128.0] * 3
    assert list(meta["companions"]) == [FILES[2]]
    assert store.verified(store.get(MODEL), built)
    # pnnx's by-products (.pnnx.param, _pnnx.py, .pnnx.onnx, the traced .pt) stay out of the cache
    names = [p.name for p in built.parent.iterdir()]
    assert not [n for n in names if "pnnx" in n or n.startswith(("model", "."))], names


@pytest.mark.slow
def test_a_changed_param_file_is_not_verified(copied: Path) -> None:
    spec = store.get(MODEL)
    assert store.verified(spec, copied)
    param = copied.with_name(FILES[2])
    param.write_text(param.read_text().replace("0=1000", "0=999"))  # the classifier's width
    assert not store.verified(spec, copied)


@pytest.mark.slow
def test_it_sees_the_cat_and_the_espresso(built: Path) -> None:
    backend = NcnnBackend(built, 2)
    assert backend.name == "ncnn" and backend.input_size == 224 and backend.precision
    batch = np.stack([center_crop_resize(photo(name), 224) for name in ("chelsea", "coffee")])
    chelsea, coffee = backend.predict(batch).argmax(1).tolist()
    assert chelsea in CATS and coffee in COFFEE


PROBE = """
import json, sys
import numpy as np
from edgecam import backends
from edgecam.backends.timing import sample_inputs
from edgecam.models import store
backend = backends.load("ncnn", store.get("efficientnet_lite0"), 2)
frames = sample_inputs(backend.input_size)
batch = backend.predict(frames)
print(json.dumps({"class": type(backend).__name__, "top1": batch.argmax(1).tolist(),
                  "dtype": str(batch.dtype), "three": list(backend.predict(frames[:3]).shape),
                  "batch_vs_single": float(np.abs(batch[:1] - backend.predict(frames[:1])).max()),
                  "heavy": [m for m in ("torch", "onnx", "pnnx") if m in sys.modules]}))
"""


@pytest.fixture(scope="module")
def probed(built: Path) -> dict:
    """The ncnn backend loaded and run as the device does, in a process of its own."""
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_ncnn_path_imports_no_torch_nor_onnx(probed: dict) -> None:
    assert probed["class"] == "NcnnBackend"
    assert probed["heavy"] == [], f"the ncnn path imported {probed['heavy']}"


@pytest.mark.slow
def test_it_gives_onnxruntimes_top1_on_the_demo_frames_for_any_batch(probed: dict) -> None:
    from edgecam import backends
    from edgecam.backends.timing import sample_inputs

    onnx = backends.load("onnx", store.get(MODEL), 2)
    assert probed["top1"] == onnx.predict(sample_inputs(224)).argmax(1).tolist()
    assert probed["dtype"] == "float32" and probed["three"] == [3, 1000]
    assert probed["batch_vs_single"] < 1e-4  # one frame or a batch: the same logits


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


@pytest.mark.slow
@pytest.mark.parametrize(("broken", "reason"), [
    ("ncnn.bin", "no such file"), ("ncnn.param", "no such file"),
    ("ncnn.bin garbage", "ModelBin read"), ("ncnn.param garbage", "parse magic failed"),
])
def test_a_missing_or_garbage_file_is_refused_in_one_line(copied: Path, broken: str,
                                                          reason: str) -> None:
    suffix, _, how = broken.partition(" ")
    target = copied.with_name(f"{MODEL}.{suffix}")
    if how == "garbage":
        _garbage(target)
    else:
        target.unlink()
    with pytest.raises(ModelError) as error:
        NcnnBackend(copied, 1)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"model file {target} cannot be loaded by ncnn ({reason}")
    assert message.endswith("rebuild it with `edgecam models build --backends ncnn`")


def test_a_file_without_its_sidecar_is_refused_in_one_line(tmp_path: Path) -> None:
    model = tmp_path / "x.ncnn.bin"
    _garbage(model)
    with pytest.raises(ModelError) as error:
        NcnnBackend(model, 1)
    assert str(error.value) == (f"model file {model} has no readable x.ncnn.bin.json beside it: "
                                "rebuild it with `edgecam models build --backends ncnn`")
