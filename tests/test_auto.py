"""`--backend auto`: measured once per machine and model, the fastest accurate backend remembered."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import edgecam, read_jsonl


@pytest.mark.slow
def test_auto_measures_once_keeps_the_fastest_and_models_list_shows_it(
        tmp_path: Path, model_cache: Path) -> None:
    first = edgecam("run", "--backend", "auto", "--headless", "--frames", "3", "--log",
                    str(tmp_path / "a.jsonl"), timeout=900)
    assert first.returncode == 0, first.stderr
    assert "measuring efficientnet_lite0" in first.stderr
    choices = json.loads((model_cache / "auto.json").read_text())
    (_key, choice), = [(k, v) for k, v in choices.items() if k.startswith("efficientnet_lite0|")]
    measured = choice["measured"]
    assert {"onnx", "onnx-int8"} <= set(measured)
    accurate = {name: m for name, m in measured.items() if m["agreement"] >= 0.875}
    assert choice["backend"] == min(accurate, key=lambda name: accurate[name]["median_ms"])
    assert {r["backend"] for r in read_jsonl(tmp_path / "a.jsonl")} == {choice["backend"]}

    second = edgecam("run", "--backend", "auto", "--headless", "--frames", "3")
    assert second.returncode == 0, second.stderr
    assert "measuring" not in second.stderr  # remembered

    listing = edgecam("models", "list", "--json", check=True)
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["efficientnet_lite0"]["auto"].startswith(choice["backend"])
