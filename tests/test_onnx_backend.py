"""The onnxruntime backend caches its optimised graph per machine and falls back when it is torn."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from conftest import edgecam

from edgecam.backends.onnx import OnnxBackend, optimized_path


def test_optimised_graph_is_cached_reused_and_replaced_when_torn(tmp_path: Path,
                                                                  model_cache: Path) -> None:
    edgecam("models", "build", "efficientnet_lite0", check=True)
    model = tmp_path / "efficientnet_lite0.onnx"
    for name in (model.name, model.name + ".json"):
        shutil.copy(model_cache / name, tmp_path / name)
    batch = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), np.uint8)

    first = OnnxBackend(model, 2).predict(batch)
    cached = optimized_path(model)
    assert cached is not None and cached.is_file() and cached.parent == tmp_path / "optimized"
    second = OnnxBackend(model, 2).predict(batch)  # loaded from the cached graph
    assert np.allclose(first, second, atol=1e-5)

    cached.write_bytes(cached.read_bytes()[:1000])  # torn, as by a crash while it was written
    third = OnnxBackend(model, 2).predict(batch)
    assert np.allclose(first, third, atol=1e-5)
    assert cached.stat().st_size > 1000  # written again


def test_a_model_file_without_a_recorded_hash_is_not_cached(tmp_path: Path, model_cache: Path) -> None:
    edgecam("models", "build", "efficientnet_lite0", check=True)
    model = tmp_path / "mine.onnx"
    shutil.copy(model_cache / "efficientnet_lite0.onnx", model)
    assert optimized_path(model) is None
    assert OnnxBackend(model, 1).input_size == 224
    assert not (tmp_path / "optimized").exists()
