"""Static int8 EfficientNet-Lite0: built from the demo frames, it keeps fp32's top-1 and still sees a
cat in chelsea and an espresso in coffee, through the onnxruntime path (no torch)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import edgecam
from edgecam.sources.demo import SHOTS


@pytest.fixture(scope="module")
def int8_built(model_cache: Path) -> dict:
    for stale in model_cache.glob("efficientnet_lite0.int8.onnx*"):  # built here, reported here
        stale.unlink()
    result = edgecam("models", "build", "efficientnet_lite0", "--int8", check=True)
    assert "top-1 agreement with fp32" in result.stdout
    return json.loads((model_cache / "efficientnet_lite0.int8.onnx.json").read_text())


@pytest.mark.slow
def test_int8_keeps_fp32_top1_on_95_percent_of_100_demo_frames(int8_built: dict,
                                                               model_cache: Path) -> None:
    assert int8_built["frames"] == 100 and int8_built["calibration"] == "demo"
    assert int8_built["top1_agreement"] >= 0.95
    # the fp32 model it was quantized from: trained weights, ONNX vs eager torch
    fp32 = json.loads((model_cache / "efficientnet_lite0.onnx.json").read_text())
    assert fp32["trained"] and fp32["max_abs_diff"] <= 1e-4


@pytest.mark.slow
def test_int8_still_sees_the_cat_and_the_espresso(int8_built: dict, photo_files: dict[str, Path]) -> None:
    result = edgecam("classify", "--backend", "onnx-int8", "--json", "--topk", "1",
                     str(photo_files["chelsea"]), str(photo_files["coffee"]), check=True)
    chelsea, coffee = json.loads(result.stdout)
    assert chelsea["backend"] == "onnx-int8"
    assert chelsea["top"][0]["label"] in SHOTS["chelsea"]
    assert coffee["top"][0]["label"] == "espresso"


@pytest.mark.slow
def test_int8_path_never_imports_torch(int8_built: dict, photo_files: dict[str, Path]) -> None:
    script = f"""
import sys
from edgecam import store
from edgecam.classifier import Classifier
from edgecam.imageio import read_rgb
c = Classifier.load(store.get("efficientnet_lite0"), "onnx-int8", 1, 1)
c.classify(read_rgb({str(photo_files['coffee'])!r}))
assert "torch" not in sys.modules, "torch was imported"
"""
    subprocess.run([sys.executable, "-c", script], check=True)


def test_a_calibration_folder_without_images_is_refused(tmp_path: Path) -> None:
    result = edgecam("models", "build", "efficientnet_lite0", "--int8", "--calib", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (f"edgecam: error: calibration folder {tmp_path} has no images "
                                     "(JPEG, PNG, ...): put some pictures from the camera there")
