"""`--backend auto`: measured once per machine and model, the fastest accurate backend remembered."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import edgecam, read_jsonl

DEFAULT = {"EDGECAM_BACKEND": ""}  # the suite pins onnx (conftest); a user's machine has no pin


@pytest.mark.slow
def test_auto_is_the_default_measures_every_backend_once_and_keeps_the_fastest(
        tmp_path: Path, model_cache: Path) -> None:
    first = edgecam("run", "--headless", "--frames", "3", "--log", str(tmp_path / "a.jsonl"),
                    timeout=1200, env=DEFAULT)
    assert first.returncode == 0, first.stderr
    assert "measuring efficientnet_lite0" in first.stderr
    choices = json.loads((model_cache / "auto.json").read_text())
    (_key, choice), = [(k, v) for k, v in choices.items() if k.startswith("efficientnet_lite0|")]
    measured = choice["measured"]
    assert set(measured) == {"onnx", "onnx-int8", "litert", "litert-int8", "ncnn", "torchscript"}
    for int8 in ("efficientnet_lite0.int8.onnx", "efficientnet_lite0.int8.tflite"):
        assert json.loads((model_cache / f"{int8}.json").read_text())["top1_agreement"] >= 0.97
    accurate = {name: m for name, m in measured.items() if m["agreement"] >= 0.875}
    assert choice["backend"] == min(accurate, key=lambda name: accurate[name]["median_ms"])
    assert {r["backend"] for r in read_jsonl(tmp_path / "a.jsonl")} == {choice["backend"]}

    second = edgecam("run", "--backend", "auto", "--headless", "--frames", "3", env=DEFAULT)
    assert second.returncode == 0, second.stderr
    assert "measuring" not in second.stderr  # remembered

    listing = edgecam("models", "list", "--json", check=True)
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["efficientnet_lite0"]["auto"].startswith(choice["backend"])


def test_edgecam_backend_pins_the_default_and_a_flag_still_wins(tmp_path: Path) -> None:
    pinned = edgecam("classify", "--json", "--topk", "1", str(tmp_path / "none.png"),
                     env={"EDGECAM_BACKEND": "nonsense"})
    assert pinned.returncode != 0
    assert "environment variable EDGECAM_BACKEND must be one of" in pinned.stderr.strip().splitlines()[-1]
    run = edgecam("run", "--headless", "--frames", "2", "--backend", "onnx", "--log",
                  str(tmp_path / "b.jsonl"), env={"EDGECAM_BACKEND": "torchscript"}, check=True)
    assert run.returncode == 0
    assert {r["backend"] for r in read_jsonl(tmp_path / "b.jsonl")} == {"onnx"}
