"""LiteRT with XNNPACK, the TFLite example's runtime: EfficientNet-Lite0 built by litert-torch from
the same weights as the ONNX file, its int8 build kept only at ≥ 97% top-1 agreement, classified
without torch or onnx in the process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import edgecam, require_module

from edgecam.base.samples import SHOTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(model_cache: Path) -> dict[str, dict]:
    require_module("ai_edge_litert", "ai-edge-litert", pip=True)
    require_module("litert_torch", "litert-torch", pip=True)
    # built here, or already by an earlier test (auto builds every backend's file)
    edgecam("models", "build", "efficientnet_lite0", "--backends", "onnx,litert,litert-int8", check=True,
            timeout=900)
    return {kind: json.loads((model_cache / f"efficientnet_lite0{suffix}.json").read_text())
            for kind, suffix in (("litert", ".tflite"), ("litert-int8", ".int8.tflite"))}


def test_the_fp32_file_matches_eager_torch_and_the_int8_file_keeps_its_top1(built: dict) -> None:
    assert built["litert"]["trained"] and built["litert"]["max_abs_diff"] <= 1e-3
    int8 = built["litert-int8"]
    assert int8["trained"] and int8["calibration"] == "demo" and int8["frames"] == 100
    assert int8["top1_agreement"] >= 0.97
    assert 1 <= int8["float_layers"] <= 4


@pytest.mark.parametrize("backend", ["litert", "litert-int8"])
def test_it_sees_the_cat_and_the_espresso(built: dict, backend: str, photo_files: dict[str, Path]) -> None:
    result = edgecam("classify", "--backend", backend, "--json", "--topk", "1",
                     str(photo_files["chelsea"]), str(photo_files["coffee"]), check=True)
    chelsea, coffee = json.loads(result.stdout)
    assert chelsea["backend"] == backend
    assert chelsea["top"][0]["label"] in SHOTS["chelsea"]
    assert coffee["top"][0]["label"] == "espresso"
    assert "XNNPACK" not in result.stderr  # the runtime's own log line stays out of the journal


PROBE = """
import json, sys
import numpy as np
from edgecam import backends
from edgecam.backends.timing import sample_inputs
from edgecam.models import store
spec = store.get("efficientnet_lite0")
out = {}
logits = {}
for name in ("onnx", "litert", "litert-int8"):
    backend = backends.load(name, spec, 2)
    frames = sample_inputs(spec.input)
    batch = logits[name] = backend.predict(frames)
    out[name] = {"top1": batch.argmax(1).tolist(),
                 "batch_vs_single": float(np.abs(batch[:1] - backend.predict(frames[:1])).max()),
                 "three": list(backend.predict(frames[:3]).shape)}
out["int8_vs_fp32"] = float(np.abs(logits["litert-int8"] - logits["litert"]).max())
out["int8_dtype"] = str(logits["litert-int8"].dtype)
out["heavy"] = [m for m in ("torch", "onnx", "litert_torch", "jax") if m in sys.modules]
print(json.dumps(out))
"""


def test_the_litert_path_imports_no_torch_and_takes_any_batch(built: dict) -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                            check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["heavy"] == [], f"the LiteRT path imported {found['heavy']}"
    assert found["litert"]["top1"] == found["onnx"]["top1"]
    assert sum(a != b for a, b in zip(found["litert-int8"]["top1"], found["onnx"]["top1"],
                                      strict=True)) <= 1
    # the int8 file's quantized output comes back as logits on fp32's scale
    assert found["int8_dtype"] == "float32" and found["int8_vs_fp32"] < 2.0, found["int8_vs_fp32"]
    for name in ("litert", "litert-int8"):
        assert found[name]["three"] == [3, 1000]
        assert found[name]["batch_vs_single"] < 1e-4, name  # one frame or a batch: the same logits


def test_a_file_that_is_not_a_litert_model_is_refused_in_one_line(tmp_path: Path) -> None:
    require_module("ai_edge_litert", "ai-edge-litert", pip=True)
    from edgecam.backends.litert import LiteRtBackend
    from edgecam.base.errors import ModelError

    garbage = tmp_path / "x.tflite"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError) as error:
        LiteRtBackend(garbage, 1)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"model file {garbage} cannot be loaded by LiteRT")
    assert message.endswith("rebuild it with `edgecam models build --backends litert`")
