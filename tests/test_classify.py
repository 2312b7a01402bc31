"""`edgecam classify` on real photos, and both backends agreeing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import edgecam

from edgecam.base.samples import SHOTS


def classify(*args: str) -> dict | list:
    result = edgecam("classify", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_chelsea_is_a_cat_and_coffee_is_an_espresso(photo_files: dict[str, Path]) -> None:
    cat, coffee = classify(str(photo_files["chelsea"]), str(photo_files["coffee"]))
    assert cat["top"][0]["label"] in SHOTS["chelsea"]
    assert coffee["top"][0]["label"] == "espresso"
    assert len(cat["top"]) == 5 and cat["model"] == "efficientnet_lite0"


def test_text_output_lists_labels_with_percentages(photo_files: dict[str, Path]) -> None:
    result = edgecam("classify", "--topk", "2", str(photo_files["coffee"]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(str(photo_files["coffee"]))
    assert "espresso" in lines[1] and lines[1].strip().endswith("espresso") and "%" in lines[1]
    assert len(lines) == 3


def test_onnx_and_torchscript_agree(photo_files: dict[str, Path]) -> None:
    images = [str(p) for p in photo_files.values()]
    onnx = classify("--topk", "10", *images)
    script = classify("--topk", "10", "--backend", "torchscript", *images)
    for a, b in zip(onnx, script, strict=True):
        assert b["backend"] == "torchscript"
        assert a["top"][0]["label"] == b["top"][0]["label"]
        scores_a = {t["index"]: t["score"] for t in a["top"]}
        scores_b = {t["index"]: t["score"] for t in b["top"]}
        for index in scores_a.keys() & scores_b.keys():
            assert abs(scores_a[index] - scores_b[index]) <= 1e-3


def test_onnxruntime_path_never_imports_torch(photo_files: dict[str, Path], model_cache: Path) -> None:
    edgecam("models", "build", "efficientnet_lite0", check=True)  # built (with torch) beforehand
    code = f"""
import sys
from edgecam.cli import main
assert main(["--log-level", "error", "run", "--headless", "--frames", "3"]) == 0
assert main(["classify", {str(photo_files['coffee'])!r}]) == 0
assert "torch" not in sys.modules, "torch was imported"
assert "onnx" not in sys.modules, "onnx was imported"
print("clean")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("clean")
