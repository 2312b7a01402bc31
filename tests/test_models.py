"""`edgecam models list|info|compare-conv` and running untrained zoo networks, as a user runs them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import edgecam, read_jsonl

from edgecam.cli import main
from edgecam.models import store


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """The CLI in-process (the commands that need no model build or torch import of their own)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_shows_every_model_with_its_cost() -> None:
    rows = json.loads(edgecam("models", "list", "--json", check=True).stdout)
    assert len(rows) >= 20
    by_name = {row["name"]: row for row in rows}
    assert by_name["efficientnet_lite0"]["weights"] == "pretrained"
    # every network of the seed papers classifies for real: its weights are pulled or pretrained
    assert all(row["weights"] in ("pull", "pretrained") for row in rows if row["net"])
    assert by_name["mobilenet_v2_1.0"]["weights"] in ("pull", "pretrained")
    assert by_name["mobilenet_v1_0.5_160"]["input"] == 160
    # every network of the zoo is counted (a model trained in another test is a file, not a network)
    zoo = {name for name, spec in store.manifest().items() if spec.net}
    assert all(by_name[name]["params"] > 0 and by_name[name]["macs"] > 0 for name in zoo)
    assert by_name["mobilenet_v1_1.0_224"]["macs"] / 1e6 == pytest.approx(569, rel=0.03)


def test_info_json_with_layers_adds_up() -> None:
    info = json.loads(edgecam("models", "info", "mobilenet_v2_1.0", "--json", "--layers",
                              check=True).stdout)
    assert info["params"] / 1e6 == pytest.approx(3.4, rel=0.03)
    assert info["macs"] / 1e6 == pytest.approx(300, rel=0.03)
    assert sum(layer["macs"] for layer in info["layers"]) == info["macs"]
    assert sum(layer["params"] for layer in info["layers"]) == info["params"]
    assert {layer["kind"] for layer in info["layers"]} == {"standard", "depthwise", "pointwise", "linear"}
    assert info["by_kind"]["depthwise"]["layers"] == 17


def test_info_text_splits_by_kind(capsys: pytest.CaptureFixture) -> None:
    out = cli(capsys, "models", "info", "shufflenet_v2_x1_0")[1]
    assert "MACs 144.9M" in out
    assert "depthwise" in out and "pointwise" in out


def test_compare_conv_reproduces_the_separable_arithmetic(capsys: pytest.CaptureFixture) -> None:
    cost = json.loads(cli(capsys, "models", "compare-conv", "--h", "14", "--w", "14", "--k", "3",
                          "--cin", "512", "--cout", "512", "--json")[1])
    assert cost["standard_macs"] == 14 * 14 * 512 * 512 * 9
    assert cost["separable_macs"] == 14 * 14 * 512 * 9 + 14 * 14 * 512 * 512
    assert cost["ratio"] == pytest.approx(1 / 512 + 1 / 9)
    text = cli(capsys, "models", "compare-conv", "--k", "3", "--cout", "128")[1]
    assert "1/N + 1/K² = 1/128 + 1/9" in text


def test_compare_conv_refuses_a_zero_size(capsys: pytest.CaptureFixture) -> None:
    code, _, err = cli(capsys, "models", "compare-conv", "--k", "0")
    assert code == 2
    assert err.strip() == "edgecam: error: --k must be ≥ 1, got 0"


def test_unknown_model_info_is_one_line(capsys: pytest.CaptureFixture) -> None:
    code, _, err = cli(capsys, "models", "info", "mobilenet_v9")
    assert code == 2
    assert err.strip().startswith("edgecam: error: unknown model 'mobilenet_v9'")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "torchscript"])
def test_run_an_untrained_zoo_network_with_allow_untrained(backend: str, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    refused = edgecam("run", "--model", "mobilenet_v1_0.25_128", "--backend", backend, "--headless",
                      "--frames", "2", "--log", str(log))
    assert refused.returncode == 1 and "--allow-untrained" in refused.stderr
    result = edgecam("run", "--model", "mobilenet_v1_0.25_128", "--backend", backend, "--headless",
                     "--frames", "3", "--log", str(log), "--allow-untrained", check=True)
    assert "untrained (random) weights" in result.stderr
    records = read_jsonl(log)
    assert len(records) == 3 and records[0]["model"] == "mobilenet_v1_0.25_128"
